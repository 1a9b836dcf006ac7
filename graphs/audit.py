"""The audit log: append-only and hash-chained. Proposals, decisions (accepted and refused),
executions and verifications each add one entry.

Every entry carries the hash of the entry before it (``prev_hash``; the first one sixty-four zeros)
and its own hash over all its fields, so an edited, reordered or deleted entry breaks the chain at
that point: :func:`verify_chain` names the first bad entry. Removing entries at the end leaves a
valid shorter chain; compare the head (`AuditLog.head`) with one recorded elsewhere to catch that.
Appends are idempotent by `event_key` (a resumed graph node that appends again adds nothing).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from graphs.sqldb import Database

GENESIS = "0" * 64
APPEND_LOCK = 0x6F707363  # PostgreSQL advisory lock serializing appends ("opsc")
SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_log (
    seq BIGINT PRIMARY KEY,
    at TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    subject TEXT NOT NULL,
    event_key TEXT NOT NULL UNIQUE,
    data TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
)
"""
COLUMNS = "seq, at, thread_id, kind, actor, subject, event_key, data, prev_hash, hash"


class AuditEntry(BaseModel):
    """One line of the trail. `data` is canonical JSON text, hashed as stored."""

    seq: int
    at: str
    thread_id: str
    kind: str
    actor: str = Field(description="who: a person, `policy`, or `opscopilot` for the copilot itself")
    subject: str = Field(description="what it is about: a proposal fingerprint, or the thread")
    event_key: str
    data: str
    prev_hash: str
    hash: str

    @property
    def details(self) -> dict[str, Any]:
        value = json.loads(self.data)
        return value if isinstance(value, dict) else {"value": value}

    def computed_hash(self) -> str:
        return entry_hash(
            self.seq,
            self.at,
            self.thread_id,
            self.kind,
            self.actor,
            self.subject,
            self.event_key,
            self.data,
            self.prev_hash,
        )


def entry_hash(*fields: Any) -> str:
    return hashlib.sha256(
        json.dumps(list(fields), ensure_ascii=False, separators=(",", ":")).encode()
    ).hexdigest()


def canonical(data: dict[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


class ChainProblem(BaseModel):
    seq: int
    problem: str


def verify_chain(entries: Iterable[AuditEntry]) -> tuple[int, ChainProblem | None]:
    """(entries checked, the first problem or None). Checks, entry by entry: the sequence has no gap
    and does not go back, the entry's content matches its hash, and its prev_hash is the hash of the
    entry before it."""
    expected_seq, prev, count = 1, GENESIS, 0
    for e in entries:
        count += 1
        where = f"entry {e.seq} ({e.kind} at {e.at})"
        if e.seq != expected_seq:
            if e.seq > expected_seq:
                gone = str(expected_seq) if e.seq == expected_seq + 1 else f"{expected_seq} to {e.seq - 1}"
                return count, ChainProblem(
                    seq=expected_seq, problem=f"entry {gone} is missing: the log jumps to {where} (deleted)"
                )
            return count, ChainProblem(
                seq=e.seq, problem=f"{where} is out of order after entry {expected_seq - 1}"
            )
        if e.computed_hash() != e.hash:
            return count, ChainProblem(
                seq=e.seq, problem=f"{where} was edited: its content no longer matches its hash"
            )
        if e.prev_hash != prev:
            return count, ChainProblem(
                seq=e.seq,
                problem=f"{where} does not follow entry {e.seq - 1}: its prev_hash is not that entry's hash "
                "(an entry before it was replaced, or entries were reordered)",
            )
        prev, expected_seq = e.hash, expected_seq + 1
    return count, None


class AuditLog:
    """The audit log in the store (SQLite by default, PostgreSQL when configured)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.db.run(SCHEMA)

    @classmethod
    def open(cls, target: str | Path) -> AuditLog:
        return cls(Database(target))

    def close(self) -> None:
        self.db.close()

    def append(
        self,
        *,
        thread_id: str,
        kind: str,
        actor: str,
        subject: str,
        event_key: str,
        data: dict[str, Any] | None = None,
        at: datetime | None = None,
    ) -> AuditEntry:
        """Add an entry, chained to the last one; an entry with the same `event_key` is returned instead."""
        text = canonical(data or {})
        when = (at or datetime.now(UTC)).isoformat()
        for _ in range(20):  # writers are serialized; a seq taken all the same is retried on the next one
            with self.db.transaction(serialize=APPEND_LOCK) as run:
                found = run(f"SELECT {COLUMNS} FROM audit_log WHERE event_key = ?", (event_key,))
                if found:
                    return _entry(found[0])
                last = run("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1", ())
                seq, prev = (int(last[0][0]) + 1, str(last[0][1])) if last else (1, GENESIS)
                digest = entry_hash(seq, when, thread_id, kind, actor, subject, event_key, text, prev)
                try:
                    run(
                        f"INSERT INTO audit_log ({COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
                        (seq, when, thread_id, kind, actor, subject, event_key, text, prev, digest),
                    )
                except self.db.duplicate:
                    continue
                return AuditEntry(
                    seq=seq,
                    at=when,
                    thread_id=thread_id,
                    kind=kind,
                    actor=actor,
                    subject=subject,
                    event_key=event_key,
                    data=text,
                    prev_hash=prev,
                    hash=digest,
                )
        raise RuntimeError(f"could not append to the audit log in {self.db.where}: too much contention")

    def entries(self, thread_id: str | None = None) -> Iterator[AuditEntry]:
        if thread_id is None:
            rows = self.db.run(f"SELECT {COLUMNS} FROM audit_log ORDER BY seq")
        else:
            rows = self.db.run(
                f"SELECT {COLUMNS} FROM audit_log WHERE thread_id = ? ORDER BY seq", (thread_id,)
            )
        return (_entry(r) for r in rows)

    def find(self, event_key: str) -> AuditEntry | None:
        rows = self.db.run(f"SELECT {COLUMNS} FROM audit_log WHERE event_key = ?", (event_key,))
        return _entry(rows[0]) if rows else None

    def head(self) -> tuple[int, str]:
        rows = self.db.run("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        return (int(rows[0][0]), str(rows[0][1])) if rows else (0, GENESIS)

    def verify(self) -> tuple[int, ChainProblem | None]:
        return verify_chain(self.entries())


def _entry(row: tuple[Any, ...]) -> AuditEntry:
    return AuditEntry(**dict(zip(COLUMNS.split(", "), row, strict=True)))


def read_jsonl(path: Path) -> Iterator[AuditEntry]:
    """Entries from an export (`opscopilot audit export`), to verify a copy kept elsewhere."""
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield AuditEntry.model_validate_json(line)
