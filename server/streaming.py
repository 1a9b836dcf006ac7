"""Run a blocking event iterator in its own thread and consume it from async code (SSE routes).

The thread runs to the end even when the client goes away: an investigation is finished and
recorded whether or not anyone is still listening."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from typing import TypeVar

T = TypeVar("T")
_END = object()


async def in_thread(items: Iterator[T], name: str = "run") -> AsyncIterator[T]:
    loop = asyncio.get_running_loop()
    q: asyncio.Queue[object] = asyncio.Queue()

    def pump() -> None:
        try:
            for item in items:
                loop.call_soon_threadsafe(q.put_nowait, item)
        except BaseException as exc:  # handed to the consumer, which decides what to say
            loop.call_soon_threadsafe(q.put_nowait, exc)
        finally:
            loop.call_soon_threadsafe(q.put_nowait, _END)

    threading.Thread(target=pump, daemon=True, name=name).start()
    while True:
        item = await q.get()
        if item is _END:
            return
        if isinstance(item, BaseException):
            raise item
        yield item  # type: ignore[misc]
