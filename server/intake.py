"""Alert intake: store the webhook body, deduplicate by fingerprint, start one investigation per entity.

Everything for one body happens in one store transaction (body, alerts, investigations, queue
entries): a malformed body is refused before anything is written, and nothing is half-stored.
Concurrent bodies share a transaction (the group commit of server/batcher.py); their rows are
written with one compiled statement per table (server/rawsql.py), and the answers are plain data
serialised once (`Accepted`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from pydantic import BaseModel, Field
from sqlalchemy import Connection, bindparam, select, update

from graphs.alerts import Alert, AlertError, normalize_alert
from server import schema as t
from server.investigations import Investigations, NewInvestigation
from server.queue import WorkQueue
from server.rawsql import Statement, fetch, pipelined, placeholder
from server.store import ID_STAMP, utcnow

OPEN = ("queued", "investigating", "awaiting_approval")


def split_by_entity(source: str | None, body: Any) -> tuple[list[list[Alert]], int]:
    """The firing alerts grouped by entity (first-seen order), and how many were resolved."""
    alerts = normalize_alert(source, body)
    groups: dict[str | None, list[Alert]] = {}
    for a in alerts:
        if a.status != "resolved":
            groups.setdefault(a.entity, []).append(a)
    return list(groups.values()), sum(a.status == "resolved" for a in alerts)


class AlertOutcome(BaseModel):
    """What happened to one alert of a webhook body."""

    alert_id: str
    fingerprint: str
    status: str = Field(description="firing | resolved")
    entity: str | None
    deduplicated: bool = Field(description="a repeat that updated an open alert instead of a new one")
    count: int = Field(description="how often this alert has been received while open")
    investigation_id: str | None = Field(
        description="the investigation it started or joined; None when resolved"
    )


class IntakeResult(BaseModel):
    """The 202 answer: the stored body, each alert's outcome, the investigations started."""

    body_id: str
    source: str
    alerts: list[AlertOutcome]
    investigations_started: list[str]
    notes: list[str] = Field(default_factory=list)


@dataclass(slots=True)
class Accepted:
    """One stored body's answer as plain data (the fields of `IntakeResult`): the webhook route
    serialises it once with orjson, the Python API validates it into an `IntakeResult`."""

    body_id: str
    source: str
    alerts: list[dict[str, Any]]
    investigations_started: list[str]
    notes: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "body_id": self.body_id,
            "source": self.source,
            "alerts": self.alerts,
            "investigations_started": self.investigations_started,
            "notes": self.notes,
        }

    def json(self) -> bytes:
        return orjson.dumps(self.as_dict())

    def result(self) -> IntakeResult:
        return IntakeResult.model_validate(self.as_dict())

    @property
    def deduplicated(self) -> int:
        """Firing alerts that joined an open alert (the metric `alerts_deduplicated`)."""
        return sum(1 for a in self.alerts if a["deduplicated"] and a["status"] == "firing")


