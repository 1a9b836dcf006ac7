"""The SQL Server query pack: read-only DMV queries (mappers in tools.sql.packs.mssql_rows).

Every statement is a single SELECT over dynamic management views and catalog views: no locks taken on
user data (DMVs are not locked, so no NOLOCK hints), no temp tables, no dynamic SQL, nothing that
writes. The login needs VIEW SERVER STATE (VIEW SERVER PERFORMANCE STATE on SQL Server 2022+), VIEW ANY
DEFINITION for sys.master_files, and VIEW DATABASE STATE in the connected database for Query Store.
Azure SQL Database (SERVERPROPERTY('EngineEdition') = 5) has no instance views: its alternatives read
sys.dm_db_wait_stats, the database's own files and sys.dm_db_resource_stats. Azure SQL Managed Instance
(EngineEdition 8) reads as SQL Server.

Units: sys.dm_exec_requests and sys.dm_exec_sessions report milliseconds; sys.dm_exec_query_stats
and Query Store report microseconds (divided by 1000 in the mappers); sizes are 8 KB pages (divided
by 128 for MB). DMV timestamps are the server's local time; they are turned into UTC with the offset
between SYSDATETIME() and SYSUTCDATETIME() read in the same statement.
"""

from __future__ import annotations

from tools.sql.packs import mssql_rows as rows
from tools.sql.packs.base import PackQuery, QueryPack
from tools.sql.packs.mssql_rows import (  # noqa: F401  (re-exported: tests and the TDS harness use them)
    file_rows,
    query_hash_text,
    session_rows,
    top_query_rows,
    wait_rows,
)

TOP_STATEMENTS = 50
MAX_SESSIONS = 2000

# The statement text of a request (or, for a session with no request, of its last batch). The
# offsets are byte positions in the nvarchar text; -1 means "to the end of the batch".
_STATEMENT = """SUBSTRING(t.text, COALESCE({o}.statement_start_offset, 0) / 2 + 1,
           CASE WHEN COALESCE({o}.statement_end_offset, -1) = -1 THEN 1073741823
                ELSE ({o}.statement_end_offset - COALESCE({o}.statement_start_offset, 0)) / 2 + 1 END)"""

