"""Alert intake: store the webhook body, deduplicate by fingerprint, start one investigation per entity.

Everything for one body happens in one store transaction (body, alerts, investigations, queue
entries): a malformed body is refused before anything is written, and nothing is half-stored.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import bindparam, select, update

from graphs.alerts import Alert, AlertError, normalize_alert
from server import schema as t
from server.investigations import Investigations, NewInvestigation
from server.queue import WorkQueue
from server.store import new_id, utcnow

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

    def accept(self, source: str, raw: bytes, requester: str) -> IntakeResult:
        """Parse, normalise (AlertError with field paths when malformed), then store it all at once."""
        (result,) = self.accept_many([(source, raw, requester)])
        if isinstance(result, AlertError):
            raise result
        return result

    def accept_many(self, items: list[tuple[str, bytes, str]]) -> list[IntakeResult | AlertError]:
        """Several bodies in one store transaction (group commit); a malformed one is refused alone
        and nothing of it is written. Rows of the same kind are written with one statement for the
        whole batch; they all commit together, or (if the transaction fails) none does."""
        results: list[IntakeResult | AlertError | None] = [None] * len(items)
        parsed: list[tuple[int, str, bytes, str, list[Alert]]] = []
        for i, (source, raw, requester) in enumerate(items):
            try:
                parsed.append((i, source, raw, requester, self._parse(source, raw)))
            except AlertError as exc:
                results[i] = exc
        if parsed:
            batch = _Batch(datetime.now(UTC), timedelta(minutes=self.settings.service.alert_cooldown_minutes))
            with self.store.tx() as conn:
                batch.open = self._open_alerts(
                    conn, {(src, a.fingerprint) for _, src, _, _, al in parsed for a in al}
                )
                for i, source, raw, requester, alerts in parsed:
                    results[i] = self._store(conn, batch, source, raw, requester, alerts)
                batch.write(conn, self.store, self.queue)
            if not self.queue.transactional and batch.started:
                self.queue.put_many(batch.started, None)
        return [r for r in results if r is not None]

    @staticmethod
    def _parse(source: str, raw: bytes) -> list[Alert]:
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise AlertError(
                f"{source} payload: not valid JSON ({exc})", [f"body: not valid JSON ({exc})"]
            ) from None
        return normalize_alert(source, body)

    def _store(
        self, conn: Any, batch: _Batch, source: str, raw: bytes, requester: str, alerts: list[Alert]
    ) -> IntakeResult:
        """One body's rows into the batch: its alerts deduplicated against the open ones (and the
        batch's earlier bodies), one investigation per new entity."""
        now = batch.now
        body_id = new_id("body")
        batch.bodies.append(
            {"id": body_id, "source": source, "received_at": now.isoformat(), "size": len(raw),
             "body": raw.decode("utf-8")}
        )  # fmt: skip
        outcomes: list[AlertOutcome] = []
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
                existing["last_seen"] = now.isoformat()
                batch.touch(existing)
                outcomes.append(
                    self._outcome(existing["id"], a, True, existing["count"], existing["investigation_id"])
                )
                continue
            if existing is not None:  # past its cooldown and its investigation closed: a new episode
                existing["status"] = "superseded"
                batch.touch(existing)
            alert_id = new_id("alr")
            if a.entity not in by_entity:
                row = self.service.prepare(
                    NewInvestigation(
                        kind="alert", requester=requester, source_ref=self.source_ref, now=self.clock,
                        alert_ids=[alert_id],
                    ),
                    alert=a,
                )  # fmt: skip
                batch.investigations.append(row)
                by_entity[a.entity] = row["id"]
                started.append(row["id"])
            row = self._alert_row(alert_id, a, body_id, now, by_entity[a.entity])
            batch.alerts.append(row)
            batch.open[key] = row  # a repeat later in this batch joins it
            outcomes.append(self._outcome(alert_id, a, False, 1, by_entity[a.entity]))
        batch.started += started
        notes = sorted({n for a in alerts for n in a.notes})
        if len(by_entity) > 1:
            notes.append(
                f"{len(by_entity)} entities in one body "
                f"({', '.join(e or '(no entity)' for e in by_entity)}): one investigation each"
            )
        return IntakeResult(
            body_id=body_id, source=source, alerts=outcomes, investigations_started=started, notes=notes
        )

    @staticmethod
    def _outcome(alert_id: str, a: Alert, dup: bool, count: int, inv_id: str | None) -> AlertOutcome:
        return AlertOutcome(
            alert_id=alert_id,
            fingerprint=a.fingerprint,
            status=a.status if a.status == "resolved" else "firing",
            entity=a.entity,
            deduplicated=dup,
            count=count,
            investigation_id=inv_id,
        )

    def _open_alerts(self, conn: Any, keys: set[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
        """The open (firing) alert of each (source, fingerprint), in one query per source."""
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for source in {s for s, _ in keys}:
            rows = conn.execute(
                select(t.alerts)
                .where(
                    t.alerts.c.source == source,
                    t.alerts.c.fingerprint.in_({f for s, f in keys if s == source}),
                )
                .where(t.alerts.c.status == "firing")
                .order_by(t.alerts.c.last_seen)
            ).mappings()
            found.update({(source, r["fingerprint"]): dict(r) for r in rows})
        return found

    def _joinable(self, conn: Any, existing: dict[str, Any], now: datetime, cooldown: timedelta) -> bool:
        """A repeat joins its alert while the investigation is open or within the cooldown."""
        if datetime.fromisoformat(existing["last_seen"]) + cooldown > now:
            return True
        inv = conn.execute(
            select(t.investigations.c.status).where(t.investigations.c.id == existing["investigation_id"])
        ).first()
        return bool(inv and inv[0] in OPEN)

    def _resolve(
        self, batch: _Batch, a: Alert, existing: dict[str, Any] | None, body_id: str
    ) -> AlertOutcome:
        """A resolved notification closes its alert; it never starts an investigation."""
        now = batch.now.isoformat()
        if existing is None:
            alert_id = new_id("alr")
            batch.alerts.append(self._alert_row(alert_id, a, body_id, batch.now, None, status="resolved"))
            return self._outcome(alert_id, a, False, 1, None)
        existing.update(status="resolved", resolved_at=now, last_seen=now)
        batch.touch(existing)
        return self._outcome(existing["id"], a, True, existing["count"], existing["investigation_id"])

    @staticmethod
    def _alert_row(
        alert_id: str, a: Alert, body_id: str, now: datetime, inv_id: str | None, status: str = "firing"
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
            "first_seen": now.isoformat(),
            "last_seen": now.isoformat(),
            "resolved_at": now.isoformat() if status == "resolved" else None,
            "investigation_id": inv_id,
            "body_id": body_id,
            "summary": a.summary[:1000],
            "notes": a.notes,
        }


_UPDATE_ALERT = (
    update(t.alerts)
    .where(t.alerts.c.id == bindparam("b_id"))
    .values(
        status=bindparam("b_status"),
        count=bindparam("b_count"),
        last_seen=bindparam("b_last_seen"),
        resolved_at=bindparam("b_resolved_at"),
    )
)


class _Batch:
    """The rows of one group commit, written with one statement per table."""

    def __init__(self, now: datetime, cooldown: timedelta) -> None:
        self.now = now
        self.cooldown = cooldown
        self.open: dict[tuple[str, str], dict[str, Any]] = {}
        self.bodies: list[dict[str, Any]] = []
        self.alerts: list[dict[str, Any]] = []
        self.investigations: list[dict[str, Any]] = []
        self.updated: dict[str, dict[str, Any]] = {}  # existing alerts changed (by id)
        self.started: list[str] = []

    def touch(self, row: dict[str, Any]) -> None:
        if not any(row is new for new in self.alerts):  # new rows are inserted as they are
            self.updated[row["id"]] = row

    def write(self, conn: Any, store: Any, queue: WorkQueue) -> None:
        conn.execute(t.alert_bodies.insert(), self.bodies)
        store.add_investigations(self.investigations, conn)
        if self.alerts:
            conn.execute(t.alerts.insert(), self.alerts)
        if self.updated:
            keys = ("id", "status", "count", "last_seen", "resolved_at")
            conn.execute(_UPDATE_ALERT, [{f"b_{k}": r.get(k) for k in keys} for r in self.updated.values()])
        if queue.transactional and self.started:
            queue.put_many(self.started, conn)


def list_alerts(store: Any, status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    q = select(t.alerts).order_by(t.alerts.c.last_seen.desc()).limit(limit)
    if status:
        q = q.where(t.alerts.c.status == status)
    with store.engine.connect() as c:
        return [dict(r) for r in c.execute(q).mappings()]


__all__ = ["AlertOutcome", "Intake", "IntakeResult", "list_alerts", "split_by_entity", "utcnow"]
