"""View tools for the first questions a DBA asks, each on every engine: long-running statements,
connection saturation, deadlocks, log reuse, replica lag, memory grants, version-store holders, and
wraparound / purge lag. Each reads through the run's memo (tools.sql.common), so tools that share a
dataset cost one query; the analyzers are in tools.sql.health."""

from __future__ import annotations

from tools.base import Evidence, Finding, Severity, ToolResult, ViewTool, view_tool
from tools.common import finding_on
from tools.sources import ToolContext
from tools.sql import health as hl
from tools.sql.blocking import SessionBrief
from tools.sql.common import _analyze, _engine, _peek, _read, keep_evidence_rows, thresholds
from tools.sql.wording import _dur, _mb, _mins, _num, _pct, _plural, _secs, _session, _who
from tools.world import ServerRow, SessionRow

SEVERITY: dict[str, Severity] = {
    "ok": Severity.INFO,
    "info": Severity.INFO,
    "warning": Severity.WARNING,
    "critical": Severity.CRITICAL,
}


def _who_of(s: SessionBrief) -> str:
    return _session(s.session_id, s.login_name, s.host_name, s.program_name)


def _server(ctx: ToolContext, tool: str, entity: str) -> tuple[Evidence, ServerRow | None, ServerRow | None]:
    ev, rows = _read(ctx, tool, entity, "server", lambda src: src.server(entity))
    if not rows:
        if rows is not None:
            ev.summary = f"{entity} returned no server state"
        return ev, None, None
    return ev, rows[0], rows[1] if len(rows) > 1 else None


def _sessions(ctx: ToolContext, entity: str) -> list[SessionRow] | None:
    return _peek(ctx, entity, "sessions", lambda src: src.sessions(entity))


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
            findings.append(finding_on(ev, "no_long_running", Severity.INFO, title, detail))
        return findings

    return _analyze(ev, build)


# --- connections --------------------------------------------------------------------------------------


@view_tool("database", detects=("connections",))
def connection_saturation(ctx: ToolContext, entity: str) -> ToolResult:
    """Reads the instance's connection and worker counts against their configured maximums: SQL Server
    user connections, worker threads vs max worker threads and tasks queued for a worker (THREADPOOL);
    PostgreSQL client connections vs max_connections minus superuser_reserved_connections; MySQL
    Threads_connected vs max_connections, Max_used_connections and connections refused at the limit.
    80% of a maximum is a warning, 95% critical (sql_thresholds.connections_warn_pct, _critical_pct);
    tasks waiting for a worker are critical, connections refused since the last sample a warning. Names
    who holds the idle connections when the session list is at hand."""
    ev, now, earlier = _server(ctx, "connection_saturation", entity)
    if now is None:
        return ToolResult(evidence=[ev])
    limits = thresholds(ctx)

    def build() -> list[Finding]:
        use = hl.connection_use(now, earlier, limits)
        parts = [f"{s.what} {s.used} of {s.limit} ({_pct(s.pct)})" for s in use.saturation]
        ev.summary = f"{entity}: " + (", ".join(parts) or "no connection limits read")
        if not use.saturation and use.queued_tasks is None:
            return [
                finding_on(
                    ev,
                    "connections_unknown",
                    Severity.INFO,
                    f"Connection counts of {entity} could not be read",
                    ev.summary,
                )
            ]
        detail = "; ".join(parts)
        if use.active_connections is not None:
            detail += f"; {use.active_connections} running a statement now"
        if use.max_used_connections is not None:
            detail += f"; at most {use.max_used_connections} since start"
        if use.queued_tasks:
            detail += f"; {use.queued_tasks} tasks waiting for a worker thread (THREADPOOL)"
        if use.refused_since_last:
            detail += f"; {use.refused_since_last:.0f} connections refused at the limit since the last sample"
        sessions = _sessions(ctx, entity)
        if sessions and use.level != "ok":
            from tools.sql.analysis import session_summary

            summary = session_summary(sessions)
            holders = ", ".join(f"{h.name} {h.sessions}" for h in summary.idle_holders[:3])
            if holders:
                detail += f". Idle connections by application: {holders}"
        worst = max(use.saturation, key=lambda s: s.pct, default=None)
        if use.level == "ok":
            title = f"Connections on {entity} are within limits" + (
                f": {worst.what} at {_pct(worst.pct)} of the maximum" if worst else ""
            )
        elif worst and worst.level == use.level:
            share = f"{worst.used} of {worst.limit} ({_pct(worst.pct)})"
            title = f"{worst.what.capitalize()} on {entity} near the maximum: {share}"
        else:
            title = f"Connection saturation on {entity}"
        detail += (
            f". Thresholds {_num(limits.connections_warn_pct)}% / {_num(limits.connections_critical_pct)}%."
        )
        kind = "connection_saturation" if use.level != "ok" else "connections_ok"
        return [finding_on(ev, kind, SEVERITY[use.level], title, detail, **use.model_dump(mode="json"))]

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


