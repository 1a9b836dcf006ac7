"""The PostgreSQL query pack: pg_stat_activity with every blocker, wait events of active sessions,
pg_stat_statements, database sizes, server counters, replication slots and standbys as SPEC v1 rows.

Every statement is a plain SELECT over statistics views. Queries of one dataset are alternatives, best
first (see tools.sql.live): the first that the server can answer gives the rows (PostgreSQL 14+ first:
pg_locks.waitstart; then 13; then 10-12).
Needs (docs/readonly-logins.md): pg_monitor (pg_read_all_stats to see other roles' sessions, statements
and queryids, pg_ls_waldir for the WAL size), and the pg_stat_statements extension.
"""

from __future__ import annotations

import json
from typing import Any

from tools.sources import SourceError
from tools.sql.packs.base import PackQuery, QueryPack

# How long a session has been in its current state. PostgreSQL does not record when a wait began (but
# for lock waits, pg_locks.waitstart on 14+), so a session's wait time is the age of what it is doing.
_STATE_AGE = (
    "1000 * extract(epoch FROM clock_timestamp() - COALESCE("
    "CASE WHEN a.state = 'active' THEN a.query_start END, a.state_change, a.backend_start))"
)
_NOW_MS = "1000 * extract(epoch FROM clock_timestamp() - {})"

# Only the locks that matter are copied out of the lock table: the ungranted ones (the waits) and
# those of prepared transactions (pid IS NULL), which name a prepared transaction as a blocker.
_SESSIONS = """
WITH lk AS MATERIALIZED (
    SELECT l.pid, l.locktype, l.mode, l.granted, {waitstart} AS waitstart, l.database, l.relation, l.page,
           l.tuple, l.virtualxid, l.transactionid, l.classid, l.objid, l.objsubid, l.virtualtransaction
    FROM pg_locks l
    WHERE NOT l.granted OR l.pid IS NULL
),
waiting AS (
    SELECT DISTINCT ON (w.pid) w.* FROM lk w WHERE NOT w.granted ORDER BY w.pid, w.waitstart
),
prepared AS (
    SELECT w.pid AS waiter,
           json_agg(DISTINCT jsonb_build_object('gid', p.gid, 'prepared', p.prepared, 'owner', p.owner,
                                                'database', p.database)) AS holders
    FROM waiting w
    JOIN lk h ON h.pid IS NULL AND h.granted AND h.locktype = w.locktype
         AND h.database IS NOT DISTINCT FROM w.database AND h.relation IS NOT DISTINCT FROM w.relation
         AND h.page IS NOT DISTINCT FROM w.page AND h.tuple IS NOT DISTINCT FROM w.tuple
         AND h.virtualxid IS NOT DISTINCT FROM w.virtualxid
         AND h.transactionid IS NOT DISTINCT FROM w.transactionid
         AND h.classid IS NOT DISTINCT FROM w.classid AND h.objid IS NOT DISTINCT FROM w.objid
         AND h.objsubid IS NOT DISTINCT FROM w.objsubid
    JOIN lk x ON x.pid IS NULL AND x.granted AND x.locktype = 'transactionid'
         AND x.virtualtransaction = h.virtualtransaction
    JOIN pg_prepared_xacts p ON p.transaction = x.transactionid
    GROUP BY w.pid
)
SELECT a.pid AS session_id,
       COALESCE(a.state, a.backend_type) AS status,
       a.usename::text AS login_name,
       COALESCE(a.client_hostname, host(a.client_addr)) AS host_name,
       NULLIF(a.application_name, '') AS program_name,
       a.datname::text AS database_name,
       CASE WHEN a.state = 'active' THEN upper(substring(a.query FROM '^\\s*(\\w+)')) END AS command,
       a.wait_event_type || ':' || a.wait_event AS wait_type,
       ({wait_ms})::float8 AS wait_time_ms,
       w.locktype || COALESCE(' ' || w.relation::regclass::text, '')
           || COALESCE(' page ' || w.page::text, '') || COALESCE(' tuple ' || w.tuple::text, '')
           || COALESCE(' xid ' || w.transactionid::text, '') AS wait_resource,
       w.mode AS lock_mode,
       CASE WHEN w.pid IS NOT NULL THEN array_to_string(pg_blocking_pids(a.pid), ',') END AS blockers,
       p.holders::text AS prepared_holders,
       (1000 * extract(epoch FROM clock_timestamp() - CASE
            WHEN a.state LIKE 'idle in transaction%' THEN a.xact_start
            WHEN a.state = 'active' THEN a.query_start
            ELSE COALESCE(a.state_change, a.backend_start) END))::float8 AS elapsed_ms,
       CASE WHEN a.xact_start IS NOT NULL
                 AND (a.state IS DISTINCT FROM 'active' OR a.xact_start < a.query_start) THEN 1 ELSE 0
       END AS open_transaction_count,
       ({xact_age})::float8 AS transaction_ms,
       CASE WHEN a.backend_xmin IS NOT NULL THEN ({snapshot_age})::float8 END AS snapshot_ms,
       age(a.backend_xmin) AS xmin_age,
       to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS login_time,
       a.query AS sql_text
FROM pg_stat_activity a
LEFT JOIN waiting w ON w.pid = a.pid
LEFT JOIN prepared p ON p.waiter = a.pid
WHERE a.pid <> pg_backend_pid()
  AND a.backend_type IN ('client backend', 'autovacuum worker', 'parallel worker')
ORDER BY (w.pid IS NOT NULL) DESC, a.xact_start NULLS LAST, a.pid
LIMIT 2000
"""