# Every user session: the idle ones count connections and may hold locks (an application lock owned by
# the session, an open transaction). One row per session and waiting task (sys.dm_os_waiting_tasks,
# as sp_WhoIsActive reads blocking): a parallel request's tasks may wait on different sessions, and
# every one is a blocker. Statement text is fetched only for sessions that run, hold a transaction or
# block someone.
SESSIONS_SQL = f"""
SELECT TOP ({MAX_SESSIONS})
       s.session_id,
       COALESCE(r.status, s.status) AS status,
       s.login_name, s.host_name, s.program_name, s.login_time,
       DB_NAME(COALESCE(r.database_id, s.database_id)) AS database_name,
       r.command, r.wait_type, r.wait_time, r.wait_resource, r.blocking_session_id,
       wt.blocking_session_id AS task_blocker, wt.wait_type AS task_wait_type,
       wt.wait_duration_ms AS task_wait_ms, wt.resource_description AS task_resource,
       COALESCE(r.cpu_time, s.cpu_time) AS cpu_time,
       COALESCE(r.logical_reads, s.logical_reads) AS logical_reads,
       r.total_elapsed_time,
       s.open_transaction_count,
       tx.transaction_begin_time,
       s.last_request_start_time,
       mg.requested_memory_kb, mg.granted_memory_kb, mg.wait_time_ms AS grant_wait_ms,
       su.tempdb_pages, sn.snapshot_seconds,
       {_STATEMENT.format(o="r")} AS sql_text,
       SYSDATETIME() AS sampled_at, SYSUTCDATETIME() AS sampled_at_utc
FROM sys.dm_exec_sessions AS s
LEFT JOIN sys.dm_exec_requests AS r ON r.session_id = s.session_id
LEFT JOIN sys.dm_os_waiting_tasks AS wt
       ON wt.session_id = s.session_id AND wt.blocking_session_id IS NOT NULL
      AND wt.blocking_session_id <> s.session_id
LEFT JOIN sys.dm_exec_connections AS c ON c.session_id = s.session_id AND c.parent_connection_id IS NULL
LEFT JOIN (SELECT st.session_id, MIN(tat.transaction_begin_time) AS transaction_begin_time
           FROM sys.dm_tran_session_transactions AS st
           JOIN sys.dm_tran_active_transactions AS tat ON tat.transaction_id = st.transaction_id
           GROUP BY st.session_id) AS tx ON tx.session_id = s.session_id
LEFT JOIN sys.dm_exec_query_memory_grants AS mg
       ON mg.session_id = r.session_id AND mg.request_id = r.request_id
LEFT JOIN (SELECT u.session_id,
                  SUM(u.user_objects_alloc_page_count - u.user_objects_dealloc_page_count
                      + u.internal_objects_alloc_page_count - u.internal_objects_dealloc_page_count)
                      AS tempdb_pages
           FROM sys.dm_db_session_space_usage AS u
           GROUP BY u.session_id) AS su ON su.session_id = s.session_id
LEFT JOIN (SELECT a.session_id, MAX(a.elapsed_time_seconds) AS snapshot_seconds
           FROM sys.dm_tran_active_snapshot_database_transactions AS a
           GROUP BY a.session_id) AS sn ON sn.session_id = s.session_id
LEFT JOIN (SELECT DISTINCT b.blocking_session_id AS blocker FROM sys.dm_os_waiting_tasks AS b
           WHERE b.blocking_session_id > 0) AS bl ON bl.blocker = s.session_id
OUTER APPLY sys.dm_exec_sql_text(CASE WHEN r.session_id IS NOT NULL OR s.open_transaction_count > 0
                                           OR bl.blocker IS NOT NULL
                                      THEN COALESCE(r.sql_handle, c.most_recent_sql_handle) END) AS t
WHERE s.is_user_process = 1
  AND s.session_id <> @@SPID
ORDER BY CASE WHEN wt.session_id IS NOT NULL OR bl.blocker IS NOT NULL THEN 0
              WHEN r.session_id IS NOT NULL OR s.open_transaction_count > 0 THEN 1 ELSE 2 END,
         s.session_id
"""

# Cumulative since the last restart, plus the waits still in progress (sys.dm_os_waiting_tasks): the
# difference of two samples is then exactly the time spent waiting between them, a 10-minute lock
# wait that has not ended included. Benign idle waits are kept: the analyzer (tools.sql.waits) is the
# one place that knows which they are.
_WAITS = """
SELECT ws.wait_type, ws.waiting_tasks_count,
       ws.wait_time_ms + COALESCE(wt.in_progress_ms, 0) AS wait_time_ms, ws.signal_wait_time_ms
FROM {view} AS ws
LEFT JOIN (SELECT w.wait_type, SUM(w.wait_duration_ms) AS in_progress_ms
           FROM sys.dm_os_waiting_tasks AS w
           GROUP BY w.wait_type) AS wt ON wt.wait_type = ws.wait_type
WHERE ws.wait_time_ms > 0 OR wt.in_progress_ms > 0
"""
WAITS_SQL = _WAITS.format(view="sys.dm_os_wait_stats")
AZURE_DB_WAITS_SQL = _WAITS.format(view="sys.dm_db_wait_stats")  # Azure SQL Database: this database's