# --- log reuse -----------------------------------------------------------------------------------------


@view_tool("database", detects=("log_reuse",))
def log_reuse(ctx: ToolContext, entity: str) -> ToolResult:
    """Reads why the transaction log, WAL or binlog cannot be reused and how much it holds: SQL Server
    log_reuse_wait_desc with each database's log size and use (ACTIVE_TRANSACTION names the oldest open
    transaction, LOG_BACKUP asks for a log backup, AVAILABILITY_REPLICA points at the AG queues);
    PostgreSQL replication slots (inactive, retained WAL, wal_status lost) and a failing WAL archiver;
    MySQL binary logs kept without expiry. A log 75% used that cannot be reused is a warning, 90%
    critical (sql_thresholds.log_used_pct); a slot or binlogs retaining 1 GB a warning
    (sql_thresholds.retained_log_mb), an inactive slot retaining WAL a warning, lost WAL critical."""
    ev, rows = _read(ctx, "log_reuse", entity, "log reuse", lambda src: src.log_reuse(entity))
    if rows is None:
        return ToolResult(evidence=[ev])
    limits = thresholds(ctx)

    def build() -> list[Finding]:
        issues = hl.log_reuse_issues(rows, _sessions(ctx, entity), limits)
        bad = [i for i in issues if i.level in ("warning", "critical")]
        ev.summary = f"{_plural(len(rows), 'log')} on {entity}: {len(bad)} cannot be reused and matter"
        findings = []
        for i in bad:
            what = {
                "transaction log": f"Transaction log of {i.database_name}",
                "wal": "WAL",
                "binlog": "Binary logs",
                "redo": "Redo log",
            }[i.log]
            held = f" by {i.holder}" if i.holder and i.log != "transaction log" else ""
            size = f"{_mb(i.used_mb)} MB" + (
                f" of {_mb(i.limit_mb or i.size_mb)} MB" if (i.limit_mb or i.size_mb) else ""
            )
            title = f"{what} on {entity} cannot be reused{held}: {i.reason or i.why} ({size})"
            detail = f"{what}{held}: {i.why}; {size} held."
            if i.holder_session is not None:
                h = i.holder_session
                detail += (
                    f" The oldest open transaction is {_who_of(h)}, {h.state}, open for {_mins(h.elapsed_ms)}"
                    + (f": {h.sql_text}" if h.sql_text else "")
                    + "."
                )
            if i.detail:
                detail += f" {i.detail}."
            findings.append(
                finding_on(
                    ev, "log_reuse_blocked", SEVERITY[i.level], title, detail, **i.model_dump(mode="json")
                )
            )
        waiting = [i for i in issues if i.level == "info"]
        if not bad and rows:
            detail = "; ".join(
                f"{i.database_name or i.holder or i.log}: {i.reason or 'reusable'}" for i in issues[:10]
            )
            title = f"Logs on {entity} can be reused" + (
                f" ({len(waiting)} waiting on something harmless for now)" if waiting else ""
            )
            findings.append(finding_on(ev, "log_reuse_ok", Severity.INFO, title, detail + "."))
        elif not rows:
            title = f"No log retention reported on {entity}"
            findings.append(finding_on(ev, "log_reuse_ok", Severity.INFO, title, "Nothing holds the log."))
        return findings

    return _analyze(ev, build)


# --- replication ----------------------------------------------------------------------------------------


