"""Work queues for investigations: a durable queue in the store (embedded), or Redis Streams.

Both deliver at least once; the store's claim on the investigation (one owner at a time, done is
done) makes each investigation run to its end once. A message whose worker died is delivered
again after `claim_timeout_s`: the embedded queue re-takes stale claims, Redis claims the pending
entry for another consumer with XAUTOCLAIM.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol, cast

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from server import schema as t
from server.rawsql import Statement
from server.store import Store

log = logging.getLogger(__name__)


@dataclass
class Message:
    """One delivery: the investigation to run, and the queue's own handle for ack/touch."""

    investigation_id: str
    handle: Any
    attempts: int = 1


class WorkQueue(Protocol):
    name: str
    transactional: bool  # put(inv, conn) joins the store transaction; else call put after commit

    def put(self, investigation_id: str, conn: Any = None) -> None: ...
    def put_many(self, investigation_ids: list[str], conn: Any) -> None: ...
    def take(self, consumer: str, block_s: float) -> Message | None: ...
    def touch(self, msg: Message, consumer: str) -> None: ...
    def ack(self, msg: Message) -> None: ...
    def depth(self) -> tuple[int, float]: ...
    def ping(self) -> None: ...


class StoreQueue:
    """The embedded queue: rows in the store's `work_queue` table (SQLite or PostgreSQL)."""

    name = "store"
    transactional = True

    def __init__(self, store: Store, claim_timeout_s: float) -> None:
        self.store = store
        self.claim_timeout_s = claim_timeout_s
        self._wake = threading.Condition()
        self._insert = Statement(
            insert(t.queue), store.engine.dialect, column_keys=["key", "status", "attempts", "created_at"]
        )

    def put_many(self, investigation_ids: list[str], conn: Any) -> None:
        """Enqueue several in the caller's store transaction (one statement, compiled once)."""
        now = time.time()
        rows = [{"key": i, "status": "ready", "attempts": 0, "created_at": now} for i in investigation_ids]
        self._insert.executemany(conn, rows)
        with self._wake:
            self._wake.notify_all()

    def put(self, investigation_id: str, conn: Any = None) -> None:
        values = {"key": investigation_id, "status": "ready", "attempts": 0, "created_at": time.time()}
        if conn is not None:
            conn.execute(insert(t.queue).values(**values))
        else:
            try:
                with self.store.tx() as c:
                    c.execute(insert(t.queue).values(**values))
            except IntegrityError:  # already queued once: idempotent
                return
        with self._wake:
            self._wake.notify_all()

    def take(self, consumer: str, block_s: float) -> Message | None:
        deadline = time.monotonic() + block_s
        while True:
            msg = self._take_once(consumer)
            if msg is not None or time.monotonic() >= deadline:
                return msg
            with self._wake:
                self._wake.wait(timeout=min(0.2, max(0.0, deadline - time.monotonic())))

    def _take_once(self, consumer: str) -> Message | None:
        now = time.time()
        stale = now - self.claim_timeout_s
        q = (
            select(t.queue)
            .where(
                (t.queue.c.status == "ready")
                | ((t.queue.c.status == "claimed") & (t.queue.c.claimed_at < stale))
            )
            .order_by(t.queue.c.id)
            .limit(1)
        )
        if not self.store.is_sqlite:
            q = q.with_for_update(skip_locked=True)
        with self.store.tx() as c:
            row = c.execute(q).mappings().first()
            if row is None:
                return None
            c.execute(
                update(t.queue)
                .where(t.queue.c.id == row["id"])
                .values(status="claimed", claimed_by=consumer, claimed_at=now, attempts=row["attempts"] + 1)
            )
        return Message(investigation_id=row["key"], handle=row["id"], attempts=row["attempts"] + 1)

    def touch(self, msg: Message, consumer: str) -> None:
        with self.store.tx() as c:
            c.execute(
                update(t.queue)
                .where(t.queue.c.id == msg.handle, t.queue.c.claimed_by == consumer)
                .values(claimed_at=time.time())
            )

    def ack(self, msg: Message) -> None:
        with self.store.tx() as c:
            c.execute(update(t.queue).where(t.queue.c.id == msg.handle).values(status="done"))

    def depth(self) -> tuple[int, float]:
        from sqlalchemy import func

        q = select(func.count(), func.min(t.queue.c.created_at)).where(t.queue.c.status != "done")
        with self.store.engine.connect() as c:
            n, oldest = c.execute(q).one()
        return int(n), (time.time() - oldest) if oldest else 0.0

    def ping(self) -> None:
        self.store.ping()