def _sessions(waitstart: str) -> str:
    wait_ms = f"CASE WHEN a.wait_event IS NOT NULL THEN {_STATE_AGE} END"
    if waitstart != "NULL::timestamptz":  # 14+: a lock wait's own start
        wait_ms = f"COALESCE({_NOW_MS.format('w.waitstart')}, {wait_ms})"
    return _SESSIONS.format(
        waitstart=waitstart,
        wait_ms=wait_ms,
        xact_age=_NOW_MS.format("a.xact_start"),
        snapshot_age=_NOW_MS.format("COALESCE(a.xact_start, a.query_start)"),
    )


SESSIONS = _sessions("l.waitstart")  # PostgreSQL 14+
SESSIONS_13 = _sessions("NULL::timestamptz")


def _float(v: Any) -> float | None:
    return None if v is None else float(v)


def session_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """pg_stat_activity rows -> SessionRow fields, every blocker of a waiter in `blocked_by`: the sessions
    of pg_blocking_pids (its order is not documented, so all of them) and, for its zeros, the prepared
    transactions that hold the lock."""
    out = []
    for r in rows:
        row = {k: v for k, v in r.items() if k not in ("blockers", "prepared_holders", "lock_mode")}
        for k in ("wait_time_ms", "elapsed_ms", "transaction_ms", "snapshot_ms"):
            row[k] = _float(row.get(k))
        row["xmin_age"] = None if row.get("xmin_age") is None else int(row["xmin_age"])
        pids = [int(p) for p in str(r.get("blockers") or "").split(",") if p.strip()]
        blocked_by: list[dict[str, Any]] = []
        common = {"lock_mode": r.get("lock_mode"), "resource": r.get("wait_resource"),
                  "wait_time_ms": row["wait_time_ms"]}  # fmt: skip
        for pid in dict.fromkeys(pids):
            if pid != 0:
                blocked_by.append({"session_id": pid, **common})
        if 0 in pids:
            holders = json.loads(r["prepared_holders"]) if r.get("prepared_holders") else []
            for h in holders or [{}]:
                blocked_by.append(
                    {"session_id": 0, "kind": "prepared_transaction", "name": h.get("gid"),
                     "since": h.get("prepared"), **common}
                )  # fmt: skip
        row["blocked_by"] = blocked_by if r.get("blockers") is not None else None
        row["blocking_session_id"] = next((p for p in pids if p != 0), 0 if pids else None)
        out.append(row)
    return out


