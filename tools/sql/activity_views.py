"""View tools for the DBA's first questions about sessions, each on every engine: long-running
statements, deadlocks, memory grants and version-store / xmin holders (analyzers in tools.sql.health).
Tools that share a dataset read it once per investigation (tools.sql.common)."""

from __future__ import annotations

from tools.base import Finding, Severity, ToolResult, view_tool
from tools.common import finding_on
from tools.sources import ToolContext
from tools.sql import health as hl
from tools.sql.blocking import redacted
from tools.sql.common import (
    SEVERITY,
    _analyze,
    _engine,
    _peek,
    _read,
    _server,
    _sessions,
    _who_of,
    keep_evidence_rows,
    thresholds,
)
from tools.sql.wording import _dur, _mb, _mins, _plural, _secs, _session, _who

# --- long-running statements ------------------------------------------------------------------------


@view_tool("database", detects=("long_running",))
def long_running_statements(ctx: ToolContext, entity: str) -> ToolResult:
    """Reads the current sessions of one database instance and lists the active statements that have been
    running a long time: session id, how long, CPU, the (redacted) statement, login, host and program,
    and whether it is itself blocked. A statement running 60 s or more is a warning, 30 min critical
    (sql_thresholds.long_running_ms, very_long_running_ms); idle sessions are never statements. Says
    plainly when no active statement is that old."""
    ev, sessions = _read(ctx, "long_running_statements", entity, "sessions", lambda src: src.sessions(entity))
    if sessions is None:
        return ToolResult(evidence=[ev])
    limits = thresholds(ctx)

    def build() -> list[Finding]:
        found = hl.long_running(sessions, limits)
        ev.summary = (
            f"{_plural(len(sessions), 'session')} on {entity}: {len(found)} statement(s) running "
            + (f"{_secs(limits.long_running_ms)} or more")
        )
        findings = []
        for r in found:
            cpu = f", CPU {_secs(r.cpu_time_ms)}" if r.cpu_time_ms is not None else ""
            blocked = "; it is itself blocked (see the blocking chain)" if r.blocked else ""
            where = f" in database {r.database_name}" if r.database_name else ""
            title = f"Long-running statement on {entity}: session {r.session_id} running for "
            title += _dur(r.elapsed_ms)
            detail = (
                f"{_who_of(r)}{where} has run its current statement for {_dur(r.elapsed_ms)}{cpu}"
                f"{', waiting ' + r.wait_type if r.wait_type else ''}{blocked}: {r.sql_text or '(no text)'}. "
                f"Threshold {_secs(limits.long_running_ms)} (sql_thresholds.long_running_ms)."
            )
            findings.append(
                finding_on(
                    ev,
                    "long_running_statement",
                    SEVERITY[r.level],
                    title,
                    detail,
                    **r.model_dump(mode="json"),
                )
            )
        if not found:
            title = f"No long-running statements on {entity}"
            detail = f"No active statement has run {_secs(limits.long_running_ms)} or more."
            longest = hl.longest_active(sessions)
            if longest:  # below the threshold, but what is running longest now is still the answer
                top = longest[0]
                title += f" (longest running now: session {top.session_id}, {_dur(top.elapsed_ms)})"
                running = [
                    f"{_session(s.session_id, s.login_name, s.host_name, s.program_name)} for "
                    f"{_dur(s.elapsed_ms)}: {(redacted(s.sql_text) or '(no text)')[:120]}"
                    for s in longest
                ]
                detail += " Running longest now: " + "; ".join(running)
            findings.append(finding_on(ev, "no_long_running", Severity.INFO, title, detail))
        return findings

    return _analyze(ev, build)


# --- deadlocks ----------------------------------------------------------------------------------------


def _party(p: object) -> str:
    from tools.world import DeadlockParty

    assert isinstance(p, DeadlockParty)
    who = _who(p.login_name, p.host_name, None)
    bits = [f"session {p.session_id}" if p.session_id is not None else "a session"]
    if who:
        bits[0] += f" ({who})"
    if p.victim:
        bits.append("chosen as the victim")
    if p.holds:
        bits.append(f"held {p.holds}")
    if p.waits_for:
        bits.append(f"waited for {p.waits_for}")
    text = ", ".join(bits)
    return text + (f": {p.sql_text}" if p.sql_text else "")


