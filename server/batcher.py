"""Group commit: requests that arrive while the writer is busy are written together in one store
transaction by one writer thread (no artificial wait: a lone request is written at once)."""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

In = TypeVar("In")
R = TypeVar("R")


class GroupCommit(Generic[In, R]):
    def __init__(
        self, handle_many: Callable[[list[In]], list[R]], max_batch: int = 64, name: str = "writer"
    ) -> None:
        self.handle_many = handle_many
        self.max_batch = max_batch
        self._q: queue.Queue[tuple[In, asyncio.Future[R], asyncio.AbstractEventLoop] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, daemon=True, name=name)
        self._thread.start()

    async def submit(self, item: In) -> R:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[R] = loop.create_future()
        self._q.put((item, fut, loop))
        return await fut

    def close(self) -> None:
        self._q.put(None)
        self._thread.join(10)

    def _run(self) -> None:
        while True:
            first = self._q.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    nxt = self._q.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._q.put(None)
                    break
                batch.append(nxt)
            try:
                results: list[Any] = self.handle_many([item for item, _, _ in batch])
                outcome: list[tuple[bool, Any]] = [(True, r) for r in results]
            except Exception as exc:  # the transaction failed: every request of the batch gets the error
                log.exception("group commit of %d request(s) failed", len(batch))
                outcome = [(False, exc)] * len(batch)
            for (_, fut, loop), (ok, value) in zip(batch, outcome, strict=True):
                loop.call_soon_threadsafe(_settle, fut, ok, value)


def _settle(fut: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if fut.done():
        return
    if ok:
        fut.set_result(value)
    else:
        fut.set_exception(value)