# Wait events of the active client sessions now (PostgreSQL keeps no cumulative wait statistics): idle
# sessions (Client:ClientRead between statements) and background processes are left out. Per event:
# sessions waiting on it, and how long they have waited - lock waits from pg_locks.waitstart (14+),
# other events the age of the running statement (PostgreSQL does not time them: an upper bound).
_WAITS = """
SELECT COALESCE(a.wait_event_type || ':' || a.wait_event, 'CPU') AS wait_type,
       count(*)::float8 AS waiting_tasks_count,
       COALESCE(sum(1000 * extract(epoch FROM clock_timestamp() - COALESCE({lock_start}, a.query_start))), 0)
           ::float8 AS wait_time_ms,
       NULL::float8 AS signal_wait_time_ms
FROM pg_stat_activity a
{lock_join}
WHERE a.pid <> pg_backend_pid() AND a.state = 'active'
  AND a.backend_type IN ('client backend', 'parallel worker')
GROUP BY 1
ORDER BY 3 DESC
LIMIT 100
"""
WAITS = _WAITS.format(
    lock_start="w.waitstart",
    lock_join="LEFT JOIN (SELECT pid, min(waitstart) AS waitstart FROM pg_locks WHERE NOT granted"
    " GROUP BY pid) w ON w.pid = a.pid AND a.wait_event_type = 'Lock'",
)
WAITS_13 = _WAITS.format(lock_start="NULL::timestamptz", lock_join="")

# Ranked without text (pg_stat_statements(false) does not read the query text file), then the text of
# the top 50 only. Statements of the copilot's own login are left out: they are the monitoring.
# baseline_avg_elapsed_ms stays null: pg_stat_statements has no history (no baseline snapshot is kept).
_TOP_QUERIES = """
WITH top AS (
    SELECT s.queryid,
           sum(s.calls)::float8 AS execution_count,
           sum(s.{total})::float8 AS total_elapsed_ms,
           sum(s.shared_blks_hit + s.shared_blks_read)::float8 AS total_logical_reads
    FROM pg_stat_statements(false) s
    WHERE s.queryid IS NOT NULL AND s.userid <> (SELECT r.oid FROM pg_roles r WHERE r.rolname = current_user)
    GROUP BY s.queryid
    ORDER BY sum(s.{total}) DESC
    LIMIT 50
)
SELECT top.queryid::text AS query_hash, top.execution_count, NULL::float8 AS total_cpu_ms,
       top.total_elapsed_ms, top.total_logical_reads,
       (top.total_elapsed_ms / NULLIF(top.execution_count, 0))::float8 AS avg_elapsed_ms,
       NULL::float8 AS baseline_avg_elapsed_ms, NULL::text AS last_execution_time, t.query AS sql_text,
       'pg_stat_statements keeps no history' AS baseline_source
FROM top
LEFT JOIN (SELECT DISTINCT ON (s.queryid) s.queryid, s.query
           FROM pg_stat_statements s
           WHERE s.queryid IN (SELECT queryid FROM top)
           ORDER BY s.queryid) t ON t.queryid = top.queryid
ORDER BY top.total_elapsed_ms DESC
"""


def top_query_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Without pg_read_all_stats other roles' queryid is NULL: those statements are invisible, so an
    empty result with rows hidden must not read as 'no statements'."""
    return rows


# Database files grow on demand, so a database's size is all used; how full the volume is cannot be
# read over SQL (volume_free_mb stays null: the files check says so rather than calling it healthy).
_DATABASE_SIZES = """
SELECT d.datname::text AS database_name, d.datname::text AS file_name, 'data' AS type,
       pg_database_size(d.oid) / 1048576.0::float8 AS size_mb,
       pg_database_size(d.oid) / 1048576.0::float8 AS used_mb, NULL::float8 AS max_size_mb,
       NULL::float8 AS volume_free_mb
