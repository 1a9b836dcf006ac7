"""View tools for the DBA's capacity questions, each on every engine: connection and worker saturation,
log that cannot be reused, replica lag, wraparound and purge lag (analyzers in tools.sql.capacity)."""

from __future__ import annotations

from tools.base import Finding, Severity, ToolResult, view_tool
from tools.common import finding_on
from tools.sources import ToolContext
from tools.sql import capacity as cp
from tools.sql.common import SEVERITY, _analyze, _engine, _read, _server, _sessions, _who_of, thresholds
from tools.sql.wording import _mb, _mins, _num, _pct, _plural

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
        use = cp.connection_use(now, earlier, limits)
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
        issues = cp.log_reuse_issues(rows, _sessions(ctx, entity), limits)
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
        issues = cp.replica_issues(rows, limits)
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
        w = cp.wraparound(now, engine, limits)
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