@view_tool("database", detects=("deadlocks",))
def deadlocks(ctx: ToolContext, entity: str) -> ToolResult:
    """Reads what the database itself records about deadlocks - no log source needed: the deadlock
    counter since the previous sample and since start (SQL Server 'Number of Deadlocks/sec', PostgreSQL
    pg_stat_database.deadlocks, InnoDB lock_deadlocks / Innodb_deadlocks) and the latest deadlock graph
    (SQL Server system_health's xml_deadlock_report, InnoDB's LATEST DETECTED DEADLOCK; PostgreSQL writes
    deadlock details only to its server log). One deadlock since the last sample is a warning, 10
    critical (sql_thresholds.deadlocks_critical); the latest graph names the sessions, their statements,
    the locks they held and waited for, and the victim."""
    ev, rows = _read(ctx, "deadlocks", entity, "server", lambda src: src.server(entity))
    reports = _peek(ctx, entity, "deadlocks", lambda src: src.deadlocks(entity)) or []
    if rows is None and not reports:
        return ToolResult(evidence=[ev])
    now = rows[0] if rows else None
    earlier = rows[1] if rows and len(rows) > 1 else None
    limits = thresholds(ctx)
    engine = _engine(ctx, entity)
    if reports:
        keep_evidence_rows(ev, [*(rows or []), *reports])

    def build() -> list[Finding]:
        d = hl.deadlock_summary(now, earlier, reports, limits)
        counted = (
            f"{d.since_last:.0f} since the last sample ({_dur((d.interval_s or 0) * 1000)} ago)"
            if d.since_last is not None
            else "no earlier sample to compare"
        )
        total = f"{d.total:.0f} since the server started" if d.total is not None else "total not read"
        ev.summary = f"Deadlocks on {entity}: {counted}; {total}"
        detail = f"Deadlocks: {counted}; {total}."
        if d.latest is not None:
            when = (
                d.latest.occurred_at.strftime("%Y-%m-%d %H:%M:%S UTC")
                if d.latest.occurred_at
                else "unknown time"
            )
            parties = "; ".join(_party(p) for p in d.latest.parties) or "no parties recorded"
            detail += f" Latest deadlock ({d.latest.source or 'engine'}, {when}): {parties}."
        elif engine == "postgresql":
            detail += (
                " PostgreSQL writes the deadlock graph only to its server log (log_lock_waits, the ERROR "
                "40P01 lines)."
            )
        if d.level in ("warning", "critical"):
            title = f"Deadlocks on {entity}: {d.since_last:.0f} since the last sample"
        elif d.latest is not None:
            title = f"No new deadlocks on {entity} since the last sample; the latest recorded is shown"
            if d.since_last is None:
                title = f"Latest deadlock recorded on {entity}" + (
                    f" at {d.latest.occurred_at:%Y-%m-%d %H:%M UTC}" if d.latest.occurred_at else ""
                )
        elif d.since_last == 0:
            title = f"No deadlocks on {entity} since the last sample"
        elif d.total is None:
            title = f"Deadlocks on {entity} were not counted: the server sample has no deadlock counter"
        else:
            title = f"Deadlocks on {entity}: {total}; no earlier sample to compare"
        return [finding_on(ev, "deadlocks", SEVERITY[d.level], title, detail, **d.model_dump(mode="json"))]

    return _analyze(ev, build)


# --- memory grants ------------------------------------------------------------------------------------


@view_tool("database", detects=("memory_grants",))
def memory_grants(ctx: ToolContext, entity: str) -> ToolResult:
    """Reads pending query memory: SQL Server queries waiting for a memory grant
    (sys.dm_exec_query_memory_grants, RESOURCE_SEMAPHORE) with what they asked for and how long they
    wait, the largest grants, and the server's pending-grant count; PostgreSQL and MySQL have no grant
    queue - there it counts queries that spilled to disk between two samples (temp files, on-disk
    temporary tables, sort merge passes). A grant waited on for 1 s is a warning
    (sql_thresholds.memory_grant_wait_ms); spills are information."""
    ev, now, earlier = _server(ctx, "memory_grants", entity)
    if now is None:
        return ToolResult(evidence=[ev])
    limits = thresholds(ctx)
    engine = _engine(ctx, entity)

    def build() -> list[Finding]:
        m = hl.memory_grants(_sessions(ctx, entity), now, earlier, limits)
        waiting = "; ".join(
            f"{_who_of(s)} asked for {_mb(m.requested_mb[s.session_id])} MB, "
            f"waiting {_secs(m.waiting_ms[s.session_id])}"
            for s in m.waiting[:5]
        )
        ev.summary = f"{entity}: {len(m.waiting)} queries waiting for memory" + (
            f", {m.pending} pending grants" if m.pending is not None else ""
        )
        spills = ", ".join(
            f"{v:.0f} {what}"
            for v, what in (
                (m.spills_since_last, "spills to temp files/tables"),
                (m.sort_spills_since_last, "sort merge passes"),
            )
            if v
        )
        if m.level == "warning":
            title = f"Queries waiting for memory grants on {entity}: {max(len(m.waiting), m.pending or 0)}"
            detail = (waiting or f"{m.pending} grants pending") + ". Queries queue for workspace memory "
            detail += "(RESOURCE_SEMAPHORE): large sorts and hashes, often from bad estimates, or too little "
            detail += "memory."
        elif spills:
            title = f"Queries spilled to disk on {entity} since the last sample: {spills}"
            detail = (
                f"Work memory was not enough for them ({_dur((m.interval_s or 0) * 1000)} between samples)."
            )
        elif engine in ("postgresql", "mysql"):
            what = "temp files" if engine == "postgresql" else "on-disk temporary tables"
            title = (
                f"No query spilled to disk on {entity} since the last sample"
                if m.interval_s
                else f"Query memory on {entity}: no earlier sample to count spills against"
            )
            detail = (
                f"{'PostgreSQL' if engine == 'postgresql' else 'MySQL'} has no memory grant queue: a query "
                f"short of work memory spills to disk ({what}), counted between two samples."
            )
        else:
            title = f"No queries waiting for memory on {entity}"
            detail = (
                "No pending memory grants"
                + (
                    "; the largest grants: " + ", ".join(f"session {s} {_mb(mb)} MB" for s, mb in m.largest)
                    if m.largest
                    else ""
                )
                + "."
            )
        kind = "memory_grants_pending" if m.level == "warning" else "memory_grants"
        return [finding_on(ev, kind, SEVERITY[m.level], title, detail, **m.model_dump(mode="json"))]

    return _analyze(ev, build)