@view_tool("database", detects=("replication",))
def replication_lag(ctx: ToolContext, entity: str) -> ToolResult:
    """Reads the instance's replica links and how far behind they are: SQL Server availability group
    database replicas (synchronization state, log send queue, redo queue, seconds behind), PostgreSQL
    streaming standbys (pg_stat_replication write/flush/replay lag and bytes behind; on a standby its
    own replay lag), MySQL/MariaDB replication channels (Seconds_Behind_Master, IO/SQL threads, last
    error). 30 s behind is a warning, 5 min critical (sql_thresholds.replica_lag_s, _critical_s); 1 GB
    queued a warning (replica_queue_mb); a stopped or erroring replica critical. Says when the instance
    has no replicas."""
    ev, rows = _read(ctx, "replication_lag", entity, "replicas", lambda src: src.replicas(entity))
    if rows is None:
        return ToolResult(evidence=[ev])
    limits = thresholds(ctx)

    def build() -> list[Finding]:
        issues = hl.replica_issues(rows, limits)
        bad = [i for i in issues if i.level != "ok"]
        ev.summary = f"{_plural(len(rows), 'replica link')} on {entity}: {len(bad)} behind or broken"
        if not rows:
            detail = "No availability group replica, standby or replication channel was reported."
            return [finding_on(ev, "no_replicas", Severity.INFO, f"No replicas on {entity}", detail)]
        findings = []
        for i in bad:
            where = " ".join(x for x in (i.group_name, i.database_name) if x)
            title = f"Replica {i.name} of {entity} is behind or broken: {i.why}"
            detail = (
                f"{i.kind.replace('_', ' ')} {i.name}"
                + (f" ({where})" if where else "")
                + f": state {i.state or 'unknown'}"
                + (f", {i.lag_s:.0f} s behind" if i.lag_s is not None else "")
                + (f", send queue {_mb(i.send_queue_mb)} MB" if i.send_queue_mb is not None else "")
                + (f", redo queue {_mb(i.redo_queue_mb)} MB" if i.redo_queue_mb is not None else "")
                + (", synchronous (commits wait for it)" if i.synchronous else "")
                + (f"; last error: {i.last_error}" if i.last_error else "")
                + "."
            )
            findings.append(
                finding_on(ev, "replica_lag", SEVERITY[i.level], title, detail, **i.model_dump(mode="json"))
            )
        if not bad:
            worst = max(issues, key=lambda i: i.lag_s or 0.0)
            lag = (
                f"; the furthest behind: {worst.name} {worst.lag_s:.0f} s" if worst.lag_s is not None else ""
            )
            title, detail = (
                f"Replicas of {entity} are in sync",
                f"{_plural(len(issues), 'replica link')} checked{lag}.",
            )
            findings.append(finding_on(ev, "replicas_in_sync", Severity.INFO, title, detail))
        return findings

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


# --- wraparound and purge ---------------------------------------------------------------------------


@view_tool("database", detects=("wraparound",))
def wraparound_and_purge(ctx: ToolContext, entity: str) -> ToolResult:
    """Reads how close cleanup is to falling behind for good: PostgreSQL transaction ID age of the oldest
    database (age(datfrozenxid)) and multixact age against the 2^31 wraparound limit and
    autovacuum_freeze_max_age - 50% of the limit a warning, 75% critical (sql_thresholds.xid_age_warn_pct,
    _critical_pct); MySQL/MariaDB InnoDB history list length (undo records not yet purged), a warning from
    1,000,000 (sql_thresholds.history_list_length). SQL Server has no transaction ID wraparound: the tool
    says so (its version-store cleanup is version_store_holders)."""
    ev, now, _ = _server(ctx, "wraparound_and_purge", entity)
    engine = _engine(ctx, entity)
    if now is None and engine != "mssql":
        return ToolResult(evidence=[ev])
    limits = thresholds(ctx)

    def build() -> list[Finding]:
        w = hl.wraparound(now, engine, limits)
        if not w.applicable:
            ev.summary = f"{entity}: SQL Server has no transaction ID wraparound"
            return [
                finding_on(
                    ev,
                    "wraparound_not_applicable",
                    Severity.INFO,
                    f"No transaction ID wraparound on {entity} (SQL Server)",
                    "SQL Server has no transaction ID wraparound; row-version cleanup is checked "
                    "by "
                    "version_store_holders.",
                )
            ]
        parts = []
        if w.xid_age is not None:
            parts.append(
                f"oldest database {w.database_name or '?'}: age(datfrozenxid) {w.xid_age:,} "
                f"({_pct(w.xid_age_pct or 0)} of the 2^31 limit"
                + (f"; autovacuum_freeze_max_age {w.freeze_max_age:,}" if w.freeze_max_age else "")
                + ")"
            )
        if w.mxid_age is not None:
            parts.append(f"multixact age {w.mxid_age:,} ({_pct(w.mxid_age_pct or 0)})")
        if w.history_list_length is not None:
            parts.append(f"InnoDB history list length {w.history_list_length:,} undo records not yet purged")
        ev.summary = f"{entity}: " + ("; ".join(parts) or "no wraparound or purge counters read")
        if not parts:
            return []
        detail = "; ".join(parts) + "."
        if w.level in ("warning", "critical"):
            if w.history_list_length is not None and w.history_list_length >= limits.history_list_length:
                title = f"Purge is behind on {entity}: history list length {w.history_list_length:,}"
                detail += (
                    " A long-open transaction or read view usually stops purge (see version_store_holders)."
                )
            else:
                title = (
                    f"Transaction ID wraparound approaching on {entity}: {w.database_name} at "
                    f"{_pct(w.xid_age_pct or 0)} of the limit"
                )
                detail += (
                    " PostgreSQL stops accepting writes before wraparound; vacuum (freeze) the oldest "
                    "tables, and end what holds back the xmin horizon (see version_store_holders)."
                )
        else:
            title = f"Wraparound and purge on {entity} are within limits"
        kind = "wraparound_risk" if w.level in ("warning", "critical") else "wraparound_ok"
        return [finding_on(ev, kind, SEVERITY[w.level], title, detail, **w.model_dump(mode="json"))]

    return _analyze(ev, build)


HEALTH_TOOLS: list[ViewTool] = [
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
