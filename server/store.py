"""App state in SQLite: the index of investigations (for the approval queue and history)."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS investigations (
    thread_id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    kind TEXT NOT NULL,
    request TEXT NOT NULL,
    source_ref TEXT NOT NULL,
    model TEXT NOT NULL,
    status TEXT NOT NULL,
    proposals TEXT NOT NULL DEFAULT '[]',
    updated_at TEXT NOT NULL
)
"""


class InvestigationStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(path), check_same_thread=False)
        self._conn.row_factory = sqlite3.Row
        with self._conn:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute(SCHEMA)

    def close(self) -> None:
        self._conn.close()

    def record(
        self, thread_id: str, *, kind: str, request: str, source_ref: str, model: str, status: str
    ) -> None:
        now = datetime.now(UTC).isoformat()
        with self._conn:
            self._conn.execute(
                "INSERT OR REPLACE INTO investigations VALUES (?,?,?,?,?,?,?,?,?)",
                (thread_id, now, kind, request, source_ref, model, status, "[]", now),
            )

    def update(self, thread_id: str, *, status: str, proposals: list[dict[str, Any]] | None = None) -> None:
        now = datetime.now(UTC).isoformat()
        with self._conn:
            if proposals is None:
                self._conn.execute(
                    "UPDATE investigations SET status=?, updated_at=? WHERE thread_id=?",
                    (status, now, thread_id),
                )
            else:
                self._conn.execute(
                    "UPDATE investigations SET status=?, proposals=?, updated_at=? WHERE thread_id=?",
                    (status, json.dumps(proposals), now, thread_id),
                )

    def get(self, thread_id: str) -> dict[str, Any] | None:
        row = self._conn.execute("SELECT * FROM investigations WHERE thread_id=?", (thread_id,)).fetchone()
        return _row(row) if row else None

    def list(self, status: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        if status:
            rows = self._conn.execute(
                "SELECT * FROM investigations WHERE status=? ORDER BY created_at DESC LIMIT ?",
                (status, limit),
            )
        else:
            rows = self._conn.execute(
                "SELECT * FROM investigations ORDER BY created_at DESC LIMIT ?", (limit,)
            )
        return [_row(r) for r in rows.fetchall()]


def _row(row: sqlite3.Row) -> dict[str, Any]:
    out = dict(row)
    out["proposals"] = json.loads(out["proposals"])
    return out