# --- version store / xmin / undo holders ----------------------------------------------------------------

_HOLD_WORDS = {
    "mssql": "keeps the tempdb version store from being cleaned up past its snapshot",
    "postgresql": "holds back the xmin horizon: vacuum cannot remove dead tuples newer than its snapshot",
    "mysql": "keeps a read view open, so InnoDB cannot purge undo newer than it (the history list grows)",
}


@view_tool("database", detects=("version_store",))
def version_store_holders(ctx: ToolContext, entity: str) -> ToolResult:
    """Reads who keeps old row versions alive: SQL Server's tempdb version store size with the sessions
    holding the oldest snapshot or open transaction and the largest tempdb users; PostgreSQL sessions
    holding back the xmin horizon (age(backend_xmin)) and prepared transactions; MySQL transactions whose
    read view stops purge. A holder open for an hour is a warning (sql_thresholds.snapshot_age_ms), and
    so is a version store of 10 GB (version_store_mb) or a forgotten prepared transaction."""
    ev, sessions = _read(ctx, "version_store_holders", entity, "sessions", lambda src: src.sessions(entity))
    if sessions is None:
        return ToolResult(evidence=[ev])
    limits = thresholds(ctx)
    server = _peek(ctx, entity, "server", lambda src: src.server(entity))
    engine = _engine(ctx, entity)

    def build() -> list[Finding]:
        v = hl.version_holders(sessions, server[0] if server else None, engine, limits)
        harm = _HOLD_WORDS.get(engine or "", "keeps old row versions from being cleaned up")
        store = f"version store {_mb(v.version_store_mb)} MB; " if v.version_store_mb is not None else ""
        ev.summary = f"{entity}: {store}{len(v.holders)} session(s) holding old row versions"
        holders = "; ".join(
            f"{_who_of(h)}, {h.state}"
            + (
                f", snapshot/transaction open {_mins(v.holder_ms.get(h.session_id, 0.0))}"
                if v.holder_ms.get(h.session_id)
                else ""
            )
            + (f", xmin age {v.xmin_age[h.session_id]:,} transactions" if h.session_id in v.xmin_age else "")
            for h in v.holders
        )
        tempdb = ", ".join(f"session {s} {_mb(mb)} MB" for s, mb in v.tempdb)
        detail = f"{store}oldest holders: {holders or 'none'}"
        detail += f"; largest tempdb users: {tempdb}" if tempdb else ""
        detail += f"; prepared transaction '{v.prepared}' is still open" if v.prepared else ""
        if v.level == "warning":
            first = v.holders[0] if v.holders else None
            title = (
                f"Old row versions on {entity} are held by session {first.session_id}"
                + (
                    f" ({_who(first.login_name, first.host_name, first.program_name)})"
                    if first.login_name
                    else ""
                )
                if first
                else f"Old row versions on {entity} are held by prepared transaction '{v.prepared}'"
                if v.prepared
                else f"tempdb version store on {entity} is {_mb(v.version_store_mb)} MB"
            )
            detail += f". Such a holder {harm}."
        else:
            title = f"Nothing holds old row versions for long on {entity}"
            detail += f". No holder open for {_mins(limits.snapshot_age_ms)} or more."
        kind = "version_store_held" if v.level == "warning" else "version_store"
        return [finding_on(ev, kind, SEVERITY[v.level], title, detail, **v.model_dump(mode="json"))]

    return _analyze(ev, build)
