"""The database specialist's view tools: read one dataset, keep it as evidence, turn it into findings.

Here: blocking chains, files and space, and the list of every database tool. The others: waits
(tools.sql.wait_views), top queries (tools.sql.query_views), the DBA's session questions
(tools.sql.activity_views) and capacity questions (tools.sql.capacity_views). Plumbing lives in
tools.sql.common, session findings in tools.sql.session_findings, phrasing in tools.sql.wording."""

from __future__ import annotations

from collections.abc import Sequence

from tools.base import (
    Finding,
    ProposedAction,
    Severity,
    ToolResult,
    ViewTool,
    view_tool,
)
from tools.common import finding_on
from tools.sources import ToolContext
from tools.sql import analysis as an
from tools.sql.activity_views import deadlocks, long_running_statements, memory_grants, version_store_holders
from tools.sql.capacity_views import connection_saturation, log_reuse, replication_lag, wraparound_and_purge
from tools.sql.common import (
    MAX_EVIDENCE_ROWS,
    _analyze,
    _engine,
    _read,
    thresholds,
)
from tools.sql.query_views import top_queries
from tools.sql.session_findings import _chain_finding, _long_tx_finding, _summary_finding, session_target
from tools.sql.wait_views import wait_profile
from tools.sql.wording import _mb, _mins, _pct, _plural, _who
from tools.sql.workload import wal_write_heavy

__all__ = [
    "DATABASE_TOOLS",
    "MAX_EVIDENCE_ROWS",
    "NEEDS",
    "blocking_chains",
    "connection_saturation",
    "correlate",
    "deadlocks",
    "files_and_space",
    "log_reuse",
    "long_running_statements",
    "memory_grants",
    "replication_lag",
    "top_queries",
    "version_store_holders",
    "wait_profile",
    "wraparound_and_purge",
]


@view_tool("database", detects=("blocking", "open_transactions"))
def blocking_chains(ctx: ToolContext, entity: str) -> ToolResult:
    """Reads the current sessions of one database instance (SQL Server sessions with their waiting tasks,
    PostgreSQL pg_stat_activity with the full pg_blocking_pids array, MySQL processlist with InnoDB lock
    waits and metadata locks) and finds blocking chains: the head blocker, every session it blocks directly
    or through others with their wait types, lock modes and wait times, every other holder a waiter also
    waits on, the chain depth, and whether the head is sleeping / idle in transaction (then it proposes
    killing the head, for approval). A head that is not a session - a prepared transaction, SQL Server's
    orphaned distributed transaction (-2), deferred recovery transaction (-3), an untracked latch owner
    (-4) - is named for what it is with what to do, and is never a kill target. A chain is critical when a
    session has waited 30 s (sql_thresholds.lock_wait_ms). Also reports sessions that have kept a
    transaction open for 10 min or more (proposing to kill one idle in transaction for an hour or more),
    counts sessions by status with the applications, logins and hosts holding idle connections - a warning
    when idle connections are the large majority (a pool leak) - and says plainly when nothing is blocked."""
    ev, rows = _read(ctx, "blocking_chains", entity, "sessions", lambda src: src.sessions(entity))
    if rows is None:
        return ToolResult(evidence=[ev])
    sessions = rows
    limits = thresholds(ctx)

    def build() -> list[Finding]:
        chains = an.blocking_chains(sessions)
        longs = an.long_open_transactions(sessions)
        summary = an.session_summary(sessions)
        engine = _engine(ctx, entity) if longs else None
        blocked = len({sid for c in chains for sid in c.blocked_session_ids})
        ev.summary = f"{_plural(len(sessions), 'session')} on {entity}: " + (
            f"{blocked} blocked, head blocker(s) "
            + ", ".join(c.head_words.removeprefix("session ") for c in chains)
            if chains
            else "none blocked"
        )
        findings = [_chain_finding(ev, c, limits.lock_wait_ms) for c in chains]
        findings += [_long_tx_finding(ev, t, engine) for t in longs]
        if summary.connection_pressure or (summary.total >= an.MIN_SESSIONS_FOR_SHARE and summary.idle):
            findings.append(_summary_finding(ev, summary))
        if sessions and not chains:
            findings.append(
                finding_on(
                    ev,
                    "no_blocking",
                    Severity.INFO,
                    f"No blocking on {entity}",
                    f"{_plural(len(sessions), 'session')} checked; none is blocked by another session.",
                    sessions=len(sessions),
                )
            )
        return findings

    return _analyze(ev, build)


# --- files --------------------------------------------------------------------------------------

