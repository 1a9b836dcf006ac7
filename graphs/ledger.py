"""The execution ledger: one row per idempotency key, claimed before an executor runs and finished
with its result, so a resumed node or a retried worker never runs an approved action twice.

A claim names its owner (host, process id) and time. A claim without a result is in flight while its
owner process lives on this host and its lease has not run out; after that it is stale, and the next
attempt asks the executor what the interrupted one did (`Executor.reconcile`) before doing anything.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel

from graphs.sqldb import Database
from tools.owners import owner_alive, owner_id

SCHEMA = """
CREATE TABLE IF NOT EXISTS action_runs (
    key TEXT PRIMARY KEY,
    thread_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    action TEXT NOT NULL,
    entity TEXT NOT NULL,
    dry_run INTEGER NOT NULL,
    owner TEXT NOT NULL,
    claimed_at TEXT NOT NULL,
    finished_at TEXT,
    outcome TEXT,
    result TEXT
)
"""
COLUMNS = (
    "key, thread_id, fingerprint, action, entity, dry_run, owner, claimed_at, finished_at, outcome, result"
)


class LedgerRow(BaseModel):
    key: str
    thread_id: str
    fingerprint: str
    action: str
    entity: str
    dry_run: bool
    owner: str
    claimed_at: datetime
    finished_at: datetime | None = None
    outcome: str | None = None
    result: dict[str, Any] | None = None

    def stale(self, now: datetime, lease: timedelta) -> bool:
        """In flight no longer: its owner process is gone from this host, or the lease ran out."""
        if self.finished_at is not None:
            return False
        if owner_alive(self.owner) is False:
            return True
        return now - self.claimed_at > lease


class RunLedger:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.db.run(SCHEMA)

    def get(self, key: str) -> LedgerRow | None:
        rows = self.db.run(f"SELECT {COLUMNS} FROM action_runs WHERE key = ?", (key,))
        return _row(rows[0]) if rows else None

    def claim(
        self,
        key: str,
        *,
        thread_id: str,
        fingerprint: str,
        action: str,
        entity: str,
        dry_run: bool,
        now: datetime,
    ) -> bool:
        """Take the key; False when another attempt holds it already."""
        try:
            self.db.run(
                f"INSERT INTO action_runs ({COLUMNS}) VALUES (?,?,?,?,?,?,?,?,NULL,NULL,NULL)",
                (key, thread_id, fingerprint, action, entity, int(dry_run), owner_id(), now.isoformat()),
            )
        except self.db.duplicate:
            return False
        return True

    def take_over(self, key: str, previous_owner: str, now: datetime) -> bool:
        """Take a stale claim; False when someone else took it first."""
        with self.db.transaction() as run:
            rows = run("SELECT owner, finished_at FROM action_runs WHERE key = ?", (key,))
            if not rows or rows[0][0] != previous_owner or rows[0][1] is not None:
                return False
            run(
                "UPDATE action_runs SET owner = ?, claimed_at = ? WHERE key = ?",
                (owner_id(), now.isoformat(), key),
            )
        return True

    def finish(self, key: str, outcome: str, result: dict[str, Any], now: datetime) -> None:
        self.db.run(
            "UPDATE action_runs SET finished_at = ?, outcome = ?, result = ? "
            "WHERE key = ? AND finished_at IS NULL",
            (now.isoformat(), outcome, json.dumps(result, default=str), key),
        )

    def last_execution(self, entity: str, since: datetime, exclude: str) -> LedgerRow | None:
        """The latest real (not dry-run) execution on `entity` since `since`, other than `exclude`."""
        rows = self.db.run(
            f"SELECT {COLUMNS} FROM action_runs WHERE entity = ? AND dry_run = 0 AND outcome = 'executed' "
            "AND finished_at >= ? AND key <> ? ORDER BY finished_at DESC LIMIT 1",
            (entity, since.isoformat(), exclude),
        )
        return _row(rows[0]) if rows else None

    def runs(self, thread_id: str | None = None) -> list[LedgerRow]:
        if thread_id is None:
            rows = self.db.run(f"SELECT {COLUMNS} FROM action_runs ORDER BY claimed_at")
        else:
            rows = self.db.run(
                f"SELECT {COLUMNS} FROM action_runs WHERE thread_id = ? ORDER BY claimed_at", (thread_id,)
            )
        return [_row(r) for r in rows]


def _row(row: tuple[Any, ...]) -> LedgerRow:
    data = dict(zip(COLUMNS.split(", "), row, strict=True))
    data["result"] = json.loads(data["result"]) if data["result"] else None
    data["dry_run"] = bool(data["dry_run"])
    return LedgerRow.model_validate(data)