class RedisQueue:
    """Redis Streams with one consumer group: several `opscopilot worker` processes share the work;
    a crashed worker's pending entries are claimed by another after `claim_timeout_s` (XAUTOCLAIM)."""

    name = "redis"
    transactional = False

    def __init__(self, url: str, stream: str, claim_timeout_s: float) -> None:
        import redis

        self.r = redis.Redis.from_url(url, decode_responses=True, socket_timeout=10)
        self.stream = stream
        self.group = f"{stream}:workers"
        self.claim_timeout_ms = int(claim_timeout_s * 1000)
        try:
            self.r.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def put(self, investigation_id: str, conn: Any = None) -> None:
        """Called after the store committed the investigation (the row is the truth;
        `requeue_orphans` re-sends a queued investigation whose message was lost)."""
        self.r.xadd(self.stream, {"inv": investigation_id})

    def put_many(self, investigation_ids: list[str], conn: Any = None) -> None:
        pipe = self.r.pipeline(transaction=False)
        for inv_id in investigation_ids:
            pipe.xadd(self.stream, {"inv": inv_id})
        pipe.execute()

    def take(self, consumer: str, block_s: float) -> Message | None:
        _next, claimed, *_ = self.r.xautoclaim(
            self.stream, self.group, consumer, min_idle_time=self.claim_timeout_ms, start_id="0-0", count=1
        )
        if claimed:
            msg_id, fields = claimed[0]
            if fields:  # an entry deleted meanwhile comes back empty
                return Message(investigation_id=fields["inv"], handle=msg_id, attempts=2)
            self.r.xack(self.stream, self.group, msg_id)
        # redis-py types the reply as the union of its RESP2 and RESP3 shapes; this client speaks RESP2
        # with decode_responses=True: [[stream, [(entry id, {field: value})]]], or None on a timeout
        got = cast(
            "list[tuple[str, list[tuple[str, dict[str, str]]]]] | None",
            self.r.xreadgroup(self.group, consumer, {self.stream: ">"}, count=1, block=int(block_s * 1000)),
        )
        if not got:
            return None
        _stream, entries = got[0]
        msg_id, fields = entries[0]
        return Message(investigation_id=fields["inv"], handle=msg_id)

    def touch(self, msg: Message, consumer: str) -> None:
        self.r.xclaim(
            self.stream, self.group, consumer, min_idle_time=0, message_ids=[msg.handle], justid=True
        )

    def ack(self, msg: Message) -> None:
        self.r.xack(self.stream, self.group, msg.handle)

    def depth(self) -> tuple[int, float]:
        groups = {g["name"]: g for g in self.r.xinfo_groups(self.stream)}
        g = groups.get(self.group) or {}
        n = int(g.get("pending") or 0) + int(g.get("lag") or 0)
        oldest = 0.0
        pending = self.r.xpending(self.stream, self.group)
        first = pending.get("min") if isinstance(pending, dict) else None
        if not first and n:
            entries = self.r.xrange(self.stream, min=g.get("last-delivered-id", "0-0"), count=2)
            first = entries[-1][0] if entries else None
        if first:
            oldest = max(0.0, time.time() - int(str(first).split("-")[0]) / 1000)
        return n, oldest

    def ping(self) -> None:
        self.r.ping()


def open_queue(settings: Any, store: Store) -> WorkQueue:
    svc = settings.service
    if svc.redis_url:
        return RedisQueue(svc.redis_url, svc.redis_stream, svc.claim_timeout_s)
    return StoreQueue(store, svc.claim_timeout_s)


def requeue_orphans(store: Store, queue: WorkQueue, older_than_s: float) -> int:
    """Send again every investigation still `queued` after `older_than_s` (a message lost between a
    commit and its Redis XADD, or a crash); duplicates are harmless (one claim wins)."""
    if isinstance(queue, StoreQueue):
        return 0  # the queue row is written in the same transaction as the investigation
    cutoff = time.time() - older_than_s
    from datetime import UTC, datetime

    cut_iso = datetime.fromtimestamp(cutoff, UTC).isoformat()
    q = select(t.investigations.c.id).where(
        t.investigations.c.status == "queued", t.investigations.c.updated_at < cut_iso
    )
    with store.engine.connect() as c:
        ids = [r[0] for r in c.execute(q)]
    for inv_id in ids:
        queue.put(inv_id)
    return len(ids)