class Intake:
    """Accepts alert bodies for one process; `enqueue` hands new investigations to the workers."""

    def __init__(
        self, service: Investigations, source_ref: str, queue: WorkQueue, clock: datetime | None = None
    ) -> None:
        self.clock = clock
        self.service = service
        self.store = service.store
        self.settings = service.settings
        self.source_ref = source_ref
        self.queue = queue
        self.sql = _Statements(self.store.engine.dialect)
        # With a non-transactional queue (Redis) and `defer_publish`, the caller runs `publish`
        # after the 202s went out (GroupCommit's `after`): the investigations are committed as
        # `queued`, and a message lost in between is sent again by the workers' `requeue_orphans`.
        self.defer_publish = False

    def accept(self, source: str, raw: bytes, requester: str) -> IntakeResult:
        """Parse, normalise (AlertError with field paths when malformed), then store it all at once."""
        (result,) = self.accept_many([(source, raw, requester)])
        if isinstance(result, AlertError):
            raise result
        return result.result()

    def accept_many(self, items: list[tuple[str, bytes, str]]) -> list[Accepted | AlertError]:
        """Several bodies in one store transaction (group commit); a malformed one is refused alone
        and nothing of it is written. Rows of the same kind are written with one statement for the
        whole batch; they all commit together, or (if the transaction fails) none does."""
        results: list[Accepted | AlertError | None] = [None] * len(items)
        parsed: list[tuple[int, str, bytes, str, list[Alert]]] = []
        for i, (source, raw, requester) in enumerate(items):
            try:
                parsed.append((i, source, raw, requester, self._parse(source, raw)))
            except AlertError as exc:
                results[i] = exc
        if parsed:
            batch = _Batch(datetime.now(UTC), timedelta(minutes=self.settings.service.alert_cooldown_minutes))
            with self.store.tx() as conn:
                batch.open = self.sql.open_alerts(
                    conn, {(src, a.fingerprint) for _, src, _, _, al in parsed for a in al}
                )
                for i, source, raw, requester, alerts in parsed:
                    results[i] = self._store(conn, batch, source, raw, requester, alerts)
                batch.write(conn, self.sql, self.queue)
            if not self.queue.transactional and batch.started and not self.defer_publish:
                self.queue.put_many(batch.started, None)
        return [r for r in results if r is not None]

    def publish(self, results: list[Accepted | AlertError]) -> None:
        """Hand the investigations the bodies started to a non-transactional queue (Redis)."""
        started = [i for r in results if isinstance(r, Accepted) for i in r.investigations_started]
        if started and not self.queue.transactional:
            self.queue.put_many(started, None)

    @staticmethod
    def _parse(source: str, raw: bytes) -> list[Alert]:
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise AlertError(
                f"{source} payload: not valid JSON ({exc})", [f"body: not valid JSON ({exc})"]
            ) from None
        return normalize_alert(source, body)

    def _store(
        self, conn: Connection, batch: _Batch, source: str, raw: bytes, requester: str, alerts: list[Alert]
    ) -> Accepted:
        """One body's rows into the batch: its alerts deduplicated against the open ones (and the
        batch's earlier bodies), one investigation per new entity."""
        now = batch.now
        body_id = batch.new_id("body")
        batch.bodies.append(
            {"id": body_id, "source": source, "received_at": batch.now_iso, "size": len(raw),
             "body": raw.decode("utf-8")}
        )  # fmt: skip
        outcomes: list[dict[str, Any]] = []
        started: list[str] = []
        by_entity: dict[str | None, str] = {}
        for a in alerts:
            key = (source, a.fingerprint)
            existing = batch.open.get(key)
            if a.status == "resolved":
                outcomes.append(self._resolve(batch, a, existing, body_id))
                batch.open.pop(key, None)
                continue
            if existing is not None and self._joinable(conn, existing, now, batch.cooldown):
                existing["count"] += 1
                existing["last_seen"] = batch.now_iso
                batch.touch(existing)
                outcomes.append(
                    _outcome(existing["id"], a, True, existing["count"], existing["investigation_id"])
                )
                continue
            if existing is not None:  # past its cooldown and its investigation closed: a new episode
                existing["status"] = "superseded"
                batch.touch(existing)
            alert_id = batch.new_id("alr")
            if a.entity not in by_entity:
                row = self.service.prepare(
                    NewInvestigation(
                        kind="alert", requester=requester, source_ref=self.source_ref, now=self.clock,
                        alert_ids=[alert_id], investigation_id=batch.new_id("inv"),
                    ),
                    alert=a,
                )  # fmt: skip
                batch.investigations.append(row)
                by_entity[a.entity] = row["id"]
                started.append(row["id"])
            row = _alert_row(alert_id, a, body_id, batch.now_iso, by_entity[a.entity])
            batch.alerts.append(row)
            batch.open[key] = row  # a repeat later in this batch joins it
            outcomes.append(_outcome(alert_id, a, False, 1, by_entity[a.entity]))
        batch.started += started
        notes = sorted({n for a in alerts for n in a.notes})
        if len(by_entity) > 1:
            notes.append(
                f"{len(by_entity)} entities in one body "
                f"({', '.join(e or '(no entity)' for e in by_entity)}): one investigation each"
            )
        return Accepted(body_id, source, outcomes, started, notes)

    def _joinable(
        self, conn: Connection, existing: dict[str, Any], now: datetime, cooldown: timedelta
    ) -> bool:
        """A repeat joins its alert while the investigation is open or within the cooldown."""
        if datetime.fromisoformat(existing["last_seen"]) + cooldown > now:
            return True
        inv = conn.execute(
            select(t.investigations.c.status).where(t.investigations.c.id == existing["investigation_id"])
        ).first()
        return bool(inv and inv[0] in OPEN)

    @staticmethod
    def _resolve(batch: _Batch, a: Alert, existing: dict[str, Any] | None, body_id: str) -> dict[str, Any]:
        """A resolved notification closes its alert; it never starts an investigation."""
        if existing is None:
            alert_id = batch.new_id("alr")
            batch.alerts.append(_alert_row(alert_id, a, body_id, batch.now_iso, None, status="resolved"))
            return _outcome(alert_id, a, False, 1, None)
        existing.update(status="resolved", resolved_at=batch.now_iso, last_seen=batch.now_iso)
        batch.touch(existing)
        return _outcome(existing["id"], a, True, existing["count"], existing["investigation_id"])


def _outcome(alert_id: str, a: Alert, dup: bool, count: int, inv_id: str | None) -> dict[str, Any]:
    """An `AlertOutcome` as plain data."""
    return {
        "alert_id": alert_id,
        "fingerprint": a.fingerprint,
        "status": a.status if a.status == "resolved" else "firing",
        "entity": a.entity,
        "deduplicated": dup,
        "count": count,
        "investigation_id": inv_id,
    }


