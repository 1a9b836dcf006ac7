"""Deterministic analyzers over SQL instance rows: sessions by status, queries, file space.

Blocking lives in tools.sql.blocking and wait classification in tools.sql.waits; both are re-exported
here."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from tools.sql.blocking import (
    BlockedSession,
    BlockingChain,
    SessionBrief,
    blocking_chains,
    brief,
    is_idle_in_transaction,
    long_open_transactions,
    redacted,
    session_state,
)
from tools.sql.waits import (
    CAUSE_WORDS,
    CauseShare,
    WaitProfile,
    WaitShare,
    classify_wait,
    wait_label,
    wait_profile,
)
from tools.world import FileRow, QueryStatRow, SessionRow

__all__ = [
    "CAUSE_WORDS",
    "BlockedSession",
    "BlockingChain",
    "CauseShare",
    "SessionBrief",
    "WaitProfile",
    "WaitShare",
    "blocking_chains",
    "brief",
    "classify_wait",
    "is_idle_in_transaction",
    "long_open_transactions",
    "redacted",
    "session_state",
    "wait_label",
    "wait_profile",
]


# --- sessions by status and by who holds the idle ones -----------------------------------------

_ACTIVE_STATUSES = frozenset(
    {"active", "running", "runnable", "suspended", "pending", "fastpath function call"}
)
_ACTIVE_COMMANDS = frozenset({"query", "execute", "prepare", "fetch", "long data", "field list"})
_BACKGROUND = frozenset({"background", "dormant", "preconnect", "daemon", "binlog dump", "binlog dump gtid"})
IDLE_STATUSES = ("idle", "sleeping", "idle in transaction")
MANY_IDLE = 50  # this many idle sessions, as a majority, is connection pressure...
MANY_IDLE_SHARE_PCT = 80.0  # ...and so is this share of idle sessions...
MIN_SESSIONS_FOR_SHARE = 20  # ...once there are at least this many sessions


def session_status(s: SessionRow) -> str:
    """One of: active, idle, sleeping, idle in transaction, background, other, unknown.

    Postgres 'idle' and SQL Server / MySQL 'sleeping' (Sleep) sessions are connected but doing nothing;
    with an open transaction either is 'idle in transaction'."""
    if is_idle_in_transaction(s):
        return "idle in transaction"
    status, command = (s.status or "").strip().lower(), (s.command or "").strip().lower()
    if status == "idle":
        return "idle"
    if status in {"sleeping", "sleep"} or command == "sleep":
        return "sleeping"
    if status in _BACKGROUND or command in _BACKGROUND:
        return "background"
    if status in _ACTIVE_STATUSES or command in _ACTIVE_COMMANDS or status.startswith("active"):
        return "active"
    return "other" if status or command else "unknown"


class SessionHolder(BaseModel):
    """One application (program_name, else login, else host) and the idle sessions it holds."""

    name: str
    sessions: int
    logins: list[str] = Field(default_factory=list)
    hosts: list[str] = Field(default_factory=list)


class SessionSummary(BaseModel):
    total: int = 0
    by_status: dict[str, int] = Field(default_factory=dict)  # most sessions first
    idle: int = 0  # idle + sleeping + idle in transaction: connected, holding a slot, doing no work
    idle_share_pct: float = 0.0
    idle_holders: list[SessionHolder] = Field(default_factory=list)  # most idle sessions first
    connection_pressure: bool = False


def session_summary(sessions: Sequence[SessionRow]) -> SessionSummary:
    """Count sessions by status and group the idle ones by who holds them.

    Connection pressure: idle sessions are numerous and the large majority - at least MANY_IDLE and more
    than half of all sessions, or at least MANY_IDLE_SHARE_PCT of at least MIN_SESSIONS_FOR_SHARE."""
    counts: dict[str, int] = defaultdict(int)
    holders: dict[str, SessionHolder] = {}
    for s in sessions:
        status = session_status(s)
        counts[status] += 1
        if status not in IDLE_STATUSES:
            continue
        name = s.program_name or s.login_name or s.host_name or "unknown"
        h = holders.setdefault(name, SessionHolder(name=name, sessions=0))
        h.sessions += 1
        if s.login_name and s.login_name not in h.logins:
            h.logins.append(s.login_name)
        if s.host_name and s.host_name not in h.hosts:
            h.hosts.append(s.host_name)
    total = len(sessions)
    idle = sum(counts.get(k, 0) for k in IDLE_STATUSES)
    share = round(100.0 * idle / total, 2) if total else 0.0
    pressure = (idle >= MANY_IDLE and share > 50.0) or (
        total >= MIN_SESSIONS_FOR_SHARE and share >= MANY_IDLE_SHARE_PCT
    )
    for h in holders.values():
        h.logins.sort()
        h.hosts.sort()
    return SessionSummary(
        total=total,
        by_status=dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))),
        idle=idle,
        idle_share_pct=share,
        idle_holders=sorted(holders.values(), key=lambda h: (-h.sessions, h.name)),
        connection_pressure=pressure,
    )


# --- top queries ------------------------------------------------------------------------------


def _avg_ms(q: QueryStatRow) -> float | None:
    if q.avg_elapsed_ms is not None:
        return q.avg_elapsed_ms
    if q.total_elapsed_ms is not None and q.execution_count:
        return q.total_elapsed_ms / q.execution_count
    return None


def _total_ms(q: QueryStatRow) -> float:
    if q.total_elapsed_ms is not None:
        return q.total_elapsed_ms
    avg = _avg_ms(q)
    return avg * q.execution_count if avg is not None and q.execution_count else 0.0


class QueryRegression(QueryStatRow):
    """A statement now slower than its own baseline (sql_text redacted; avg derived when missing)."""

    ratio: float
    extra_elapsed_ms: float | None = None  # (avg - baseline) * executions: time lost to the regression

    @property
    def plan_changed(self) -> bool:
        return bool(self.plan_id and self.baseline_plan_id and self.plan_id != self.baseline_plan_id)


def _redacted_row(q: QueryStatRow) -> dict[str, Any]:
    return {**q.model_dump(), "sql_text": redacted(q.sql_text), "avg_elapsed_ms": _avg_ms(q)}


def regressed_queries(
    top_queries: Sequence[QueryStatRow], min_ratio: float = 2.0, min_avg_ms: float = 5.0
) -> list[QueryRegression]:
    """Statements now at least `min_ratio` times slower than their baseline and at least `min_avg_ms` slow.

    The current side is the plan in use now (the packs compare plan to plan, not the sum of every plan
    the query ever had)."""
    found = []
    for q in top_queries:
        avg, base, runs = _avg_ms(q), q.baseline_avg_elapsed_ms, q.execution_count
        if avg is None or not base or base <= 0 or avg < min_avg_ms or avg / base < min_ratio:
            continue
        extra = (avg - base) * runs if runs else None
        found.append(QueryRegression(**_redacted_row(q), ratio=avg / base, extra_elapsed_ms=extra))
    return sorted(found, key=lambda r: (-(r.extra_elapsed_ms or 0.0), -r.ratio, r.query_hash))


class PlanChange(QueryStatRow):
    """A query whose plan in use now is not the plan of its baseline (sql_text redacted)."""

    ratio: float | None = None  # now / baseline average, when both are known


def plan_changes(top_queries: Sequence[QueryStatRow]) -> list[PlanChange]:
    """Queries whose current plan differs from their baseline plan, latest change first."""
    found = []
    for q in top_queries:
        if not (q.plan_id and q.baseline_plan_id and q.plan_id != q.baseline_plan_id):
            continue
        avg, base = _avg_ms(q), q.baseline_avg_elapsed_ms
        found.append(PlanChange(**_redacted_row(q), ratio=avg / base if avg is not None and base else None))
    oldest = datetime.min.replace(tzinfo=None)
    return sorted(
        found,
        key=lambda p: p.plan_changed_at.replace(tzinfo=None) if p.plan_changed_at else oldest,
        reverse=True,
    )


class SlowStatement(QueryStatRow):
    """A statement slow in absolute terms, with no baseline to compare with (sql_text redacted)."""

    threshold_ms: float


def slow_without_baseline(
    top_queries: Sequence[QueryStatRow], slow_ms: float, min_executions: float = 1.0
) -> list[SlowStatement]:
    """Statements without a baseline whose average elapsed time is at least `slow_ms` (an absolute
    threshold: a statement averaging seconds is slow whatever it did last week), slowest first."""
    found = []
    for q in top_queries:
        avg = _avg_ms(q)
        if q.baseline_avg_elapsed_ms or avg is None or avg < slow_ms:
            continue
        if q.execution_count is not None and q.execution_count < min_executions:
            continue
        found.append(SlowStatement(**_redacted_row(q), threshold_ms=slow_ms))
    return sorted(found, key=lambda q: (-(q.avg_elapsed_ms or 0.0), q.query_hash))


class HeavyStatement(QueryStatRow):
    """One of the statements with the most total elapsed time (sql_text redacted)."""

    share_pct: float  # of the total elapsed time of all rows
    lead: str  # the first words of the statement, e.g. "UPDATE orders SET status"


def _lead(text: str, words: int = 4) -> str:
    """The first words of a statement, cut before a column list: 'INSERT INTO audit_log'."""
    return " ".join(text.split()[:words]).split(" (")[0].rstrip(",;( ")


def top_by_elapsed(top_queries: Sequence[QueryStatRow], n: int = 3) -> list[HeavyStatement]:
    """The `n` statements with the most total elapsed time, with their share of all statements' time."""
    total = sum(_total_ms(q) for q in top_queries)
    ranked = sorted((q for q in top_queries if _total_ms(q) > 0), key=lambda q: (-_total_ms(q), q.query_hash))
    return [
        HeavyStatement(
            **{**_redacted_row(q), "total_elapsed_ms": _total_ms(q)},
            share_pct=round(100.0 * _total_ms(q) / total, 2),
            lead=_lead(redacted(q.sql_text)) or f"query {q.query_hash}",
        )
        for q in ranked[:n]
    ]


