"""Group commit: requests that arrive while the writer is busy are written together in one store
transaction by one writer thread (no artificial wait: a lone request is written at once).

The hand-off is cheap on purpose, since it runs once per webhook: a request appends to a deque and
wakes the writer only when the writer sleeps; the writer settles a whole batch's futures with one
call into each event loop. `after` (optional) runs once the batch's callers have their answers:
work that must not delay the acknowledgement (e.g. publishing to a Redis stream whose loss the
store can repair).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

In = TypeVar("In")
R = TypeVar("R")

_Waiting = tuple[Any, "asyncio.Future[Any]", asyncio.AbstractEventLoop]


class GroupCommit(Generic[In, R]):
    def __init__(
        self,
        handle_many: Callable[[list[In]], list[R]],
        max_batch: int = 64,
        name: str = "writer",
        after: Callable[[list[R]], None] | None = None,
    ) -> None:
        self.handle_many = handle_many
        self.after = after
        self.max_batch = max_batch
        self._pending: deque[_Waiting] = deque()
        self._wake = threading.Event()
        self._closing = False
        self._thread = threading.Thread(target=self._run, daemon=True, name=name)
        self._thread.start()

    async def submit(self, item: In) -> R:
        if self._closing:
            raise RuntimeError("the writer is closed")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[R] = loop.create_future()
        self._pending.append((item, fut, loop))
        if not self._wake.is_set():  # the writer sleeps: wake it (else it finds this on its next pass)
            self._wake.set()
        return await fut

    def close(self) -> None:
        """Write what is pending, then stop the writer thread."""
        self._closing = True
        self._wake.set()
        self._thread.join(10)

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()  # before draining: anything appended from now on is seen or wakes us
            while self._pending:
                batch: list[_Waiting] = []
                while self._pending and len(batch) < self.max_batch:
                    batch.append(self._pending.popleft())
                self._write(batch)
            if self._closing and not self._pending:
                return

    def _write(self, batch: list[_Waiting]) -> None:
        results: list[Any] = []
        try:
            results = self.handle_many([item for item, _, _ in batch])
            outcome: list[tuple[bool, Any]] = [(True, r) for r in results]
        except Exception as exc:  # the transaction failed: every request of the batch gets the error
            log.exception("group commit of %d request(s) failed", len(batch))
            outcome = [(False, exc)] * len(batch)
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
        for (_, fut, loop), (ok, value) in zip(batch, outcome, strict=True):
            by_loop.setdefault(loop, []).append((fut, ok, value))
        for loop, settled in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle, settled)
            except RuntimeError:  # that loop is closed: its callers are gone
                log.warning("group commit: %d answer(s) for a closed event loop dropped", len(settled))
        if self.after is not None and results:
            try:
                self.after(results)
            except Exception:  # not durable work by definition: the store already has the truth
                log.exception("group commit: after-commit work failed")


def _settle(settled: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for fut, ok, value in settled:
        if fut.done():  # the caller went away (cancelled)
            continue
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)
