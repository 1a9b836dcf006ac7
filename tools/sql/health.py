"""Analyzers for the DBA's first questions about sessions: long-running statements, deadlocks, memory
grants and version-store / xmin holders (capacity questions are in tools.sql.capacity). Pure functions
over SPEC rows; thresholds come from tools.sql.thresholds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, Field

from tools.sql.analysis import session_status
from tools.sql.blocking import SessionBrief, brief
from tools.sql.thresholds import SqlThresholds
from tools.world import DeadlockRow, Engine, ServerRow, SessionRow

Level = Literal["ok", "info", "warning", "critical"]
WRAPAROUND_LIMIT = 2**31  # transaction IDs PostgreSQL can tell apart before wraparound


def _rank(level: Level) -> int:
    return {"ok": 0, "info": 1, "warning": 2, "critical": 3}[level]


# --- long-running statements --------------------------------------------------------------------


class LongRunning(SessionBrief):
    cpu_time_ms: float | None = None
    blocked: bool = False
    level: Level = "warning"


def is_background(s: SessionRow) -> bool:
    """A server's own worker (PostgreSQL autovacuum), not a client's statement."""
    words = f"{s.status or ''} {s.program_name or ''} {(s.sql_text or '')[:12]}".lower()
    return "autovacuum" in words


def long_running(sessions: Sequence[SessionRow], limits: SqlThresholds) -> list[LongRunning]:
    """Active client statements running at least long_running_ms (critical from very_long_running_ms),
    longest first. Idle sessions are not statements, whatever their age; autovacuum is not a client's."""
    found = []
    for s in sessions:
        ms = s.elapsed_ms or 0.0
        if session_status(s) != "active" or ms < limits.long_running_ms or is_background(s):
            continue
        blocked = bool(s.blocked_by) or s.blocking_session_id not in (None, 0, s.session_id)
        level: Level = "critical" if ms >= limits.very_long_running_ms else "warning"
        found.append(LongRunning(**brief(s), cpu_time_ms=s.cpu_time_ms, blocked=blocked, level=level))
    return sorted(found, key=lambda r: (-r.elapsed_ms, r.session_id))


def longest_active(sessions: Sequence[SessionRow], n: int = 3) -> list[SessionRow]:
    """The n client statements running longest now, whatever their age (below the threshold too): what a
    DBA asking "anything long-running?" wants to see when nothing crosses the threshold."""
    active = [s for s in sessions if session_status(s) == "active" and not is_background(s) and s.elapsed_ms]
    return sorted(active, key=lambda s: (-(s.elapsed_ms or 0.0), s.session_id))[:n]


# --- deadlocks ------------------------------------------------------------------------------------


class DeadlockSummary(BaseModel):
    since_last: float | None = None  # deadlocks between the two samples
    interval_s: float | None = None
    total: float | None = None  # since the server started
    started_at: str | None = None
    latest: DeadlockRow | None = None
    level: Level = "ok"


def deadlock_summary(
    now: ServerRow | None, earlier: ServerRow | None, reports: Sequence[DeadlockRow], limits: SqlThresholds
) -> DeadlockSummary:
    """Deadlocks counted since the previous sample (and since start), and the latest one the engine
    recorded. One or more since the last sample is a warning, deadlocks_critical or more critical."""
    summary = DeadlockSummary(
        total=now.deadlocks if now else None,
        started_at=now.started_at.isoformat() if now and now.started_at else None,
    )
    if now and earlier and now.deadlocks is not None and earlier.deadlocks is not None:
        summary.since_last = max(0.0, now.deadlocks - earlier.deadlocks)
        if now.sampled_at and earlier.sampled_at:
            summary.interval_s = (now.sampled_at - earlier.sampled_at).total_seconds()
    dated = [r for r in reports if r.occurred_at is not None]
    summary.latest = max(dated, key=lambda r: r.occurred_at) if dated else (reports[0] if reports else None)  # type: ignore[arg-type,return-value]
    n = summary.since_last
    if n is not None and n >= limits.deadlocks_critical:
        summary.level = "critical"
    elif n:
        summary.level = "warning"
    elif summary.latest is not None or summary.total:
        summary.level = "info"
    return summary


# --- memory grants and spills -----------------------------------------------------------------------


class MemoryGrants(BaseModel):
    waiting: list[SessionBrief] = Field(default_factory=list)  # sessions waiting for a grant
    waiting_ms: dict[int, float] = Field(default_factory=dict)
    requested_mb: dict[int, float] = Field(default_factory=dict)
    largest: list[tuple[int, float]] = Field(default_factory=list)  # (session, granted MB)
    pending: int | None = None  # the server's count of queries waiting for a grant
    spills_since_last: float | None = None  # PostgreSQL temp files / MySQL on-disk temp tables
    spill_mb_since_last: float | None = None
    sort_spills_since_last: float | None = None
    interval_s: float | None = None
    level: Level = "ok"