_FLAG_TITLES = {
    "tempdb_nearly_full": ("tempdb nearly full", Severity.CRITICAL),
    "log_nearly_full": ("Transaction log nearly full", Severity.CRITICAL),
    "near_max_size": ("Data file near its max size", Severity.WARNING),
    "volume_low": ("Volume nearly out of space for data files", Severity.WARNING),
}


def _file_brief(f: an.FileSpace) -> str:
    where = ", at max size" if f.at_max_size else f", {_mb(f.growth_room_mb)} MB room to grow"
    return f"{f.file_name} {_pct(f.pct_used or 0.0)} used ({_mb(f.used_mb)} of {_mb(f.size_mb)} MB{where})"


def _file_detail(f: an.FileSpace, allocated: bool = True) -> str:
    limit = "max size" if f.max_size_mb is not None else "unlimited"
    if f.max_size_mb is not None:
        limit += f" {_mb(f.max_size_mb)} MB"
    vol = f", {_mb(f.volume_free_mb)} MB free on the volume" if f.volume_free_mb is not None else ""
    used = (
        f"{_mb(f.used_mb)} of {_mb(f.size_mb)} MB used ({_pct(f.pct_used or 0.0)})"
        if allocated
        else f"{_mb(f.size_mb)} MB"  # a size that is the data itself, not a file it fills
    )
    return (
        f"{f.file_name} ({f.type} file of {f.database_name}): {used}; {limit}{vol}; "
        f"{_pct(f.pct_of_capacity or 0.0)} of what it can grow to"
    )


_FLAG_HINTS = {
    "tempdb_nearly_full": "When tempdb fills, sorts, hashes, temp tables and row versions fail; common "
    "causes are a long-open transaction holding the version store, large spills and temp tables",
    "log_nearly_full": "When the log fills, every write fails (error 9002); check why the log cannot be "
    "truncated (log backups, a long-open transaction, replication)",
}


@view_tool("database", detects=("space",))
def files_and_space(ctx: ToolContext, entity: str) -> ToolResult:
    """Reads the data and log files of one database instance (SQL Server sys.master_files, or on Azure SQL
    Database the database's own files; PostgreSQL database sizes and the WAL directory; MySQL/MariaDB
    InnoDB tablespaces, the system and temporary tablespaces' configured maximums and the redo log's
    checkpoint age against Innodb_checkpoint_max_age): size, space used, max size and free space on the
    volume. Finds tempdb nearly full, transaction / redo logs nearly full, data files near their max size
    and volumes nearly out of space - each when a file has used 90% or more of what it can still grow to.
    Where the engine cannot say how much room is left (free disk space is not readable over SQL on
    PostgreSQL and MySQL) it says so instead of calling the files healthy."""
    ev, rows = _read(ctx, "files_and_space", entity, "files", lambda src: src.files(entity))
    if rows is None:
        return ToolResult(evidence=[ev])
    files = rows

    def build() -> list[Finding]:
        spaces = an.file_space(files)
        flagged = [s for s in spaces if s.flags]
        ev.summary = f"{_plural(len(spaces), 'database file')} on {entity}: {len(flagged)} nearly full"
        findings = []
        for flag, (words, severity) in _FLAG_TITLES.items():
            hit = [s for s in spaces if flag in s.flags]
            if not hit:
                continue
            title = f"{words} on {entity}: " + "; ".join(_file_brief(s) for s in hit)
            detail = "; ".join(_file_detail(s) for s in hit)
            if flag in _FLAG_HINTS:
                detail += f". {_FLAG_HINTS[flag]}"
            data = {"files": [s.model_dump(mode="json") for s in hit]}
            findings.append(finding_on(ev, flag, severity, title, detail + ".", **data))
        measured = [s for s in spaces if s.pct_of_capacity is not None]
        # a file nearly full of its allocated size grows into the volume: said, never called "not near full";
        # only SQL Server preallocates its files; PostgreSQL's database sizes and MySQL/MariaDB tablespaces
        # are the data itself and grow on demand
        allocated = _engine(ctx, entity) == "mssql"
        growing = [
            s for s in spaces if allocated and not s.flags and (s.pct_used or 0.0) >= an.NEARLY_FULL_PCT
        ]
        if growing:
            title = (
                f"Database files on {entity} nearly full of their allocated size, growing into free room: "
                + ("; ".join(_file_brief(s) for s in growing))
            )
            detail = "; ".join(_file_detail(s) for s in growing)
            findings.append(finding_on(ev, "file_growth_due", Severity.INFO, title, detail + "."))
        elif measured and not flagged:
            top = max(measured, key=lambda s: s.pct_of_capacity or 0.0)
            title = f"No database file on {entity} is near full"
            detail = f"{_plural(len(spaces), 'file')} checked; the fullest: {_file_detail(top, allocated)}."
            findings.append(finding_on(ev, "file_space_ok", Severity.INFO, title, detail))
        unmeasured = [s for s in spaces if s.pct_of_capacity is None]
        if unmeasured and not flagged:
            total = sum(s.used_mb if s.used_mb is not None else s.size_mb for s in unmeasured)
            title = (
                f"How full the volumes of {entity} are is unknown: free disk space cannot be read over SQL"
            )
            detail = (
                f"{_plural(len(unmeasured), 'file')} ({_mb(total)} MB in all) grow without a limit the "
                "database reports and the free space on their volume cannot be read over SQL: check the "
                "host's or "
                "cloud's disk metrics (e.g. FreeStorageSpace) before calling the disk healthy."
            )
            findings.append(finding_on(ev, "file_capacity_unknown", Severity.INFO, title, detail))
        return findings

    return _analyze(ev, build)


