"""The database specialist's view tools: read one dataset, keep it as evidence, turn it into findings.

Plumbing lives in tools.sql.common, session findings in tools.sql.session_findings, phrasing in
tools.sql.wording."""

from __future__ import annotations

from collections.abc import Sequence

from tools.base import (
    ActionTarget,
    Evidence,
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
from tools.sql.common import MAX_EVIDENCE_ROWS, _analyze, _engine, _read
from tools.sql.session_findings import _chain_finding, _long_tx_finding, _summary_finding
from tools.sql.wording import _dur, _mb, _mins, _ms, _num, _pct, _plural, _who
from tools.sql.workload import wal_write_heavy

__all__ = ["DATABASE_TOOLS", "MAX_EVIDENCE_ROWS", "correlate"]

MATERIAL_EXTRA_MS = 60_000  # a regression costing less than a minute of total time is not critical
QUIET_WAIT_MS = 60_000  # less non-benign waiting than this is no story
# a dominant cause at or above this share of wait time is a warning; io is common, so it needs more
WARN_SHARE = {
    "locks": 50.0,
    "log": 50.0,
    "sync_replica": 50.0,
    "client": 50.0,
    "tempdb_allocation": 50.0,
    "memory": 50.0,
    "io": 75.0,
}


# what a dominant cause usually means, added to the wait finding's detail
CAUSE_HINTS = {
    "sync_replica": "Commits wait until a synchronous replica (availability group secondary, synchronous "
    "standby) has hardened their log records, so the synchronous replica or the link to it is slow, not "
    "the primary's own disks: check the replica's log send queue, redo and the network to it",
    "log": "Sessions wait for log records to reach disk or for log space: check the log volume's write "
    "latency and whether the log can be truncated",
}


@view_tool("database", detects=("blocking", "open_transactions"))
def blocking_chains(ctx: ToolContext, entity: str) -> ToolResult:
    """Reads the current sessions of one database instance (SQL Server requests and sessions, PostgreSQL
    pg_stat_activity, MySQL processlist) and finds blocking chains: the head blocker, every session it blocks
    directly or through others with their wait types and wait times, the chain depth, and whether the head
    is sleeping / idle in transaction (then it proposes killing the head, for approval). Also reports sessions
    that have kept a transaction open for a long time (proposing to kill one idle in transaction for an hour
    or more), counts sessions by status (active / idle / sleeping / idle in transaction) with the
    applications, logins and hosts holding idle connections - a warning when idle connections are the large
    majority (connection pool leak / connection pressure) - and says plainly when nothing is blocked."""
    ev, rows = _read(ctx, "blocking_chains", entity, "sessions", lambda src: src.sessions(entity))
    if rows is None:
        return ToolResult(evidence=[ev])
    sessions = rows

    def build() -> list[Finding]:
        chains = an.blocking_chains(sessions)
        longs = an.long_open_transactions(sessions)
        summary = an.session_summary(sessions)
        engine = _engine(ctx, entity) if longs else None
        blocked = sum(len(c.blocked) for c in chains)
        ev.summary = f"{_plural(len(sessions), 'session')} on {entity}: " + (
            f"{blocked} blocked, head blocker(s) {', '.join(str(c.head_session_id) for c in chains)}"
            if chains
            else "none blocked"
        )
        findings = [_chain_finding(ev, c) for c in chains]
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


# --- waits --------------------------------------------------------------------------------------


@view_tool("database", detects=("waits",))
def wait_profile(ctx: ToolContext, entity: str) -> ToolResult:
    """Reads the cumulative wait statistics of one database instance (SQL Server sys.dm_os_wait_stats,
    PostgreSQL wait events, MySQL performance_schema waits), drops benign idle waits, and groups the rest by
    cause: locks, data file I/O, CPU, WAL / log writes, commits waiting for a synchronous replica
    (HADR_SYNC_COMMIT, IPC:SyncRep), tempdb allocation latches, other latches, parallelism, memory, idle
    sessions waiting for the client. Names the top wait types with their share of wait time and
    the dominant cause."""
    ev, rows = _read(ctx, "wait_profile", entity, "waits", lambda src: src.waits(entity))
    if rows is None:
        return ToolResult(evidence=[ev])
    waits = rows

    def build() -> list[Finding]:
        if not waits:
            ev.summary = f"No wait statistics on {entity}"
            return []
        p = an.wait_profile(waits, _engine(ctx, entity))  # names suffice when the engine is unknown
        if p.total_wait_ms <= 0:
            ev.summary = f"{_plural(len(waits), 'wait type')} on {entity}, all benign/idle"
            title = f"Only benign idle waits on {entity}"
            return [finding_on(ev, "wait_profile", Severity.INFO, title, "", **p.model_dump(mode="json"))]
        top = p.causes[0]
        share = f"{_pct(top.share_pct)}, mostly {next(w.wait_type for w in p.waits if w.cause == top.cause)}"
        tops = ", ".join(f"{w.wait_type} ({w.label}) {_pct(w.share_pct)}" for w in p.waits[:5])
        causes = ", ".join(f"{c.label} {_pct(c.share_pct)}" for c in p.causes)
        ev.summary = (
            f"{_plural(len(waits), 'wait type')} on {entity}: {_dur(p.total_wait_ms)} of non-benign waits, "
            f"top cause {top.label} {_pct(top.share_pct)}"
        )
        if p.total_wait_ms < QUIET_WAIT_MS:
            title = f"Little waiting on {entity}: {_dur(p.total_wait_ms)} in total, mostly {top.label}"
        elif top.share_pct >= 50.0:
            title = f"Waits on {entity} are dominated by {top.label} ({share})"
        else:
            title = f"Wait profile on {entity} is mixed; largest cause {top.label} ({share})"
        detail = f"Top waits: {tops}. By cause: {causes}. Total non-benign wait time {_dur(p.total_wait_ms)}"
        if p.benign_types:
            detail += f"; {_plural(len(p.benign_types), 'benign idle wait type')} ignored"
        if top.cause in CAUSE_HINTS and top.share_pct >= 50.0 and p.total_wait_ms >= QUIET_WAIT_MS:
            detail += f". {CAUSE_HINTS[top.cause]}"
        warn_at = WARN_SHARE.get(top.cause)
        warn = warn_at is not None and top.share_pct >= warn_at and top.wait_time_ms >= QUIET_WAIT_MS
        severity = Severity.WARNING if warn else Severity.INFO
        return [finding_on(ev, "wait_profile", severity, title, detail + ".", **p.model_dump(mode="json"))]

    return _analyze(ev, build)


# --- top queries --------------------------------------------------------------------------------


def _ratio(r: float) -> str:
    return f"{r:.0f}x" if r >= 10 else f"{_num(r)}x"


def _regression_finding(ev: Evidence, r: an.QueryRegression) -> Finding:
    runs = f" over {r.execution_count:.0f} executions" if r.execution_count else ""
    extra = f" (about {_dur(r.extra_elapsed_ms)} of extra time)" if r.extra_elapsed_ms else ""
    detail = (
        f"query_hash {r.query_hash}: avg {_ms(r.avg_elapsed_ms)} now vs {_ms(r.baseline_avg_elapsed_ms)} "
        f"baseline{runs}{extra}; {r.sql_text or '(no text)'}"
    )
    material = (r.extra_elapsed_ms or r.total_elapsed_ms or 0.0) >= MATERIAL_EXTRA_MS
    severity = Severity.CRITICAL if r.ratio >= 10 and material else Severity.WARNING
    title = f"Regressed query on {ev.entity}: {_ratio(r.ratio)} slower than baseline"
    return finding_on(ev, "regressed_query", severity, title, detail, **r.model_dump(mode="json"))


@view_tool("database", detects=("regressions",))
def top_queries(ctx: ToolContext, entity: str) -> ToolResult:
    """Reads the top statements of one database instance (SQL Server query stats / Query Store, PostgreSQL
    pg_stat_statements, MySQL statement digests) and finds regressed queries: statements whose average
    elapsed time is at least 2x their own baseline of the previous week, with the ratio, executions, time
    lost and the (redacted) SQL text. Also names the heaviest statements by total elapsed time."""
    ev, rows = _read(ctx, "top_queries", entity, "top queries", lambda src: src.top_queries(entity))
    if rows is None:
        return ToolResult(evidence=[ev])
    queries = rows

    def build() -> list[Finding]:
        regressions = an.regressed_queries(queries)
        heavy = an.top_by_elapsed(queries, n=3)
        ev.summary = f"{_plural(len(queries), 'top statement')} on {entity}: {len(regressions)} regressed"
        findings = [_regression_finding(ev, r) for r in regressions]
        with_baseline = [q for q in queries if q.baseline_avg_elapsed_ms]
        if with_baseline and not regressions:
            title = f"No regressed queries on {entity}"
            detail = f"{_plural(len(with_baseline), 'statement')} with a baseline, none at 2x or more of it."
            findings.append(finding_on(ev, "no_regressed_queries", Severity.INFO, title, detail))
        if heavy:
            title = f"Top statements by total elapsed time on {entity}: " + ", ".join(
                f"{h.lead} ({_pct(h.share_pct)})" for h in heavy
            )
            detail = "; ".join(
                f"{h.sql_text or h.lead} - {_dur(h.total_elapsed_ms)} total"
                + (f", {h.execution_count:.0f} executions" if h.execution_count else "")
                + (f", avg {_ms(h.avg_elapsed_ms)}" if h.avg_elapsed_ms is not None else "")
                for h in heavy
            )
            data = {"statements": [h.model_dump(mode="json") for h in heavy]}
            findings.append(finding_on(ev, "top_statements", Severity.INFO, title, detail, **data))
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
    """Reads the data and log files of one database instance (SQL Server sys.master_files, PostgreSQL
    database sizes, MySQL tablespaces): size, space used, max size and free space on the volume. Finds
    tempdb nearly full, transaction logs nearly full, data files near their max size and volumes nearly out
    of space - each when a file has used 90% or more of what it can still grow to."""
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
        # PostgreSQL's database sizes are the data itself, not preallocated files
        allocated = _engine(ctx, entity) != "postgresql"
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
        return findings

    return _analyze(ev, build)


DATABASE_TOOLS: list[ViewTool] = [blocking_chains, wait_profile, top_queries, files_and_space]


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
                    target_ref=ActionTarget(entity=entity, kind="session", id=str(sid)),
                    reason=(
                        f"Session {sid} has held a transaction open for {opened} while tempdb is nearly "
                        "full; ending it lets the version store be cleaned up."
                    ),
                    evidence=evidence,
                ),
            )
        )
    return added
