"""The wait profile view tool: the waits of now (two samples, or active sessions on PostgreSQL), and
where sessions contend for page latches."""

from __future__ import annotations

from tools.base import (
    Evidence,
    Finding,
    Severity,
    ToolResult,
    view_tool,
)
from tools.common import finding_on
from tools.sources import ToolContext
from tools.sql import analysis as an
from tools.sql.common import (
    _analyze,
    _engine,
    _peek,
    _read,
    keep_evidence_rows,
    thresholds,
)
from tools.sql.waits import allocation_page, page_database_id
from tools.sql.wording import _dur, _num, _pct, _plural
from tools.world import SessionRow, WaitSamples

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
