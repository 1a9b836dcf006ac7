"""The database specialist's view tools: read one dataset, keep it as evidence, turn it into findings.

Plumbing lives in tools.sql.common, session findings in tools.sql.session_findings, phrasing in
tools.sql.wording."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from tools.base import (
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
from tools.sql.common import (
    MAX_EVIDENCE_ROWS,
    _analyze,
    _engine,
    _peek,
    _read,
    keep_evidence_rows,
    thresholds,
)
from tools.sql.health_views import (
    HEALTH_TOOLS,
    NEEDS,
    connection_saturation,
    deadlocks,
    log_reuse,
    long_running_statements,
    memory_grants,
    replication_lag,
    version_store_holders,
    wraparound_and_purge,
)
from tools.sql.session_findings import _chain_finding, _long_tx_finding, _summary_finding, session_target
from tools.sql.waits import allocation_page, page_database_id
from tools.sql.wording import _dur, _mb, _mins, _ms, _num, _pct, _plural, _who
from tools.sql.workload import wal_write_heavy
from tools.world import QueryStatRow, SessionRow, WaitSamples

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

MATERIAL_EXTRA_MS = 60_000  # a regression costing less than a minute of total time is not critical
QUIET_WAIT_MS = 60_000  # less counted waiting than this (totals since start) is no story
QUIET_WAIT_PER_S = 0.1  # ... nor, over a sample, less than this many seconds of waits per second
# a dominant cause at or above this share of wait time is a warning; io is common, so it needs more
WARN_SHARE = {
    "locks": 50.0,
    "log": 50.0,
    "sync_replica": 50.0,
    "client": 50.0,
    "page_latch": 50.0,
    "tempdb_allocation": 50.0,
    "memory": 50.0,
    "worker": 50.0,
    "io": 75.0,
}


# what a dominant cause usually means, added to the wait finding's detail
CAUSE_HINTS = {
    "sync_replica": "Commits wait until a synchronous replica (availability group secondary, synchronous "
    "standby) has hardened their log records, so the synchronous replica or the link to it is slow, not "
    "the primary's own disks: check the replica's log send queue, redo and the network to it",
    "log": "Sessions wait for log records to reach disk or for log space: check the log volume's write "
    "latency and whether the log can be truncated",
    "page_latch": "PAGELATCH waits are contention on pages in memory, not I/O: on tempdb's allocation pages "
    "(2:1:1 PFS, 2:1:2 GAM, 2:1:3 SGAM) it is temp-table allocation (more equally sized tempdb data files); "
    "on a user table's last page it is an ever-increasing key taking every insert "
    "(OPTIMIZE_FOR_SEQUENTIAL_KEY, "
    "a different key)",
}


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


# --- waits --------------------------------------------------------------------------------------


def _basis_words(p: an.WaitProfile) -> str:
    if p.basis == "delta":
        return f"over the last {_dur((p.interval_s or 0) * 1000)} (difference of two samples)"
    if p.basis == "snapshot":
        return "now (active sessions only; PostgreSQL keeps no cumulative wait statistics)"
    why = (
        "the statistics went down between the samples (restart or cleared)"
        if p.reset
        else "no earlier sample"
    )
    return f"since the server started ({why}: these totals may be mostly history, not the incident)"


def _latch_hot_spots(sessions: list[SessionRow] | None) -> list[tuple[str, str, int]]:
    """(resource, what it is, sessions) for sessions now waiting on a page latch, most sessions first."""
    counts: dict[tuple[str, str], int] = {}
    for s in sessions or []:
        if not (s.wait_type or "").upper().startswith("PAGELATCH_"):
            continue
        res = (s.wait_resource or "").strip()
        page = allocation_page(res)
        kind = (
            f"tempdb allocation page ({page})"
            if page and page_database_id(res) == 2
            else "a hot page in tempdb"
            if page_database_id(res) == 2
            else f"{page} allocation page of database {page_database_id(res)}"
            if page
            else f"a hot page of database {page_database_id(res)} (last-page insert contention)"
        )
        counts[(res, kind)] = counts.get((res, kind), 0) + 1
    return sorted(((r, k, n) for (r, k), n in counts.items()), key=lambda x: (-x[2], x[0]))


@view_tool("database", detects=("waits",))
def wait_profile(ctx: ToolContext, entity: str) -> ToolResult:
    """Reads the wait statistics of one database instance and describes the waits of NOW: SQL Server
    sys.dm_os_wait_stats (sys.dm_db_wait_stats on Azure SQL Database) plus the waits in progress, and MySQL
    performance_schema waits plus InnoDB row-lock time, as the difference between two samples a few
    seconds apart (or since the previous investigation's sample); PostgreSQL's active client sessions and
    their current wait events (idle sessions and background processes left out; lock wait time from
    pg_locks.waitstart). Without an earlier sample it falls back to the totals since start and says so.
    Drops benign idle waits (sp_BlitzFirst's ignorable list) and MySQL table-handler events that contain
    other waits, groups the rest by cause - locks, data file I/O, CPU, WAL / log writes, synchronous
    replica commits, page latch contention, other latches, parallelism, memory grants, worker threads,
    the client - and names the top wait types with their share and the dominant cause. A cause is a
    warning when it dominates (50%, I/O 75%) or, for locks, when sessions spent 0.5 s per second of the
    sample waiting on locks (sql_thresholds.lock_wait_per_s). Sessions waiting on page latches are
    located: tempdb allocation pages (PFS/GAM/SGAM) or a user table's hot page."""
    ev, samples = _read_waits(ctx, entity)
    if samples is None:
        return ToolResult(evidence=[ev])
    limits = thresholds(ctx)

    def build() -> list[Finding]:
        engine = _engine(ctx, entity)  # names suffice when the engine is unknown
        p = an.wait_profile(samples.current, engine, earlier=samples.earlier, interval_s=samples.interval_s)
        basis = _basis_words(p)
        hot = _latch_hot_spots(_peek(ctx, entity, "sessions", lambda src: src.sessions(entity)))
        findings = [_latch_finding(ev, hot)] if hot else []
        if not samples.current:
            ev.summary = f"No wait statistics on {entity}"
            return findings
        if p.total_wait_ms <= 0:
            ev.summary = f"{_plural(len(samples.current), 'wait type')} on {entity}: no counted waits {basis}"
            title = f"No waits worth counting on {entity} {basis.split(' (')[0]}"
            data = p.model_dump(mode="json")
            return [finding_on(ev, "wait_profile", Severity.INFO, title, f"Wait statistics {basis}.", **data)]
        top = p.causes[0]
        share = f"{_pct(top.share_pct)}, mostly {next(w.wait_type for w in p.waits if w.cause == top.cause)}"
        tops = ", ".join(f"{w.wait_type} ({w.label}) {_pct(w.share_pct)}" for w in p.waits[:5])
        causes = ", ".join(f"{c.label} {_pct(c.share_pct)}" for c in p.causes)
        ev.summary = (
            f"{_plural(len(p.waits), 'wait type')} on {entity} {basis.split(' (')[0]}: "
            f"{_dur(p.total_wait_ms)} of counted waits, top cause {top.label} {_pct(top.share_pct)}"
        )
        rate = p.per_second(top.cause)
        quiet = (rate is not None and rate < QUIET_WAIT_PER_S) or (
            rate is None and p.total_wait_ms < QUIET_WAIT_MS
        )
        if quiet:
            title = f"Little waiting on {entity}: {_dur(p.total_wait_ms)} in total, mostly {top.label}"
        elif top.share_pct >= 50.0:
            title = f"Waits on {entity} are dominated by {top.label} ({share})"
        else:
            title = f"Wait profile on {entity} is mixed; largest cause {top.label} ({share})"
        detail = (
            f"Wait statistics {basis}. Top waits: {tops}. By cause: {causes}. "
            f"Total counted wait time {_dur(p.total_wait_ms)}"
        )
        if rate is not None:
            per_s = sum(c.wait_time_ms for c in p.causes) / 1000 / (p.interval_s or 1)
            detail += f" ({_num(per_s)} s of waits per second)"
        if p.benign_types:
            detail += f"; {_plural(len(p.benign_types), 'benign or overlapping wait type')} left out"
        if top.cause in CAUSE_HINTS and top.share_pct >= 50.0 and not quiet:
            detail += f". {CAUSE_HINTS[top.cause]}"
        warn_at = WARN_SHARE.get(top.cause)
        warn = warn_at is not None and top.share_pct >= warn_at and not quiet
        locks = p.per_second("locks")
        if locks is not None and locks >= limits.lock_wait_per_s:
            warn = True
            detail += (
                f". Lock waits took {_num(locks)} s per second of the sample (threshold "
                f"{_num(limits.lock_wait_per_s)}): on average that many sessions were blocked at once"
            )
        severity = Severity.WARNING if warn else Severity.INFO
        findings.insert(
            0, finding_on(ev, "wait_profile", severity, title, detail + ".", **p.model_dump(mode="json"))
        )
        return findings

    return _analyze(ev, build)


def _read_waits(ctx: ToolContext, entity: str) -> tuple[Evidence, WaitSamples | None]:
    ev, got = _read(ctx, "wait_profile", entity, "waits", lambda src: [src.wait_samples(entity)])
    if got is None:
        return ev, None
    samples = got[0]
    keep_evidence_rows(ev, samples.current)
    return ev, samples


def _latch_finding(ev: Evidence, hot: list[tuple[str, str, int]]) -> Finding:
    total = sum(n for _, _, n in hot)
    res, kind, n = hot[0]
    tempdb = "tempdb allocation" in kind
    title = (
        f"tempdb allocation contention on {ev.entity}: {n} of {total} latch-waiting sessions on {res} "
        f"({kind.split('(')[-1].rstrip(')')})"
        if tempdb
        else f"Page latch contention on {ev.entity}: {n} of {total} latch-waiting sessions on {res}, {kind}"
    )
    where = "; ".join(f"{r} ({k}): {c} session{'s' if c != 1 else ''}" for r, k, c in hot[:5])
    detail = f"Sessions now waiting on PAGELATCH_*: {where}. {CAUSE_HINTS['page_latch']}."
    data = {"hot_spots": [{"resource": r, "what": k, "sessions": c} for r, k, c in hot]}
    return finding_on(ev, "page_latch_contention", Severity.WARNING, title, detail, **data)


# --- top queries --------------------------------------------------------------------------------


def _ratio(r: float) -> str:
    return f"{r:.0f}x" if r >= 10 else f"{_num(r)}x"


def _when(t: datetime | None) -> str:
    return t.strftime("%Y-%m-%d %H:%M UTC") if t else "an unknown time"


def _regression_finding(ev: Evidence, r: an.QueryRegression) -> Finding:
    runs = f" over {r.execution_count:.0f} executions" if r.execution_count else ""
    extra = f" (about {_dur(r.extra_elapsed_ms)} of extra time)" if r.extra_elapsed_ms else ""
    plan = (
        f"plan {r.plan_id} replaced plan {r.baseline_plan_id} at {_when(r.plan_changed_at)}; "
        if r.plan_changed
        else ""
    )
    detail = (
        f"query_hash {r.query_hash}: {plan}avg {_ms(r.avg_elapsed_ms)} now vs "
        f"{_ms(r.baseline_avg_elapsed_ms)} baseline{runs}{extra}; {r.sql_text or '(no text)'}"
    )
    material = (r.extra_elapsed_ms or r.total_elapsed_ms or 0.0) >= MATERIAL_EXTRA_MS
    severity = Severity.CRITICAL if r.ratio >= 10 and material else Severity.WARNING
    if r.plan_changed:
        title = (
            f"Plan change on {ev.entity}: plan {r.plan_id} replaced plan {r.baseline_plan_id} at "
            f"{_when(r.plan_changed_at)}; {_ratio(r.ratio)} slower than baseline"
        )
    else:
        title = f"Regressed query on {ev.entity}: {_ratio(r.ratio)} slower than baseline"
    return finding_on(ev, "regressed_query", severity, title, detail, **r.model_dump(mode="json"))


def _slow_finding(ev: Evidence, q: an.SlowStatement, critical_ms: float) -> Finding:
    runs = f" over {q.execution_count:.0f} executions" if q.execution_count else ""
    why = q.baseline_source or "no baseline recorded"
    title = f"Slow statement on {ev.entity}: averages {_ms(q.avg_elapsed_ms)} with no baseline to compare"
    detail = (
        f"query_hash {q.query_hash}: avg {_ms(q.avg_elapsed_ms)}{runs}, at or above the absolute threshold "
        f"of {_ms(q.threshold_ms)} (sql_thresholds.slow_statement_ms) for statements without a baseline "
        f"({why}); {q.sql_text or '(no text)'}"
    )
    severity = Severity.CRITICAL if (q.avg_elapsed_ms or 0.0) >= critical_ms else Severity.WARNING
    return finding_on(ev, "slow_query", severity, title, detail, **q.model_dump(mode="json"))


def _baseline_note(queries: list[QueryStatRow]) -> str:
    """Which baselines were read and why some statements have none (per database where known)."""
    missing = [q for q in queries if not q.baseline_avg_elapsed_ms]
    if not missing:
        return ""
    reasons: dict[str, int] = {}
    for q in missing:
        reasons[q.baseline_source or "no history is kept for these statements"] = (
            reasons.get(q.baseline_source or "no history is kept for these statements", 0) + 1
        )
    return " ".join(
        f"{_plural(n, 'statement')} without a baseline: {why}." for why, n in sorted(reasons.items())
    )


@view_tool("database", detects=("regressions",))
def top_queries(ctx: ToolContext, entity: str) -> ToolResult:
    """Reads the top statements of one database instance (SQL Server plan cache with Query Store per plan,
    PostgreSQL pg_stat_statements, MySQL statement digests; each ranked first, text fetched only for the
    top 50) and finds regressed queries: statements whose plan in use now averages at least 2x their own
    baseline of the previous week, with the ratio, executions, time lost and the (redacted) SQL text. A
    plan change is itself a finding ("plan 7 replaced plan 3 at 09:12; 14x slower"). Statements with no
    baseline are judged by absolute thresholds: an average of 2 s or more is slow (warning), 30 s critical
    (sql_thresholds.slow_statement_ms, very_slow_statement_ms); the finding says why there is no baseline
    (Query Store off or not read in that database, no history kept). Also names the heaviest statements
    by total elapsed time."""
    ev, rows = _read(ctx, "top_queries", entity, "top queries", lambda src: src.top_queries(entity))
    if rows is None:
        return ToolResult(evidence=[ev])
    queries = rows
    limits = thresholds(ctx)

    def build() -> list[Finding]:
        regressions = an.regressed_queries(queries)
        slow = an.slow_without_baseline(queries, limits.slow_statement_ms)
        changes = [
            p for p in an.plan_changes(queries) if p.query_hash not in {r.query_hash for r in regressions}
        ]
        heavy = an.top_by_elapsed(queries, n=3)
        note = _baseline_note(queries)
        ev.summary = (
            f"{_plural(len(queries), 'top statement')} on {entity}: {len(regressions)} regressed, "
            f"{len(slow)} slow without a baseline" + (f". {note}" if note else "")
        )
        findings = [_regression_finding(ev, r) for r in regressions]
        findings += [_slow_finding(ev, q, limits.very_slow_statement_ms) for q in slow]
        for p in changes:
            how = f"; {_ratio(p.ratio)} the baseline's average" if p.ratio else ""
            title = (
                f"Plan change on {entity}: plan {p.plan_id} replaced plan {p.baseline_plan_id} at "
                f"{_when(p.plan_changed_at)}{how}"
            )
            detail = f"query_hash {p.query_hash}: {p.sql_text or '(no text)'}"
            findings.append(
                finding_on(ev, "plan_change", Severity.INFO, title, detail, **p.model_dump(mode="json"))
            )
        with_baseline = [q for q in queries if q.baseline_avg_elapsed_ms]
        if with_baseline and not regressions:
            title = f"No regressed queries on {entity}"
            detail = f"{_plural(len(with_baseline), 'statement')} with a baseline, none at 2x or more of it."
            if note:
                detail += f" {note}"
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


def _file_detail(f: an.FileSpace) -> str:
    limit = "max size" if f.max_size_mb is not None else "unlimited"
    if f.max_size_mb is not None:
        limit += f" {_mb(f.max_size_mb)} MB"
    vol = f", {_mb(f.volume_free_mb)} MB free on the volume" if f.volume_free_mb is not None else ""
    return (
        f"{f.file_name} ({f.type} file of {f.database_name}): {_mb(f.used_mb)} of {_mb(f.size_mb)} MB used "
        f"({_pct(f.pct_used or 0.0)}); {limit}{vol}; {_pct(f.pct_of_capacity or 0.0)} of what it can grow to"
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
        if measured and not flagged:
            top = max(measured, key=lambda s: s.pct_of_capacity or 0.0)
            title = f"No database file on {entity} is near full"
            detail = f"{_plural(len(spaces), 'file')} checked; the fullest: {_file_detail(top)}."
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


DATABASE_TOOLS: list[ViewTool] = [blocking_chains, wait_profile, top_queries, files_and_space, *HEALTH_TOOLS]


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