FROM pg_database d
WHERE NOT d.datistemplate AND d.datallowconn
"""

# WAL is shared by all databases (what holds it back is the log_reuse dataset)
_WAL_SIZE = """
SELECT 'all databases', 'pg_wal', 'log', COALESCE(sum(w.size), 0) / 1048576.0::float8,
       COALESCE(sum(w.size), 0) / 1048576.0::float8, NULL::float8, NULL::float8
FROM pg_ls_waldir() w
"""

SERVER = """
SELECT clock_timestamp() AT TIME ZONE 'UTC' AS sampled_at, 'PostgreSQL' AS platform,
       current_setting('server_version') AS version,
       pg_postmaster_start_time() AT TIME ZONE 'UTC' AS started_at, pg_is_in_recovery() AS in_recovery,
       (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int AS connections,
       current_setting('max_connections')::int AS max_connections,
       current_setting('superuser_reserved_connections')::int AS reserved_connections,
       (SELECT count(*) FROM pg_stat_activity
        WHERE backend_type = 'client backend' AND state = 'active')::int AS active_connections,
       (SELECT sum(s.deadlocks) FROM pg_stat_database s)::float8 AS deadlocks,
       (SELECT sum(s.temp_files) FROM pg_stat_database s)::float8 AS temp_spills,
       (SELECT sum(s.temp_bytes) FROM pg_stat_database s)::float8 / 1048576.0 AS temp_spill_mb,
       d.datname::text AS xid_age_database, age(d.datfrozenxid)::bigint AS xid_age,
       mxid_age(d.datminmxid)::bigint AS mxid_age,
       current_setting('autovacuum_freeze_max_age')::bigint AS freeze_max_age,
       (SELECT count(*) FROM pg_prepared_xacts)::int AS prepared_transactions,
       (SELECT min(x.prepared) FROM pg_prepared_xacts x) AT TIME ZONE 'UTC' AS oldest_prepared_at,
       (SELECT x.gid FROM pg_prepared_xacts x ORDER BY x.prepared LIMIT 1) AS oldest_prepared_gid
FROM (SELECT datname, datfrozenxid, datminmxid FROM pg_database ORDER BY age(datfrozenxid) DESC LIMIT 1) d
"""

# Replication slots hold WAL for their consumer; an inactive slot holds it until it is dropped. A
# failing archiver holds every WAL segment it has not archived.
_CURRENT_LSN = "CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() ELSE pg_current_wal_lsn() END"
LOG_REUSE = f"""
SELECT 'wal' AS log, s.database::text AS database_name, s.slot_name::text AS holder,
       CASE WHEN s.wal_status IN ('lost', 'unreserved') THEN s.wal_status
            WHEN s.active THEN 'active slot' ELSE 'inactive slot' END AS reason,
       NULL::float8 AS size_mb,
       (pg_wal_lsn_diff({_CURRENT_LSN}, s.restart_lsn) / 1048576.0)::float8 AS used_mb,
       CASE WHEN current_setting('max_slot_wal_keep_size') <> '-1'
            THEN pg_size_bytes(current_setting('max_slot_wal_keep_size')) / 1048576.0 END::float8 AS limit_mb,
       s.active, NULL::timestamp AS since,
       s.slot_type || ' slot' || COALESCE(' (' || s.plugin || ')', '') AS detail
FROM pg_replication_slots s
UNION ALL
SELECT 'wal', NULL, 'archiver',
       CASE WHEN a.last_failed_time > COALESCE(a.last_archived_time, '-infinity')
            THEN 'archive_command failing' END,
       NULL, NULL, NULL, NULL, a.last_failed_time AT TIME ZONE 'UTC',
       a.failed_count || ' failures since ' || COALESCE(a.stats_reset::text, 'start')
           || COALESCE(', last failed WAL ' || a.last_failed_wal, '')
FROM pg_stat_archiver a
WHERE current_setting('archive_mode') <> 'off'
"""
LOG_REUSE_12 = LOG_REUSE.replace(
    "CASE WHEN s.wal_status IN ('lost', 'unreserved') THEN s.wal_status\n            WHEN", "CASE WHEN"
).replace(
    "CASE WHEN current_setting('max_slot_wal_keep_size') <> '-1'\n"
    "            THEN pg_size_bytes(current_setting('max_slot_wal_keep_size')) / 1048576.0 END::float8",
    "NULL::float8",
)

# On a primary: each standby's lag; on a standby: its own replay lag
REPLICAS = """
SELECT COALESCE(NULLIF(r.application_name, ''), host(r.client_addr), r.pid::text) AS name,
       'streaming' AS kind, 'primary' AS role, false AS local, r.state::text AS state,
       r.sync_state IN ('sync', 'quorum') AS synchronous, true AS connected,
       extract(epoch FROM COALESCE(r.replay_lag, r.flush_lag, r.write_lag))::float8 AS lag_s,
       (pg_wal_lsn_diff(pg_current_wal_lsn(), r.flush_lsn) / 1048576.0)::float8 AS send_queue_mb,
       (pg_wal_lsn_diff(r.flush_lsn, r.replay_lsn) / 1048576.0)::float8 AS redo_queue_mb
FROM pg_stat_replication r
WHERE NOT pg_is_in_recovery()
UNION ALL
SELECT COALESCE(w.sender_host, 'this standby'), 'streaming', 'secondary', true,
       COALESCE(w.status, 'disconnected'), NULL, w.pid IS NOT NULL,
       CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
            ELSE extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp()) END::float8,
       NULL, (pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()) / 1048576.0)::float8
