"""Analyzers for the DBA's capacity questions: connection and worker saturation, log that cannot be
reused, replica lag, wraparound and purge lag. Pure functions over SPEC rows; thresholds come from
tools.sql.thresholds."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, Field

from tools.sql.blocking import SessionBrief, brief
from tools.sql.health import Level, _rank
from tools.sql.thresholds import SqlThresholds
from tools.world import Engine, LogReuseRow, ReplicaRow, ServerRow, SessionRow

WRAPAROUND_LIMIT = 2**31  # transaction IDs PostgreSQL can tell apart before wraparound


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