# The 50 cached plans with the most elapsed time in the last day, ranked before any text is fetched
# (sp_BlitzCache does the same: TOP first, text after). Each query is then judged by the plan it runs
# now (its most recently executed cached plan), never by the sum of an old good plan and a new bad one.
_TOP_PLANS = f"""top_plans AS (
    SELECT TOP ({TOP_STATEMENTS})
           qs.query_hash, qs.query_plan_hash, qs.sql_handle, qs.statement_start_offset,
           qs.statement_end_offset, qs.execution_count, qs.total_worker_time, qs.total_elapsed_time,
           qs.total_logical_reads, qs.last_execution_time, qs.creation_time
    FROM sys.dm_exec_query_stats AS qs
    WHERE qs.last_execution_time >= DATEADD(HOUR, -24, SYSDATETIME())
    ORDER BY qs.total_elapsed_time DESC
),
current_plans AS (
    SELECT p.*,
           ROW_NUMBER() OVER (PARTITION BY p.query_hash ORDER BY p.last_execution_time DESC) AS plan_rank,
           COUNT(*) OVER (PARTITION BY p.query_hash) AS plans
    FROM top_plans AS p
)"""

# The baseline, from the connected database's Query Store (it is per database; statements of other
# databases get no baseline, and the mapper says why): each query's execution-weighted average over
# the week before the last day, regular executions only (execution_type 0), and the plan it ran most.
_BASELINE = """qs_plans AS (
    SELECT qq.query_hash, p.plan_id, p.query_plan_hash,
           SUM(rs.avg_duration * rs.count_executions) AS duration, SUM(rs.count_executions) AS runs
    FROM sys.query_store_runtime_stats AS rs
    JOIN sys.query_store_runtime_stats_interval AS i
         ON i.runtime_stats_interval_id = rs.runtime_stats_interval_id
    JOIN sys.query_store_plan AS p ON p.plan_id = rs.plan_id
    JOIN sys.query_store_query AS qq ON qq.query_id = p.query_id
    WHERE i.start_time >= DATEADD(DAY, -8, SYSUTCDATETIME())
      AND i.end_time <= DATEADD(DAY, -1, SYSUTCDATETIME())
      AND rs.execution_type = 0
    GROUP BY qq.query_hash, p.plan_id, p.query_plan_hash
),
baseline AS (
    SELECT b.query_hash, b.plan_id AS baseline_plan_id,
           SUM(b.duration) OVER (PARTITION BY b.query_hash) AS baseline_duration,
           SUM(b.runs) OVER (PARTITION BY b.query_hash) AS baseline_executions,
           ROW_NUMBER() OVER (PARTITION BY b.query_hash ORDER BY b.runs DESC) AS plan_rank
    FROM qs_plans AS b
)"""

_TOP = f"""
SELECT q.query_hash, q.query_plan_hash, q.plans, q.execution_count, q.total_worker_time,
       q.total_elapsed_time, q.total_logical_reads, q.last_execution_time,
       q.creation_time,{{baseline_columns}}
       t.dbid AS database_id, DB_NAME(t.dbid) AS statement_database, DB_NAME() AS connected_database,
       {_STATEMENT.format(o="q")} AS sql_text,
       SYSDATETIME() AS sampled_at, SYSUTCDATETIME() AS sampled_at_utc
FROM current_plans AS q{{baseline_join}}
OUTER APPLY sys.dm_exec_sql_text(q.sql_handle) AS t
WHERE q.plan_rank = 1
ORDER BY q.total_elapsed_time DESC
"""

# With the Query Store baseline (SQL Server 2016+); without it where Query Store cannot be read - or
# takes too long: the first is a `variant`, so any failure falls back without counting against the
# instance's circuit breaker.
TOP_QUERIES_WITH_BASELINE_SQL = f"WITH {_TOP_PLANS},\n{_BASELINE}" + _TOP.format(
    baseline_columns=(
        "\n       b.baseline_duration, b.baseline_executions, b.baseline_plan_id, cp.plan_id AS plan_id,"
    ),
    baseline_join=(
        "\nLEFT JOIN baseline AS b ON b.query_hash = q.query_hash AND b.plan_rank = 1"
        "\nLEFT JOIN sys.query_store_plan AS cp ON cp.query_plan_hash = q.query_plan_hash"
    ),
)
TOP_QUERIES_SQL = f"WITH {_TOP_PLANS}" + _TOP.format(baseline_columns="", baseline_join="")

