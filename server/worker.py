"""Investigation workers: take an investigation from the queue, run it through the lifecycle, ack.

`serve` runs a few in-process worker threads; `opscopilot worker` runs them in their own process
(several such processes share a Redis stream). A redelivered message is safe: the lifecycle's claim
lets one worker run an investigation, and a finished one is only acknowledged again.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from server.events import RunDone, RunFailed
from server.investigations import Investigations
from server.queue import Message, WorkQueue, requeue_orphans
from tools.owners import owner_id

log = logging.getLogger(__name__)

RUNNABLE = ("queued", "investigating", "abandoned")


def handle(service: Investigations, queue: WorkQueue, msg: Message, consumer: str) -> str:
    """Run one delivered investigation; returns what happened (for logs and tests)."""
    row = service.store.get_investigation(msg.investigation_id)
    if row is None or row["status"] not in RUNNABLE:
        queue.ack(msg)  # done (or unknown): a redelivery, nothing to do
        return "skipped"
    last: Any = None
    touched = time.monotonic()
    for ev in service.stream(msg.investigation_id):
        last = ev.body
        if time.monotonic() - touched > min(5.0, service.settings.service.claim_timeout_s / 3):
            queue.touch(msg, consumer)
            touched = time.monotonic()
    if isinstance(last, RunFailed) and last.code == "not_runnable":
        current = service.store.get_investigation(msg.investigation_id) or {}
        if current.get("status") == "investigating":
            return "running elsewhere"  # not acked: redelivered if that worker dies
    queue.ack(msg)
    return "done" if isinstance(last, RunDone) else "failed"


class Workers:
    """`n` worker threads on one queue, plus a housekeeping thread (expiry, orphans, stale runs)."""

    def __init__(self, service: Investigations, queue: WorkQueue, n: int, name: str | None = None) -> None:
        self.service = service
        self.queue = queue
        self.n = n
        self.name = name or owner_id()
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.handled = 0

    def start(self) -> Workers:
        for i in range(self.n):
            th = threading.Thread(
                target=self._loop, args=(f"{self.name}/{i}",), daemon=True, name=f"worker-{i}"
            )
            th.start()
            self.threads.append(th)
        hk = threading.Thread(target=self._housekeeping, daemon=True, name="housekeeping")
        hk.start()
        self.threads.append(hk)
        return self

    def close(self, timeout: float = 5.0) -> None:
        self.stop.set()
        for th in self.threads:
            th.join(timeout)

    def _loop(self, consumer: str) -> None:
        while not self.stop.is_set():
            try:
                msg = self.queue.take(consumer, block_s=1.0)
                if msg is None:
                    continue
                outcome = handle(self.service, self.queue, msg, consumer)
                self.handled += 1
                log.info("worker %s: %s %s", consumer, msg.investigation_id, outcome)
            except Exception:  # keep the worker alive; the message is redelivered after the timeout
                log.exception("worker %s failed", consumer)
                self.stop.wait(1.0)

    def _housekeeping(self) -> None:
        timeout = self.service.settings.service.claim_timeout_s
        while not self.stop.is_set():
            try:
                self.service.expire_due()
                self.service.decisions.finish_interrupted()  # decisions whose process died mid-way
                requeue_orphans(self.service.store, self.queue, older_than_s=timeout)
            except Exception:
                log.exception("housekeeping failed")
            self.stop.wait(min(30.0, timeout / 2))