# --- files ------------------------------------------------------------------------------------

NEARLY_FULL_PCT = 90.0


class FileSpace(FileRow):
    """A file with how full it is, how far it can still grow, and what is wrong with it."""

    pct_used: float | None = None  # of the file's current size
    growth_room_mb: float | None = None  # how far it can still grow: min(max - size, volume free)
    pct_of_capacity: float | None = None  # used / (size + growth room)
    at_max_size: bool = False
    limited_by: str | None = None  # "max_size" or "volume": what caps growth
    flags: list[str] = Field(default_factory=list)


def file_space(files: Sequence[FileRow]) -> list[FileSpace]:
    """Per file: percent used, room to grow, and flags.

    Flags: tempdb_nearly_full (any tempdb file), log_nearly_full (a log), near_max_size or volume_low
    (a data file, by what caps it) - each when used >= 90% of size plus growth room. A file that can grow
    without a known limit (no max size, free space on its volume unknown) has no capacity to measure
    against: it is never flagged, and pct_of_capacity stays None.
    """
    out = []
    for f in files:
        rooms: list[tuple[float, str]] = []
        if f.max_size_mb is not None:
            rooms.append((max(0.0, f.max_size_mb - f.size_mb), "max_size"))
        if f.volume_free_mb is not None:
            rooms.append((max(0.0, f.volume_free_mb), "volume"))
        room, limit = min(rooms) if rooms else (None, None)
        capacity = f.size_mb + room if room is not None else None
        used = f.used_mb
        pct_used = round(100.0 * used / f.size_mb, 2) if used is not None and f.size_mb > 0 else None
        pct_cap = round(100.0 * used / capacity, 2) if used is not None and capacity else None
        flags = []
        if pct_cap is not None and pct_cap >= NEARLY_FULL_PCT:
            if f.database_name.lower() == "tempdb":
                flags.append("tempdb_nearly_full")
            elif f.type == "log":
                flags.append("log_nearly_full")
            else:
                flags.append("volume_low" if limit == "volume" else "near_max_size")
        at_max = f.max_size_mb is not None and f.size_mb >= f.max_size_mb
        out.append(
            FileSpace(
                **f.model_dump(),
                pct_used=pct_used,
                growth_room_mb=room,
                pct_of_capacity=pct_cap,
                at_max_size=at_max,
                limited_by=limit,
                flags=flags,
            )
        )
    return out
