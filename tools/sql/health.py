"""Analyzers for the first questions a DBA asks: long-running statements, connection saturation,
deadlocks, log that cannot be reused, replica lag, memory grants, version-store / xmin holders, and
wraparound / purge lag. Pure functions over SPEC rows; thresholds come from tools.sql.thresholds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, Field

from tools.sql.analysis import session_status
from tools.sql.blocking import SessionBrief, brief
from tools.sql.thresholds import SqlThresholds
from tools.world import DeadlockRow, Engine, LogReuseRow, ReplicaRow, ServerRow, SessionRow

Level = Literal["ok", "info", "warning", "critical"]
WRAPAROUND_LIMIT = 2**31  # transaction IDs PostgreSQL can tell apart before wraparound


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


# --- connections and workers ----------------------------------------------------------------------


class Saturation(BaseModel):
    what: str  # "connections", "worker threads"
    used: int
    limit: int
    pct: float
    level: Level


class ConnectionUse(BaseModel):
    saturation: list[Saturation] = Field(default_factory=list)
    queued_tasks: int | None = None  # tasks waiting for a worker thread
    refused_since_last: float | None = None
    refused_total: float | None = None
    max_used_connections: int | None = None
    active_connections: int | None = None
    level: Level = "ok"


def _level(pct: float, limits: SqlThresholds) -> Level:
    if pct >= limits.connections_critical_pct:
        return "critical"
    return "warning" if pct >= limits.connections_warn_pct else "ok"


def connection_use(now: ServerRow, earlier: ServerRow | None, limits: SqlThresholds) -> ConnectionUse:
    """Connections against the usable maximum (max_connections minus the superuser-reserved slots),
    worker threads against max workers (SQL Server), tasks queued for a worker, connections refused."""
    use = ConnectionUse(
        queued_tasks=now.queued_tasks,
        refused_total=now.refused_connections,
        max_used_connections=now.max_used_connections,
        active_connections=now.active_connections,
    )
    if now.connections is not None and now.max_connections:
        usable = max(1, now.max_connections - (now.reserved_connections or 0))
        pct = round(100.0 * now.connections / usable, 1)
        use.saturation.append(
            Saturation(
                what="connections", used=now.connections, limit=usable, pct=pct, level=_level(pct, limits)
            )
        )
    if now.workers is not None and now.max_workers:
        pct = round(100.0 * now.workers / now.max_workers, 1)
        use.saturation.append(
            Saturation(
                what="worker threads",
                used=now.workers,
                limit=now.max_workers,
                pct=pct,
                level=_level(pct, limits),
            )
        )
    if (
        earlier is not None
        and now.refused_connections is not None
        and earlier.refused_connections is not None
    ):
        use.refused_since_last = max(0.0, now.refused_connections - earlier.refused_connections)
    levels = [s.level for s in use.saturation]
    if (now.queued_tasks or 0) > 0 or (use.refused_since_last or 0) > 0:
        levels.append("critical" if (now.queued_tasks or 0) > 0 else "warning")
    use.level = max(levels, key=_rank, default="ok")
    return use


def _rank(level: Level) -> int:
    return {"ok": 0, "info": 1, "warning": 2, "critical": 3}[level]


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


# --- log reuse ------------------------------------------------------------------------------------

# sys.databases.log_reuse_wait_desc: what it means and what to do
LOG_REUSE_WAITS = {
    "LOG_BACKUP": "the log is waiting for a log backup: take one (and check the log backup job)",
    "ACTIVE_TRANSACTION": "an open transaction keeps the log from being truncated: end it",
    "ACTIVE_BACKUP_OR_RESTORE": "a backup or restore is running",
    "AVAILABILITY_REPLICA": "a secondary replica has not yet received or redone this log: check the "
    "availability group's send and redo queues",
    "DATABASE_MIRRORING": "the mirror has not yet received this log",
    "REPLICATION": "the replication log reader has not yet read this log (or CDC): check the Log Reader "
    "Agent",
    "DATABASE_SNAPSHOT_CREATION": "a database snapshot is being created",
    "LOG_SCAN": "a log scan is running",
    "OLDEST_PAGE": "indirect checkpoint has not yet written the oldest dirty page",
    "XTP_CHECKPOINT": "an In-Memory OLTP checkpoint is pending",
    "SLOG_SCAN": "accelerated database recovery's secondary log is being scanned",
}
FINE_REUSE = {None, "", "NOTHING", "CHECKPOINT"}


class LogReuseIssue(LogReuseRow):
    level: Level
    why: str
    holder_session: SessionBrief | None = None  # the oldest open transaction for ACTIVE_TRANSACTION


def log_reuse_issues(
    rows: Sequence[LogReuseRow], sessions: Sequence[SessionRow] | None, limits: SqlThresholds
) -> list[LogReuseIssue]:
    """Each log that cannot be reused and matters: a SQL Server log waiting on anything but a checkpoint
    while log_used_pct full (critical from 90%); a replication slot that is inactive, retains
    retained_log_mb of WAL, or has lost WAL; a failing WAL archiver; binlogs kept without expiry past
    retained_log_mb. Rows that are fine get level 'ok'."""
    out = []
    for r in rows:
        level, why = _reuse_level(r, limits)
        holder = None
        if (r.reason or "").upper() == "ACTIVE_TRANSACTION" and sessions:
            mine = [
                s
                for s in sessions
                if (s.open_transaction_count or 0) > 0
                and (r.database_name is None or s.database_name == r.database_name)
            ]
            oldest = max(mine, key=lambda s: s.transaction_ms or s.elapsed_ms or 0.0, default=None)
            holder = SessionBrief(**brief(oldest)) if oldest else None
        out.append(LogReuseIssue(**r.model_dump(), level=level, why=why, holder_session=holder))
    return sorted(out, key=lambda i: (-_rank(i.level), -(i.used_mb or 0.0)))


def _pct_used(r: LogReuseRow) -> float | None:
    cap = r.limit_mb or r.size_mb
    return 100.0 * r.used_mb / cap if r.used_mb is not None and cap else None


def _reuse_level(r: LogReuseRow, limits: SqlThresholds) -> tuple[Level, str]:
    reason = (r.reason or "").strip()
    pct = _pct_used(r)
    if r.log == "transaction log":
        meaning = LOG_REUSE_WAITS.get(reason.upper(), reason.lower().replace("_", " "))
        if reason.upper() in FINE_REUSE:
            return "ok", "reusable"
        if pct is not None and pct >= 90.0:
            return "critical", meaning
        if pct is not None and pct >= limits.log_used_pct:
            return "warning", meaning
        return "info", meaning
    retained = r.used_mb or 0.0
    lost = reason.lower() in ("lost", "unreserved")
    if r.log == "wal" and r.holder == "archiver":
        return ("warning", reason or "WAL archiving is failing") if reason else ("ok", "archiving")
    if lost:
        return "critical", f"the slot's WAL is {reason.lower()}: its consumer can no longer catch up"
    if r.limit_mb and retained >= 0.9 * r.limit_mb:
        return "critical", f"close to its limit ({r.limit_mb:.0f} MB)"
    if retained >= limits.retained_log_mb:
        if r.log == "binlog":
            return "warning", reason or "binlogs are kept and growing"
        return "warning", "inactive slot: its consumer is gone" if r.active is False else "a slow consumer"
    if r.active is False and retained >= 64.0:
        return "warning", "inactive slot: its consumer is gone, WAL piles up until it is dropped"
    return "ok", reason or "within limits"


# --- replication ----------------------------------------------------------------------------------


class ReplicaIssue(ReplicaRow):
    level: Level
    why: str


_HEALTHY_STATES = {"synchronized", "synchronizing", "streaming", "running", "yes", "connected", "healthy"}


def replica_issues(rows: Sequence[ReplicaRow], limits: SqlThresholds) -> list[ReplicaIssue]:
    """Each replica link with its level: an error or a disconnected replica is critical, lag from
    replica_lag_s a warning (critical from replica_lag_critical_s), send/redo queues from replica_queue_mb
    a warning."""
    out = []
    for r in rows:
        why: list[str] = []
        level: Level = "ok"
        if r.last_error:
            level, why = "critical", [f"error: {r.last_error}"]
        if r.connected is False or (r.state and r.state.strip().lower() not in _HEALTHY_STATES):
            level = "critical" if r.connected is False else max(level, "warning", key=_rank)
            why.append(f"state {r.state or 'disconnected'}")
        if r.lag_s is not None and r.lag_s >= limits.replica_lag_s:
            lvl: Level = "critical" if r.lag_s >= limits.replica_lag_critical_s else "warning"
            level = max(level, lvl, key=_rank)
            why.append(f"{r.lag_s:.0f} s behind")
        queue = max(r.send_queue_mb or 0.0, r.redo_queue_mb or 0.0)
        if queue >= limits.replica_queue_mb:
            level = max(level, "warning", key=_rank)
            why.append(f"{queue:.0f} MB queued")
        out.append(ReplicaIssue(**r.model_dump(), level=level, why="; ".join(why) or "in sync"))
    return sorted(out, key=lambda i: (-_rank(i.level), -(i.lag_s or 0.0), i.name))


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


# --- wraparound and purge -------------------------------------------------------------------------------


class Wraparound(BaseModel):
    applicable: bool = True
    xid_age: int | None = None
    xid_age_pct: float | None = None
    database_name: str | None = None
    mxid_age: int | None = None
    mxid_age_pct: float | None = None
    freeze_max_age: int | None = None
    history_list_length: int | None = None
    level: Level = "ok"


def wraparound(now: ServerRow | None, engine: Engine | None, limits: SqlThresholds) -> Wraparound:
    """PostgreSQL: the oldest database's age(datfrozenxid) and mxid_age(datminmxid) as a share of the 2^31
    limit (xid_age_warn_pct, xid_age_critical_pct); past autovacuum_freeze_max_age anti-wraparound vacuums
    run. MySQL/MariaDB: InnoDB's history list length (undo not yet purged) from history_list_length. SQL
    Server has no transaction ID wraparound (applicable False)."""
    if engine == "mssql":
        return Wraparound(applicable=False, level="info")
    w = Wraparound(freeze_max_age=now.freeze_max_age if now else None)
    if now is None:
        return w
    levels: list[Level] = []
    for age, attr in ((now.xid_age, "xid"), (now.mxid_age, "mxid")):
        if age is None:
            continue
        pct = round(100.0 * age / WRAPAROUND_LIMIT, 2)
        setattr(w, f"{attr}_age", age)
        setattr(w, f"{attr}_age_pct", pct)
        if pct >= limits.xid_age_critical_pct:
            levels.append("critical")
        elif pct >= limits.xid_age_warn_pct:
            levels.append("warning")
        elif now.freeze_max_age and age >= now.freeze_max_age:
            levels.append("info")
    w.database_name = now.xid_age_database
    w.history_list_length = now.history_list_length
    if now.history_list_length is not None and now.history_list_length >= limits.history_list_length:
        levels.append("warning")
    w.level = max(levels, key=_rank, default="ok")
    return w