FROM (SELECT 1) one LEFT JOIN pg_stat_wal_receiver w ON true
WHERE pg_is_in_recovery()
"""

_STATS = "pg_read_all_stats (or pg_monitor)"
_STATEMENTS = (
    "the pg_stat_statements extension (shared_preload_libraries = 'pg_stat_statements', then "
    "CREATE EXTENSION pg_stat_statements in the database the copilot connects to), and pg_read_all_stats "
    "to see other roles' statements (their queryid is NULL without it)"
)


def _one_row(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not rows:
        raise SourceError("the server returned no row")
    return rows[:1]


PACK = QueryPack(
    engine="postgresql",
    queries=(
        PackQuery("sessions", SESSIONS, session_rows, requires=_STATS),
        PackQuery("sessions", SESSIONS_13, session_rows, requires=_STATS),
        PackQuery("waits", WAITS, requires=_STATS),
        PackQuery("waits", WAITS_13, requires=_STATS),
        PackQuery(
            "top_queries", _TOP_QUERIES.format(total="total_exec_time"), top_query_rows, requires=_STATEMENTS
        ),
        # PostgreSQL 12 and older call the columns total_time / mean_time
        PackQuery(
            "top_queries", _TOP_QUERIES.format(total="total_time"), top_query_rows, requires=_STATEMENTS
        ),
        PackQuery("files", _DATABASE_SIZES + "UNION ALL" + _WAL_SIZE, requires="pg_monitor"),
        PackQuery("files", _DATABASE_SIZES, requires="pg_read_all_stats or CONNECT on every database"),
        PackQuery("server", SERVER, _one_row, requires=_STATS),
        PackQuery("log_reuse", LOG_REUSE, requires=_STATS),
        PackQuery("log_reuse", LOG_REUSE_12, requires=_STATS),
        PackQuery("replicas", REPLICAS, requires=_STATS),
    ),
    session_setup=(
        "SET default_transaction_read_only = on",
        "SET statement_timeout = {timeout_ms}",
        "SET lock_timeout = {timeout_ms}",
        "SET idle_in_transaction_session_timeout = {timeout_ms}",
        "SET application_name = '{application_name}'",
    ),
    # doctor: a non-empty `missing_privileges` names what the login lacks though every query runs
    # (without pg_read_all_stats, other roles' queries read '<insufficient privilege>' and their queryid
    # is NULL, so top queries would be empty)
    probe=(
        "SELECT CASE WHEN pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') THEN ''"
        " ELSE 'pg_read_all_stats' END AS missing_privileges"
    ),
    cumulative_waits=False,
)
