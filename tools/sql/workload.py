"""What a statement does to the instance (reads, writes, maintenance) and who uses the CPU and writes.

Used by the database specialist's correlation (a write-heavy workload behind WAL waits) and by the
metrics specialist's `workload_attribution`, which ties a CPU rise or a write surge to statements."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel

from tools.base import Finding, Severity
from tools.sql.analysis import _lead, _total_ms, redacted
from tools.sql.waits import WaitProfile, wait_profile
from tools.world import Engine, QueryStatRow, WaitRow

StatementKind = Literal["read", "write", "maintenance"]

_COMMENTS = re.compile(r"/\*.*?\*/|--[^\n]*", re.DOTALL)
_TX_CONTROL = re.compile(r"^\s*(?:(?:begin|start transaction)\b[^;]*;|set\b[^;]*;)\s*", re.IGNORECASE)
_MAINTENANCE = re.compile(
    r"^\s*(?:autovacuum:|vacuum\b|analyze\b|reindex\b|cluster\b|checkpoint\b|postgres:\s*\w+)", re.IGNORECASE
)
_WRITE_VERBS = (
    "insert",
    "update",
    "delete",
    "merge",
    "upsert",
    "replace",
    "truncate",
    "create",
    "alter",
    "drop",
)
_READ_VERBS = ("select", "show", "explain", "values", "table", "fetch")


def statement_kind(sql_text: str | None) -> StatementKind | None:
    """Whether a statement changes data (INSERT/UPDATE/DELETE/MERGE/COPY ... FROM/DDL, SELECT ... INTO or
    FOR UPDATE, a WITH that writes), only reads (SELECT, COPY ... TO), or is maintenance (VACUUM, ANALYZE,
    autovacuum, the checkpointer). None when the text does not say. A leading BEGIN/SET is skipped."""
    if not sql_text:
        return None
    text = _COMMENTS.sub(" ", sql_text)
    while (m := _TX_CONTROL.match(text)) is not None:
        text = text[m.end() :]
    if _MAINTENANCE.match(text):
        return "maintenance"
    words = re.findall(r"[a-z_]+", text.lower())
    if not words:
        return None
    verb = words[0]
    if verb in _WRITE_VERBS:
        return "write"
    if verb == "copy":  # COPY t FROM ... loads; COPY t / (SELECT ...) TO ... exports
        outer = text
        while (inner := re.sub(r"\([^()]*\)", " ", outer)) != outer:
            outer = inner
        return "write" if re.search(r"\bfrom\b", outer, re.IGNORECASE) else "read"
    if verb == "with":
        return "write" if any(w in ("insert", "update", "delete", "merge") for w in words) else "read"
    if verb in _READ_VERBS:
        if re.search(r"\bfor\s+(?:no\s+key\s+)?update\b|\binto\s+(?!@)\w", text, re.IGNORECASE):
            return "write"
        return "read"
    return None


class StatementShare(BaseModel):
    """One statement with what it is and its shares of CPU and of statement time."""

    query_hash: str
    lead: str  # first words, e.g. "UPDATE orders SET status"
    sql_text: str | None  # redacted
    kind: StatementKind | None
    elapsed_share_pct: float  # of all listed statements' total elapsed time
    cpu_share_pct: (
        float | None
    )  # of the instance's CPU wait time (else of the statements' CPU); None: unknown
    execution_count: float | None


def _shares(queries: Sequence[QueryStatRow], cpu_total: float | None) -> list[StatementShare]:
    elapsed = sum(_total_ms(q) for q in queries)
    known_cpu = sum(q.total_cpu_ms or 0.0 for q in queries)
    cpu_base = cpu_total if cpu_total and cpu_total >= known_cpu else known_cpu
    out = []
    for q in queries:
        text = redacted(q.sql_text)
        cpu = None if q.total_cpu_ms is None or not cpu_base else round(100.0 * q.total_cpu_ms / cpu_base, 2)
        out.append(
            StatementShare(
                query_hash=q.query_hash,
                lead=_lead(text) or f"query {q.query_hash}",
                sql_text=text or None,
                kind=statement_kind(q.sql_text),
                elapsed_share_pct=round(100.0 * _total_ms(q) / elapsed, 2) if elapsed else 0.0,
                cpu_share_pct=cpu,
                execution_count=q.execution_count,
            )
        )
    return out


class Workload(BaseModel):
    """Who uses the CPU and who writes, from top statements and (when known) wait events."""

    profile: WaitProfile | None
    cpu_wait_share_pct: float | None  # CPU's share of non-benign wait time
    statements: list[StatementShare]  # largest elapsed share first

    def cpu_top(self, min_share: float = 50.0, min_cpu_waits: float = 10.0) -> StatementShare | None:
        """The statement holding >= `min_share`% of CPU and more than any other, when CPU is at least
        `min_cpu_waits`% of the wait time (if waits are known): too little CPU is no CPU story."""
        if self.cpu_wait_share_pct is not None and self.cpu_wait_share_pct < min_cpu_waits:
            return None
        ranked = sorted(
            (s for s in self.statements if s.cpu_share_pct is not None),
            key=lambda s: -(s.cpu_share_pct or 0.0),
        )
        shares = [s.cpu_share_pct or 0.0 for s in ranked]
        if not ranked or shares[0] < min_share or (len(shares) > 1 and shares[1] == shares[0]):
            return None
        return ranked[0]

    def writers(self, min_share: float = 10.0) -> list[StatementShare]:
        """Statements that change data or are maintenance, with >= `min_share`% of statement time."""
        return [
            s
            for s in self.statements
            if s.kind in ("write", "maintenance") and s.elapsed_share_pct >= min_share
        ]


def workload(queries: Sequence[QueryStatRow], waits: Sequence[WaitRow], engine: Engine | None) -> Workload:
    profile = wait_profile(waits, engine) if waits else None
    cpu_ms = None
    cpu_pct = None
    if profile is not None and profile.total_wait_ms > 0:
        cpu = next((c for c in profile.causes if c.cause == "cpu"), None)
        cpu_ms = cpu.wait_time_ms if cpu else 0.0
        cpu_pct = cpu.share_pct if cpu else 0.0
    statements = sorted(_shares(queries, cpu_ms), key=lambda s: (-s.elapsed_share_pct, s.query_hash))
    return Workload(profile=profile, cpu_wait_share_pct=cpu_pct, statements=statements)


def share(s: StatementShare) -> str:
    """'UPDATE orders SET status (86% of statement time)'."""
    return f"{s.lead} ({s.elapsed_share_pct:.0f}% of statement time)"


# --- database correlation: WAL waits + a write at the top ----------------------------------------

WAL_SHARE_PCT = 40.0  # WAL / log writes as the largest cause with at least this share of wait time
QUIET_WAIT_MS = 60_000


def wal_write_heavy(entity: str, findings: Sequence[Finding]) -> Finding | None:
    """A write-heavy workload generating WAL: on one instance, WAL / log writes are the largest wait
    cause (>= 40% of non-benign wait time) and the statement with the most elapsed time writes."""
    waits = next((f for f in findings if f.kind == "wait_profile" and f.entity == entity), None)
    tops = next((f for f in findings if f.kind == "top_statements" and f.entity == entity), None)
    if waits is None or tops is None or not tops.data.get("statements"):
        return None
    causes = waits.data.get("causes") or []
    total = float(waits.data.get("total_wait_ms") or 0.0)
    if not causes or causes[0].get("cause") != "log" or total < QUIET_WAIT_MS:
        return None
    log_share = float(causes[0].get("share_pct") or 0.0)
    top = tops.data["statements"][0]
    if log_share < WAL_SHARE_PCT or statement_kind(top.get("sql_text")) != "write":
        return None
    wal_waits = [w["wait_type"] for w in waits.data.get("waits") or [] if w.get("cause") == "log"]
    runs = f", {top['execution_count']:.0f} executions" if top.get("execution_count") else ""
    title = (
        f"Write-heavy workload on {entity} generating WAL: WAL / log writes are {log_share:.0f}% of wait "
        f"time ({', '.join(wal_waits[:2])}) and the top statement is a write, {top['lead']} "
        f"({float(top['share_pct']):.0f}% of statement time)"
    )
    detail = (
        f"{top.get('sql_text') or top['lead']}{runs}. Every change is written to the WAL before the data "
        "files; a streaming replica has to receive and replay all of it, so sustained WAL generation like "
        "this is what makes replicas fall behind (check replica lag) and what fills the WAL volume."
    )
    return Finding(
        specialist="database",
        entity=entity,
        kind="write_heavy_wal",
        severity=Severity.WARNING,
        title=title,
        detail=detail,
        evidence=list(dict.fromkeys([*waits.evidence, *tops.evidence])),
        data={"wal_share_pct": log_share, "statement": top},
    )
