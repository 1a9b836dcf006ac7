"""The PostgreSQL query pack: pg_stat_activity, pg_locks, pg_stat_statements, database sizes as SPEC v1 rows.

Every statement is a plain SELECT over statistics views. Queries of one dataset are alternatives, best
first (see tools.sql.live): the first that the server can answer gives the rows.
Needs (docs/readonly-logins.md): pg_monitor (pg_read_all_stats to see other logins' sessions and
statements, pg_ls_waldir for the WAL size), and the pg_stat_statements extension.
"""

from __future__ import annotations

from tools.sql.packs.base import PackQuery, QueryPack

# How long a session has been in its current state. PostgreSQL does not record when a wait began, so a
# session's wait time is the age of what it is doing: its statement when active, its state otherwise.
_STATE_AGE = (
    "1000 * extract(epoch FROM clock_timestamp() - COALESCE("
    "CASE WHEN a.state = 'active' THEN a.query_start END, a.state_change, a.backend_start))"
)

SESSIONS = f"""
WITH waiting AS (
    SELECT DISTINCT ON (l.pid) l.pid,
           l.locktype || COALESCE(' ' || l.relation::regclass::text, '')
               || COALESCE(' xid ' || l.transactionid::text, '') || ' (' || l.mode || ')' AS resource
    FROM pg_locks l
    WHERE NOT l.granted
    ORDER BY l.pid
)
SELECT a.pid AS session_id,
       COALESCE(a.state, a.backend_type) AS status,
       a.usename::text AS login_name,
       COALESCE(a.client_hostname, host(a.client_addr)) AS host_name,
       NULLIF(a.application_name, '') AS program_name,
       a.datname::text AS database_name,
       CASE WHEN a.state = 'active' THEN upper(substring(a.query FROM '^\\s*(\\w+)')) END AS command,
       a.wait_event_type || ':' || a.wait_event AS wait_type,
       CASE WHEN a.wait_event IS NOT NULL THEN {_STATE_AGE} END::float8 AS wait_time_ms,
       w.resource AS wait_resource,
       CASE WHEN w.pid IS NOT NULL THEN (pg_blocking_pids(a.pid))[1] END AS blocking_session_id,
       NULL::float8 AS cpu_time_ms,
       NULL::float8 AS logical_reads,
       (1000 * extract(epoch FROM clock_timestamp() - CASE
            WHEN a.state LIKE 'idle in transaction%' THEN a.xact_start
            WHEN a.state = 'active' THEN a.query_start
            ELSE COALESCE(a.state_change, a.backend_start) END))::float8 AS elapsed_ms,
       CASE WHEN a.xact_start IS NOT NULL
                 AND (a.state IS DISTINCT FROM 'active' OR a.xact_start < a.query_start) THEN 1 ELSE 0
       END AS open_transaction_count,
       a.query AS sql_text
FROM pg_stat_activity a
LEFT JOIN waiting w ON w.pid = a.pid
WHERE a.pid <> pg_backend_pid()
  AND a.backend_type IN ('client backend', 'autovacuum worker', 'parallel worker')
ORDER BY (w.pid IS NOT NULL) DESC, a.xact_start NULLS LAST, a.pid
LIMIT 2000
"""

# PostgreSQL keeps no cumulative wait statistics (unlike sys.dm_os_wait_stats or performance_schema):
# this is a snapshot of what sessions wait on right now. waiting_tasks_count = sessions now waiting on
# the event, wait_time_ms = the sum of their current waits; active sessions without a wait event are
# on CPU (or in an uninstrumented wait) and reported as "CPU".
WAITS = f"""
SELECT COALESCE(a.wait_event_type || ':' || a.wait_event, 'CPU') AS wait_type,
       count(*)::float8 AS waiting_tasks_count,
       COALESCE(sum({_STATE_AGE}), 0)::float8 AS wait_time_ms,
       NULL::float8 AS signal_wait_time_ms
FROM pg_stat_activity a
WHERE a.pid <> pg_backend_pid() AND (a.wait_event IS NOT NULL OR a.state = 'active')
GROUP BY 1
ORDER BY 3 DESC
LIMIT 100
"""

# Statements of the copilot's own login are left out: they are the monitoring, not the workload.
# baseline_avg_elapsed_ms stays null: pg_stat_statements has no history (no baseline snapshot is kept).
_TOP_QUERIES = """
SELECT s.queryid::text AS query_hash,
       sum(s.calls)::float8 AS execution_count,
       NULL::float8 AS total_cpu_ms,
       sum(s.{total})::float8 AS total_elapsed_ms,
       sum(s.shared_blks_hit + s.shared_blks_read)::float8 AS total_logical_reads,
       (sum(s.{total}) / NULLIF(sum(s.calls), 0))::float8 AS avg_elapsed_ms,
       NULL::float8 AS baseline_avg_elapsed_ms,
       NULL::text AS last_execution_time,
       min(s.query) AS sql_text
FROM pg_stat_statements s
WHERE s.queryid IS NOT NULL AND s.userid <> (SELECT r.oid FROM pg_roles r WHERE r.rolname = current_user)
GROUP BY s.queryid
ORDER BY sum(s.{total}) DESC
LIMIT 50
"""

_DATABASE_SIZES = """
SELECT d.datname::text AS database_name, d.datname::text AS file_name, 'data' AS type,
       pg_database_size(d.oid) / 1048576.0::float8 AS size_mb,
       NULL::float8 AS used_mb, NULL::float8 AS max_size_mb, NULL::float8 AS volume_free_mb
FROM pg_database d
WHERE NOT d.datistemplate AND d.datallowconn
"""

# WAL is shared by all databases; how full its volume is cannot be read over SQL, so used_mb stays null.
_WAL_SIZE = """
SELECT 'all databases', 'pg_wal', 'log', COALESCE(sum(w.size), 0) / 1048576.0::float8, NULL::float8,
       NULL::float8, NULL::float8
FROM pg_ls_waldir() w
"""

_STATS = "pg_read_all_stats (or pg_monitor)"
_STATEMENTS = (
    "the pg_stat_statements extension (shared_preload_libraries = 'pg_stat_statements', then "
    "CREATE EXTENSION pg_stat_statements in the database the copilot connects to)"
)

PACK = QueryPack(
    engine="postgresql",
    queries=(
        PackQuery("sessions", SESSIONS, requires=_STATS),
        PackQuery("waits", WAITS, requires=_STATS),
        PackQuery("top_queries", _TOP_QUERIES.format(total="total_exec_time"), requires=_STATEMENTS),
        # PostgreSQL 12 and older call the columns total_time / mean_time
        PackQuery("top_queries", _TOP_QUERIES.format(total="total_time"), requires=_STATEMENTS),
        PackQuery("files", _DATABASE_SIZES + "UNION ALL" + _WAL_SIZE, requires="pg_monitor"),
        PackQuery("files", _DATABASE_SIZES, requires="pg_read_all_stats or CONNECT on every database"),
    ),
    session_setup=(
        "SET default_transaction_read_only = on",
        "SET statement_timeout = {timeout_ms}",
        "SET lock_timeout = {timeout_ms}",
        "SET application_name = '{application_name}'",
    ),
    # doctor: a non-empty `missing_privileges` names what the login lacks though every query runs
    # (without pg_read_all_stats, other logins' queries read '<insufficient privilege>')
    probe=(
        "SELECT CASE WHEN pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') THEN ''"
        " ELSE 'pg_read_all_stats' END AS missing_privileges"
    ),
)