DATABASE_TOOLS: list[ViewTool] = [
    blocking_chains,
    wait_profile,
    top_queries,
    files_and_space,
    long_running_statements,
    connection_saturation,
    deadlocks,
    log_reuse,
    replication_lag,
    memory_grants,
    version_store_holders,
    wraparound_and_purge,
]

# the datasets each database tool needs (the playbook runs a tool when its source can answer them)
NEEDS: dict[str, tuple[str, ...]] = {
    "blocking_chains": ("sessions",),
    "wait_profile": ("waits",),
    "top_queries": ("top_queries",),
    "files_and_space": ("files",),
    "long_running_statements": ("sessions",),
    "connection_saturation": ("server",),
    "deadlocks": ("server",),
    "log_reuse": ("log_reuse",),
    "replication_lag": ("replicas",),
    "memory_grants": ("server",),
    "version_store_holders": ("sessions",),
    "wraparound_and_purge": ("server",),
}


# --- correlation across one instance's findings -------------------------------------------------


def correlate(findings: Sequence[Finding]) -> list[Finding]:
    """New findings that only a combination reveals (the caller appends them), per instance:
    tempdb nearly full + a long open transaction -> that transaction likely holds the tempdb version store;
    WAL / log writes as the largest wait cause + a write as the top statement -> a write-heavy workload."""
    added: list[Finding] = []
    entities = dict.fromkeys(f.entity for f in findings if f.specialist == "database")
    for entity in entities:
        mine = [f for f in findings if f.entity == entity and f.specialist == "database"]
        if not any(f.kind == "write_heavy_wal" for f in mine) and (wal := wal_write_heavy(entity, mine)):
            added.append(wal)
        tempdb = [f for f in mine if f.kind == "tempdb_nearly_full"]
        longs = [f for f in mine if f.kind == "long_open_transaction" and "session_id" in f.data]
        if not tempdb or not longs or any(f.kind == "tempdb_version_store_held" for f in mine):
            continue
        tx = max(longs, key=lambda f: float(f.data.get("elapsed_ms") or 0.0))
        sid, opened = tx.data["session_id"], _mins(float(tx.data.get("elapsed_ms") or 0.0))
        who = _who(tx.data.get("login_name"), tx.data.get("host_name"), tx.data.get("program_name"))
        evidence = list(dict.fromkeys(e for f in (*tempdb, tx) for e in f.evidence))
        full = tempdb[0].title.split(": ", 1)[-1]
        added.append(
            Finding(
                specialist="database",
                entity=entity,
                kind="tempdb_version_store_held",
                severity=Severity.CRITICAL,
                title=f"tempdb version store is likely held by session {sid}'s open transaction "
                f"(open {opened})",
                detail=(
                    f"On {entity}, tempdb is nearly full ({full}) while session {sid}"
                    + (f" ({who})" if who else "")
                    + f" has had a transaction open for {opened}. A long-open snapshot/transaction keeps "
                    "the tempdb version store from being cleaned up, so tempdb keeps filling until it ends; "
                    "killing the session rolls its transaction back and lets the version store be cleaned up."
                ),
                evidence=evidence,
                data={"session_id": sid, "elapsed_ms": tx.data.get("elapsed_ms")},
                remediation=ProposedAction(
                    action="kill_session",
                    target=f"{entity} session {sid}",
                    target_ref=session_target(entity, sid, an.SessionBrief.model_validate(tx.data)),
                    reason=(
                        f"Session {sid} has held a transaction open for {opened} while tempdb is nearly "
                        "full; ending it lets the version store be cleaned up."
                    ),
                    evidence=evidence,
                ),
            )
        )
    return added
