"""Alert intake: store the webhook body, deduplicate by fingerprint, start one investigation per entity.

Everything for one body happens in one store transaction (body, alerts, investigations, queue
entries): a malformed body is refused before anything is written, and nothing is half-stored.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import insert, select, update

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
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise AlertError(
                f"{source} payload: not valid JSON ({exc})", [f"body: not valid JSON ({exc})"]
            ) from None
        alerts = normalize_alert(source, body)
        now = datetime.now(UTC)
        cooldown = timedelta(minutes=self.settings.service.alert_cooldown_minutes)
        body_id = new_id("body")
        outcomes: list[AlertOutcome] = []
        started: list[str] = []
        notes: list[str] = sorted({n for a in alerts for n in a.notes})
        by_entity: dict[str | None, str] = {}
        with self.store.tx() as conn:
            conn.execute(
                insert(t.alert_bodies).values(
                    id=body_id,
                    source=source,
                    received_at=now.isoformat(),
                    size=len(raw),
                    body=raw.decode("utf-8"),
                )
            )
            for a in alerts:
                existing = self._open_alert(conn, source, a.fingerprint)
                if a.status == "resolved":
                    outcomes.append(self._resolve(conn, a, existing, body_id, now))
                    continue
                if existing is not None and self._joinable(conn, existing, now, cooldown):
                    conn.execute(
                        update(t.alerts)
                        .where(t.alerts.c.id == existing["id"])
                        .values(count=existing["count"] + 1, last_seen=now.isoformat())
                    )
                    outcomes.append(
                        AlertOutcome(
                            alert_id=existing["id"],
                            fingerprint=a.fingerprint,
                            status="firing",
                            entity=a.entity,
                            deduplicated=True,
                            count=existing["count"] + 1,
                            investigation_id=existing["investigation_id"],
                        )
                    )
                    continue
                if existing is not None:  # past its cooldown and its investigation closed: a new episode
                    conn.execute(
                        update(t.alerts).where(t.alerts.c.id == existing["id"]).values(status="superseded")
                    )
                alert_id = new_id("alr")
                if a.entity not in by_entity:
                    inv_id = self.service.create(
                        NewInvestigation(
                            kind="alert",
                            alert=a.model_dump(mode="json"),
                            requester=requester,
                            source_ref=self.source_ref,
                            now=self.clock,
                            alert_ids=[alert_id],
                        ),
                        conn,
                    )
                    by_entity[a.entity] = inv_id
                    started.append(inv_id)
                self._insert_alert(conn, alert_id, a, body_id, now, by_entity[a.entity])
                outcomes.append(
                    AlertOutcome(
                        alert_id=alert_id,
                        fingerprint=a.fingerprint,
                        status="firing",
                        entity=a.entity,
                        deduplicated=False,
                        count=1,
                        investigation_id=by_entity[a.entity],
                    )
                )
            if self.queue.transactional:
                for inv_id in started:
                    self.queue.put(inv_id, conn)
        if not self.queue.transactional:
            for inv_id in started:
                self.queue.put(inv_id)
        if len(by_entity) > 1:
            notes.append(
                f"{len(by_entity)} entities in one body "
                f"({', '.join(e or '(no entity)' for e in by_entity)}): one investigation each"
            )
        return IntakeResult(
            body_id=body_id, source=source, alerts=outcomes, investigations_started=started, notes=notes
        )

    def _open_alert(self, conn: Any, source: str, fingerprint: str) -> dict[str, Any] | None:
        row = (
            conn.execute(
                select(t.alerts)
                .where(t.alerts.c.source == source, t.alerts.c.fingerprint == fingerprint)
                .where(t.alerts.c.status == "firing")
                .order_by(t.alerts.c.last_seen.desc())
            )
            .mappings()
            .first()
        )
        return dict(row) if row else None

    def _joinable(self, conn: Any, existing: dict[str, Any], now: datetime, cooldown: timedelta) -> bool:
        """A repeat joins its alert while the investigation is open or within the cooldown."""
        if datetime.fromisoformat(existing["last_seen"]) + cooldown > now:
            return True
        inv = conn.execute(
            select(t.investigations.c.status).where(t.investigations.c.id == existing["investigation_id"])
        ).first()
        return bool(inv and inv[0] in OPEN)

    def _resolve(
        self, conn: Any, a: Alert, existing: dict[str, Any] | None, body_id: str, now: datetime
    ) -> AlertOutcome:
        """A resolved notification closes its alert; it never starts an investigation."""
        if existing is None:
            alert_id = new_id("alr")
            self._insert_alert(conn, alert_id, a, body_id, now, None, status="resolved")
            return AlertOutcome(
                alert_id=alert_id,
                fingerprint=a.fingerprint,
                status="resolved",
                entity=a.entity,
                deduplicated=False,
                count=1,
                investigation_id=None,
            )
        conn.execute(
            update(t.alerts)
            .where(t.alerts.c.id == existing["id"])
            .values(status="resolved", resolved_at=now.isoformat(), last_seen=now.isoformat())
        )
        return AlertOutcome(
            alert_id=existing["id"],
            fingerprint=a.fingerprint,
            status="resolved",
            entity=a.entity,
            deduplicated=True,
            count=existing["count"],
            investigation_id=existing["investigation_id"],
        )

    def _insert_alert(
        self,
        conn: Any,
        alert_id: str,
        a: Alert,
        body_id: str,
        now: datetime,
        inv_id: str | None,
        status: str = "firing",
    ) -> None:
        conn.execute(
            insert(t.alerts).values(
                id=alert_id,
                source=a.source,
                fingerprint=a.fingerprint,
                group_key=a.group_key,
                name=a.name[:500],
                entity=a.entity,
                severity=a.severity.value,
                status=status,
                count=1,
                first_seen=now.isoformat(),
                last_seen=now.isoformat(),
                resolved_at=now.isoformat() if status == "resolved" else None,
                investigation_id=inv_id,
                body_id=body_id,
                summary=a.summary[:1000],
                notes=a.notes,
            )
        )


def list_alerts(store: Any, status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    q = select(t.alerts).order_by(t.alerts.c.last_seen.desc()).limit(limit)
    if status:
        q = q.where(t.alerts.c.status == status)
    with store.engine.connect() as c:
        return [dict(r) for r in c.execute(q).mappings()]


__all__ = ["AlertOutcome", "Intake", "IntakeResult", "list_alerts", "split_by_entity", "utcnow"]