def _alert_row(
    alert_id: str, a: Alert, body_id: str, now_iso: str, inv_id: str | None, status: str = "firing"
) -> dict[str, Any]:
    return {
        "id": alert_id,
        "source": a.source,
        "fingerprint": a.fingerprint,
        "group_key": a.group_key,
        "name": a.name[:500],
        "entity": a.entity,
        "severity": a.severity.value,
        "status": status,
        "count": 1,
        "first_seen": now_iso,
        "last_seen": now_iso,
        "resolved_at": now_iso if status == "resolved" else None,
        "investigation_id": inv_id,
        "body_id": body_id,
        "summary": a.summary[:1000],
        "notes": a.notes,
    }


_OPEN_COLUMNS = ("id", "fingerprint", "status", "count", "last_seen", "resolved_at", "investigation_id")


class _Statements:
    """The intake's statements, compiled once for the store's dialect (see server/rawsql.py)."""

    def __init__(self, dialect: Any) -> None:
        self.bodies = Statement.insert(t.alert_bodies, dialect)
        self.alerts = Statement.insert(t.alerts, dialect)
        self.investigations = Statement.insert(t.investigations, dialect)
        self.update_alert = Statement(
            update(t.alerts)
            .where(t.alerts.c.id == bindparam("b_id"))
            .values(
                status=bindparam("b_status"),
                count=bindparam("b_count"),
                last_seen=bindparam("b_last_seen"),
                resolved_at=bindparam("b_resolved_at"),
            ),
            dialect,
        )
        self.mark = placeholder(dialect)
        self._open_sql: dict[int, str] = {}

    def open_alerts(
        self, conn: Connection, keys: set[tuple[str, str]]
    ) -> dict[tuple[str, str], dict[str, Any]]:
        """The open (firing) alert of each (source, fingerprint), in one query per source (the
        latest seen wins when, from an older release, several are open)."""
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for source in sorted({s for s, _ in keys}):
            fingerprints = sorted({f for s, f in keys if s == source})
            for row in fetch(conn, self._open_query(len(fingerprints)), [source, *fingerprints]):
                found[(source, row[1])] = dict(zip(_OPEN_COLUMNS, row, strict=True))
        return found

    def _open_query(self, n: int) -> str:
        sql = self._open_sql.get(n)
        if sql is None:
            m = self.mark
            sql = (
                f"SELECT {', '.join(_OPEN_COLUMNS)} FROM alerts WHERE source = {m} AND status = 'firing' "
                f"AND fingerprint IN ({', '.join([m] * n)}) ORDER BY last_seen"
            )
            if len(self._open_sql) < 256:
                self._open_sql[n] = sql
        return sql


class _Batch:
    """The rows of one group commit, written with one statement per table."""

    def __init__(self, now: datetime, cooldown: timedelta) -> None:
        self.now = now
        self.now_iso = now.isoformat()
        self.stamp = now.strftime(ID_STAMP)
        self.cooldown = cooldown
        self.open: dict[tuple[str, str], dict[str, Any]] = {}
        self.bodies: list[dict[str, Any]] = []
        self.alerts: list[dict[str, Any]] = []
        self.investigations: list[dict[str, Any]] = []
        self.updated: dict[str, dict[str, Any]] = {}  # existing alerts changed (by id)
        self.started: list[str] = []

    def new_id(self, prefix: str) -> str:
        """`store.new_id` with the batch's time stamp (formatted once per batch)."""
        return f"{prefix}-{self.stamp}-{os.urandom(6).hex()}"

    def touch(self, row: dict[str, Any]) -> None:
        if not any(row is new for new in self.alerts):  # new rows are inserted as they are
            self.updated[row["id"]] = row

    def write(self, conn: Connection, sql: _Statements, queue: WorkQueue) -> None:
        with pipelined(conn):  # PostgreSQL: one round trip for all of them
            sql.bodies.executemany(conn, self.bodies)
            sql.investigations.executemany(conn, self.investigations)
            sql.alerts.executemany(conn, self.alerts)
            if self.updated:
                keys = ("id", "status", "count", "last_seen", "resolved_at")
                sql.update_alert.executemany(
                    conn, [{f"b_{k}": r.get(k) for k in keys} for r in self.updated.values()]
                )
            if queue.transactional and self.started:
                queue.put_many(self.started, conn)


def list_alerts(store: Any, status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    q = select(t.alerts).order_by(t.alerts.c.last_seen.desc()).limit(limit)
    if status:
        q = q.where(t.alerts.c.status == status)
    with store.engine.connect() as c:
        return [dict(r) for r in c.execute(q).mappings()]


__all__ = ["Accepted", "AlertOutcome", "Intake", "IntakeResult", "list_alerts", "split_by_entity", "utcnow"]