# Data and log files of every database (FILESTREAM and full-text containers left out). Space used:
# FILEPROPERTY for the files of the connected database (it only answers there), tempdb's own
# allocation DMV for tempdb's data files, the per-database "Log File(s) Used Size (KB)" counter for
# every log. sys.master_files holds tempdb's startup sizes; its current ones are in tempdb (id 2).
FILES_SQL = """
SELECT DB_NAME(mf.database_id) AS database_name,
       mf.name AS file_name, mf.type_desc,
       COALESCE(tf.size, mf.size) AS size,
       COALESCE(tf.max_size, mf.max_size) AS max_size,
       COALESCE(tf.growth, mf.growth) AS growth,
       CASE WHEN mf.database_id = DB_ID() THEN FILEPROPERTY(mf.name, 'SpaceUsed') END AS space_used,
       tu.allocated_extent_page_count AS tempdb_space_used,
       lu.cntr_value AS log_used_kb,
       vs.available_bytes AS volume_available_bytes
FROM sys.master_files AS mf
LEFT JOIN tempdb.sys.database_files AS tf
       ON mf.database_id = 2 AND tf.file_id = mf.file_id
LEFT JOIN tempdb.sys.dm_db_file_space_usage AS tu
       ON tu.database_id = mf.database_id AND tu.file_id = mf.file_id
LEFT JOIN sys.dm_os_performance_counters AS lu
       ON mf.type = 1
      AND lu.object_name LIKE N'%:Databases%'
      AND lu.counter_name = N'Log File(s) Used Size (KB)'
      AND lu.instance_name = DB_NAME(mf.database_id)
OUTER APPLY sys.dm_os_volume_stats(mf.database_id, mf.file_id) AS vs
WHERE mf.type IN (0, 1)
ORDER BY mf.database_id, mf.file_id
"""

# Azure SQL Database: no sys.master_files; the database's own files, and its size limit as max size
AZURE_DB_FILES_SQL = """
SELECT DB_NAME() AS database_name, df.name AS file_name, df.type_desc, df.size,
       CASE WHEN df.type = 0 THEN CAST(DATABASEPROPERTYEX(DB_NAME(), 'MaxSizeInBytes') AS bigint) / 8192
            ELSE df.max_size END AS max_size,
       df.growth, FILEPROPERTY(df.name, 'SpaceUsed') AS space_used,
       NULL AS tempdb_space_used, NULL AS log_used_kb, NULL AS volume_available_bytes
FROM sys.database_files AS df
WHERE df.type IN (0, 1)
"""