def memory_grants(
    sessions: Sequence[SessionRow] | None,
    now: ServerRow | None,
    earlier: ServerRow | None,
    limits: SqlThresholds,
) -> MemoryGrants:
    """SQL Server: queries waiting for a memory grant (a warning from memory_grant_wait_ms, or whenever
    the server counts pending grants) and the largest grants. PostgreSQL and MySQL have no grant queue:
    queries that run out of work memory spill to disk instead - counted between two samples (temp files,
    on-disk temporary tables, sort merge passes) as information."""
    m = MemoryGrants(pending=now.memory_grants_pending if now else None)
    for s in sessions or []:
        if s.memory_requested_mb is not None and s.memory_granted_mb is None:
            m.waiting.append(SessionBrief(**brief(s)))
            m.waiting_ms[s.session_id] = s.memory_grant_wait_ms or 0.0
            m.requested_mb[s.session_id] = s.memory_requested_mb
        elif s.memory_granted_mb:
            m.largest.append((s.session_id, s.memory_granted_mb))
    m.largest = sorted(m.largest, key=lambda x: -x[1])[:5]
    if now and earlier:
        m.spills_since_last = _delta(now.temp_spills, earlier.temp_spills)
        m.spill_mb_since_last = _delta(now.temp_spill_mb, earlier.temp_spill_mb)
        m.sort_spills_since_last = _delta(now.sort_spills, earlier.sort_spills)
        if now.sampled_at and earlier.sampled_at:
            m.interval_s = (now.sampled_at - earlier.sampled_at).total_seconds()
    longest = max(m.waiting_ms.values(), default=0.0)
    if longest >= limits.memory_grant_wait_ms or (m.pending or 0) > 0:
        m.level = "warning"
    elif m.spills_since_last or m.sort_spills_since_last:
        m.level = "info"
    return m


def _delta(now: float | None, then: float | None) -> float | None:
    return None if now is None or then is None else max(0.0, now - then)


# --- version store / xmin horizon / undo holders ------------------------------------------------------


class VersionHolders(BaseModel):
    version_store_mb: float | None = None
    holders: list[SessionBrief] = Field(default_factory=list)  # oldest snapshot / transaction first
    holder_ms: dict[int, float] = Field(default_factory=dict)
    xmin_age: dict[int, int] = Field(default_factory=dict)
    tempdb: list[tuple[int, float]] = Field(default_factory=list)  # (session, MB) largest first
    prepared: str | None = None  # the oldest prepared transaction that holds back cleanup
    level: Level = "ok"


def version_holders(
    sessions: Sequence[SessionRow], now: ServerRow | None, engine: Engine | None, limits: SqlThresholds
) -> VersionHolders:
    """Who keeps old row versions alive: SQL Server sessions with the oldest snapshot / open transaction
    (the tempdb version store cannot shrink past them) and the largest tempdb users; PostgreSQL sessions
    holding back the xmin horizon (vacuum cannot remove dead tuples newer than it) and prepared
    transactions; MySQL transactions whose read view stops purge. A holder older than snapshot_age_ms is
    a warning, and so is a version store over version_store_mb."""
    v = VersionHolders(version_store_mb=now.version_store_mb if now else None)
    aged = []
    # a vacuum's own snapshot holds back nothing (other vacuums ignore it)
    for s in (s for s in sessions if not is_background(s)):
        age = s.snapshot_ms if s.snapshot_ms is not None else s.transaction_ms
        if age is None and (s.open_transaction_count or 0) > 0:
            age = s.elapsed_ms
        if age:
            aged.append((age, s))
        if s.xmin_age is not None:
            v.xmin_age[s.session_id] = s.xmin_age
        if s.tempdb_mb:
            v.tempdb.append((s.session_id, s.tempdb_mb))
    aged.sort(key=lambda a: (-a[0], a[1].session_id))
    if engine == "postgresql" and v.xmin_age:
        by_xmin = sorted(
            (s for s in sessions if s.session_id in v.xmin_age and not is_background(s)),
            key=lambda s: -(v.xmin_age[s.session_id]),
        )
        v.holders = [SessionBrief(**brief(s)) for s in by_xmin[:5]]
        v.holder_ms = {s.session_id: s.snapshot_ms or s.transaction_ms or 0.0 for s in by_xmin[:5]}
    else:
        v.holders = [SessionBrief(**brief(s)) for _, s in aged[:5]]
        v.holder_ms = {s.session_id: ms for ms, s in aged[:5]}
    v.tempdb = sorted(v.tempdb, key=lambda t: -t[1])[:5]
    if now and now.oldest_prepared_gid:
        v.prepared = now.oldest_prepared_gid
    old = any(ms >= limits.snapshot_age_ms for ms in v.holder_ms.values())
    big = (v.version_store_mb or 0.0) >= limits.version_store_mb
    v.level = "warning" if old or big or v.prepared else ("info" if v.holders else "ok")
    return v