# Instance-wide state in one row: platform, connections and workers against their maximums, tasks
# waiting for a worker, deadlocks since start, memory grants, version store. Not on Azure SQL Database
# (the row is filtered out there, so its own alternative answers).
SERVER_SQL = """
SELECT SYSUTCDATETIME() AS sampled_at,
       CAST(SERVERPROPERTY('EngineEdition') AS int) AS engine_edition,
       CAST(SERVERPROPERTY('ProductVersion') AS nvarchar(128)) AS version,
       i.sqlserver_start_time AS started_at_local, SYSDATETIME() AS sampled_at_local,
       (SELECT COUNT(*) FROM sys.dm_exec_sessions AS s WHERE s.is_user_process = 1) AS connections,
       @@MAX_CONNECTIONS AS max_connections,
       (SELECT COUNT(*) FROM sys.dm_exec_requests AS r
        JOIN sys.dm_exec_sessions AS s ON s.session_id = r.session_id
        WHERE s.is_user_process = 1) AS active_connections,
       (SELECT SUM(sc.current_workers_count) FROM sys.dm_os_schedulers AS sc
        WHERE sc.status = N'VISIBLE ONLINE') AS workers,
       i.max_workers_count AS max_workers,
       (SELECT SUM(sc.work_queue_count) FROM sys.dm_os_schedulers AS sc WHERE sc.status = N'VISIBLE ONLINE')
           AS queued_tasks,
       (SELECT pc.cntr_value FROM sys.dm_os_performance_counters AS pc
        WHERE pc.object_name LIKE N'%:Locks%' AND pc.counter_name = N'Number of Deadlocks/sec'
          AND pc.instance_name = N'_Total') AS deadlocks,
       (SELECT pc.cntr_value FROM sys.dm_os_performance_counters AS pc
        WHERE pc.object_name LIKE N'%:Memory Manager%' AND pc.counter_name = N'Memory Grants Pending')
           AS memory_grants_pending,
       (SELECT pc.cntr_value FROM sys.dm_os_performance_counters AS pc
        WHERE pc.object_name LIKE N'%:Memory Manager%' AND pc.counter_name = N'Memory Grants Outstanding')
           AS memory_grants_outstanding,
       (SELECT pc.cntr_value FROM sys.dm_os_performance_counters AS pc
        WHERE pc.object_name LIKE N'%:Transactions%' AND pc.counter_name = N'Version Store Size (KB)')
           AS version_store_kb
FROM sys.dm_os_sys_info AS i
WHERE CAST(SERVERPROPERTY('EngineEdition') AS int) <> 5
"""

# Azure SQL Database: sessions and workers as a share of the service tier's limits (the latest 15 s of
# sys.dm_db_resource_stats), deadlocks and grants from the database's counters
AZURE_DB_SERVER_SQL = """
SELECT SYSUTCDATETIME() AS sampled_at, 5 AS engine_edition,
       CAST(SERVERPROPERTY('ProductVersion') AS nvarchar(128)) AS version,
       NULL AS started_at_local, SYSDATETIME() AS sampled_at_local,
       CAST(rs.max_session_percent AS int) AS connections, 100 AS max_connections,
       NULL AS active_connections, CAST(rs.max_worker_percent AS int) AS workers, 100 AS max_workers,
       NULL AS queued_tasks,
       (SELECT pc.cntr_value FROM sys.dm_os_performance_counters AS pc
        WHERE pc.counter_name = N'Number of Deadlocks/sec' AND pc.instance_name = N'_Total') AS deadlocks,
       (SELECT COUNT(*) FROM sys.dm_exec_query_memory_grants AS g WHERE g.grant_time IS NULL)
           AS memory_grants_pending,
       NULL AS memory_grants_outstanding, NULL AS version_store_kb
FROM (SELECT TOP (1) r.max_session_percent, r.max_worker_percent
      FROM sys.dm_db_resource_stats AS r ORDER BY r.end_time DESC) AS rs
"""

# Why each database's log cannot be reused, with its size and use (the per-database log counters)
LOG_REUSE_SQL = """
SELECT d.name AS database_name, d.log_reuse_wait_desc, d.recovery_model_desc,
       ls.cntr_value AS log_size_kb, lu.cntr_value AS log_used_kb
FROM sys.databases AS d
LEFT JOIN sys.dm_os_performance_counters AS ls
       ON ls.object_name LIKE N'%:Databases%' AND ls.counter_name = N'Log File(s) Size (KB)'
      AND ls.instance_name = d.name
LEFT JOIN sys.dm_os_performance_counters AS lu
       ON lu.object_name LIKE N'%:Databases%' AND lu.counter_name = N'Log File(s) Used Size (KB)'
      AND lu.instance_name = d.name
WHERE d.state = 0
"""

# Availability group database replicas as this server sees them (a primary sees every secondary)
REPLICAS_SQL = """
SELECT ag.name AS group_name, ar.replica_server_name, DB_NAME(drs.database_id) AS database_name,
       drs.is_local, drs.is_primary_replica, drs.synchronization_state_desc, drs.synchronization_health_desc,
       ar.availability_mode_desc, drs.log_send_queue_size, drs.redo_queue_size, drs.secondary_lag_seconds,
       drs.last_commit_time, drs.is_suspended, drs.suspend_reason_desc
FROM sys.dm_hadr_database_replica_states AS drs
JOIN sys.availability_replicas AS ar ON ar.replica_id = drs.replica_id
JOIN sys.availability_groups AS ag ON ag.group_id = drs.group_id
"""
# before SQL Server 2016 SP? there is no secondary_lag_seconds
REPLICAS_NO_LAG_SQL = REPLICAS_SQL.replace("drs.secondary_lag_seconds", "NULL AS secondary_lag_seconds")

# the latest deadlock graphs system_health kept (its ring buffer target; parsed client-side)
DEADLOCKS_SQL = """
SELECT CAST(t.target_data AS nvarchar(max)) AS target_data
FROM sys.dm_xe_session_targets AS t
JOIN sys.dm_xe_sessions AS s ON s.address = t.event_session_address
WHERE s.name = N'system_health' AND t.target_name = N'ring_buffer'
"""

_STATE = "VIEW SERVER STATE (VIEW SERVER PERFORMANCE STATE on SQL Server 2022+)"
_DB_STATE = "VIEW DATABASE STATE (Azure SQL Database)"

# Queries of one dataset are alternatives, best first (tools.sql.live): the first the server answers
# gives the rows; the next is tried when an object or a permission is missing (after a variant: on any
# failure).
PACK = QueryPack(
    engine="mssql",
    queries=(
        PackQuery("sessions", SESSIONS_SQL, rows.session_rows, requires=_STATE),
        PackQuery("waits", AZURE_DB_WAITS_SQL, rows.wait_rows, requires=_DB_STATE),
        PackQuery("waits", WAITS_SQL, rows.wait_rows, requires=_STATE),
        PackQuery(
            "top_queries",
            TOP_QUERIES_WITH_BASELINE_SQL,
            rows.top_query_rows,
            requires=f"{_STATE}, and Query Store (SQL Server 2016+) with VIEW DATABASE STATE in the database",
            variant=True,
        ),
        PackQuery("top_queries", TOP_QUERIES_SQL, rows.top_query_rows, requires=_STATE),
        PackQuery("files", FILES_SQL, rows.file_rows, requires=f"{_STATE} and VIEW ANY DEFINITION"),
        PackQuery("files", AZURE_DB_FILES_SQL, rows.file_rows, requires=_DB_STATE),
        PackQuery("server", SERVER_SQL, rows.server_rows, requires=_STATE),
        PackQuery("server", AZURE_DB_SERVER_SQL, rows.server_rows, requires=_DB_STATE),
        PackQuery("log_reuse", LOG_REUSE_SQL, rows.log_reuse_rows, requires="VIEW ANY DEFINITION"),
        PackQuery("replicas", REPLICAS_SQL, rows.replica_rows, requires=_STATE, optional=True),
        PackQuery("replicas", REPLICAS_NO_LAG_SQL, rows.replica_rows, requires=_STATE, optional=True),
        PackQuery("deadlocks", DEADLOCKS_SQL, rows.deadlock_rows, requires=_STATE, optional=True),
    ),
    # short and harmless: a catalog view blocked by DDL fails fast (error 1222) instead of waiting
    # out the query timeout, and the copilot's session is the one chosen as a deadlock victim. SQL
    # Server has no read-only session setting: the login's permissions (VIEW ... STATE only) are the
    # enforcement, and ApplicationIntent=ReadOnly where the instance is a readable secondary.
    session_setup=("SET LOCK_TIMEOUT 1000", "SET DEADLOCK_PRIORITY LOW", "SET IMPLICIT_TRANSACTIONS OFF"),
    probe="SELECT 1",
)
