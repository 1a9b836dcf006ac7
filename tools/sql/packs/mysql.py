"""The MySQL / MariaDB query pack: sessions with every InnoDB and metadata-lock blocker, waits with InnoDB
row-lock time, statement digests, tablespaces and the redo log, server counters, binary logs, replication
channels and the latest detected deadlock, as SPEC v1 rows (mappers in tools.sql.packs.mysql_rows).

Queries of one dataset are alternatives, best first (see tools.sql.live): MariaDB (information_schema
.PROCESSLIST and INNODB_LOCK_WAITS: MariaDB has no performance_schema.processlist) before MySQL 8
(performance_schema.processlist and data_lock_waits, no global mutex); MySQL's information_schema
.PROCESSLIST (a global mutex) only without performance_schema. The first the server answers gives the
rows.
Needs (docs/readonly-logins.md): PROCESS, SELECT on performance_schema.*, BINLOG MONITOR and SLAVE
MONITOR on MariaDB (REPLICATION CLIENT on MySQL) for binary logs and replica status, and
performance_schema=ON for waits, top queries and metadata locks.
"""

from __future__ import annotations

from tools.sql.packs import mysql_rows as rows
from tools.sql.packs.base import PackQuery, QueryPack

# --- sessions -------------------------------------------------------------------------------------

_SESSIONS = """
SELECT p.ID AS session_id, p.COMMAND AS command, p.STATE AS state, p.USER AS login_name, p.HOST AS host,
       p.DB AS database_name, p.TIME_MS AS time_ms, UNIX_TIMESTAMP() - p.TIME_S AS command_start_epoch,
       p.INFO AS sql_text,
       t.trx_state AS trx_state,
       TIMESTAMPDIFF(MICROSECOND, t.trx_started, NOW(6)) / 1000 AS trx_ms,
       TIMESTAMPDIFF(MICROSECOND, t.trx_wait_started, NOW(6)) / 1000 AS lock_wait_ms,
       t.trx_isolation_level <> 'READ UNCOMMITTED' AND t.trx_state IS NOT NULL AS read_view,
       bw.blockers AS blockers,
       {lock_type} AS lock_type, {lock_mode} AS lock_mode,
       {lock_resource} AS wait_resource,
       {mdl_columns}
FROM ({processlist}) p
LEFT JOIN information_schema.INNODB_TRX t ON t.trx_mysql_thread_id = p.ID
LEFT JOIN ({lock_waits}) bw ON bw.requesting_trx_id = t.trx_id
LEFT JOIN {locks} l ON l.{lock_id} = t.trx_requested_lock_id
{mdl_join}
WHERE p.ID <> CONNECTION_ID() AND p.COMMAND NOT IN ('Daemon', 'Binlog Dump', 'Binlog Dump GTID')
ORDER BY (t.trx_state = 'LOCK WAIT') DESC, t.trx_started IS NULL, t.trx_started, p.ID
LIMIT 2000
"""

# every blocker of each waiting transaction: 'thread:trx_id:held mode' (thread 0: a prepared XA trx)
_MARIADB_LOCK_WAITS = """
SELECT w.requesting_trx_id,
       GROUP_CONCAT(DISTINCT CONCAT(b.trx_mysql_thread_id, ':', b.trx_id, ':', COALESCE(bl.lock_mode, ''))
                    SEPARATOR ',') AS blockers
FROM information_schema.INNODB_LOCK_WAITS w
JOIN information_schema.INNODB_TRX b ON b.trx_id = w.blocking_trx_id
LEFT JOIN information_schema.INNODB_LOCKS bl ON bl.lock_id = w.blocking_lock_id
GROUP BY w.requesting_trx_id
"""
_MYSQL8_LOCK_WAITS = """
SELECT w.REQUESTING_ENGINE_TRANSACTION_ID AS requesting_trx_id,
       GROUP_CONCAT(DISTINCT CONCAT(b.trx_mysql_thread_id, ':', b.trx_id, ':', COALESCE(bl.LOCK_MODE, ''))
                    SEPARATOR ',') AS blockers
FROM performance_schema.data_lock_waits w
JOIN information_schema.INNODB_TRX b ON b.trx_id = w.BLOCKING_ENGINE_TRANSACTION_ID
LEFT JOIN performance_schema.data_locks bl ON bl.ENGINE_LOCK_ID = w.BLOCKING_ENGINE_LOCK_ID
GROUP BY w.REQUESTING_ENGINE_TRANSACTION_ID
"""

# pending metadata locks and every thread holding one on the same object (sys.schema_table_lock_waits)
_MDL_WAITS = """
LEFT JOIN (
    SELECT wt.PROCESSLIST_ID AS waiter,
           GROUP_CONCAT(DISTINCT CONCAT(ht.PROCESSLIST_ID, ':', h.LOCK_TYPE) SEPARATOR ',') AS blockers,
           MIN(CONCAT(w.OBJECT_TYPE, ' ', COALESCE(CONCAT(w.OBJECT_SCHEMA, '.'), ''),
                      COALESCE(w.OBJECT_NAME, ''))) AS object,
           MIN(w.LOCK_TYPE) AS mode
    FROM performance_schema.metadata_locks w
    JOIN performance_schema.threads wt ON wt.THREAD_ID = w.OWNER_THREAD_ID
    JOIN performance_schema.metadata_locks h
      ON h.LOCK_STATUS = 'GRANTED' AND h.OWNER_THREAD_ID <> w.OWNER_THREAD_ID
     AND h.OBJECT_TYPE = w.OBJECT_TYPE AND h.OBJECT_SCHEMA <=> w.OBJECT_SCHEMA
     AND h.OBJECT_NAME <=> w.OBJECT_NAME
    JOIN performance_schema.threads ht ON ht.THREAD_ID = h.OWNER_THREAD_ID
    WHERE w.LOCK_STATUS = 'PENDING' AND wt.PROCESSLIST_ID IS NOT NULL AND ht.PROCESSLIST_ID IS NOT NULL
    GROUP BY wt.PROCESSLIST_ID
) mdl ON mdl.waiter = p.ID
"""
_MDL_COLUMNS = "mdl.blockers AS mdl_blockers, mdl.object AS mdl_object, mdl.mode AS mdl_mode"
_NO_MDL_COLUMNS = "NULL AS mdl_blockers, NULL AS mdl_object, NULL AS mdl_mode"

# where sessions come from: performance_schema first (no global mutex), information_schema last
_MYSQL8_PROCESSLIST = """
SELECT ID, USER, HOST, DB, COMMAND, TIME * 1000 AS TIME_MS, TIME AS TIME_S, STATE, INFO
FROM performance_schema.processlist
"""
_MARIADB_IS_PROCESSLIST = """
SELECT ID, USER, HOST, DB, COMMAND, TIME_MS, TIME AS TIME_S, STATE, INFO FROM information_schema.PROCESSLIST
"""
_MYSQL_IS_PROCESSLIST = """
SELECT ID, USER, HOST, DB, COMMAND, TIME * 1000 AS TIME_MS, TIME AS TIME_S, STATE, INFO
FROM information_schema.PROCESSLIST
"""

_MARIADB = {
    "lock_waits": _MARIADB_LOCK_WAITS,
    "locks": "information_schema.INNODB_LOCKS",
    "lock_id": "lock_id",
    "lock_type": "l.lock_type",
    "lock_mode": "l.lock_mode",
    "lock_resource": (
        "CONCAT(l.lock_mode, ' lock on ', l.lock_table, COALESCE(CONCAT(' index ', l.lock_index), ''))"
    ),
}
_MYSQL8 = {
    "lock_waits": _MYSQL8_LOCK_WAITS,
    "locks": "performance_schema.data_locks",
    "lock_id": "ENGINE_LOCK_ID",
    "lock_type": "l.LOCK_TYPE",
    "lock_mode": "l.LOCK_MODE",
    "lock_resource": (
        "CONCAT(l.LOCK_MODE, ' lock on `', l.OBJECT_SCHEMA, '`.`', l.OBJECT_NAME, '`',"
        " COALESCE(CONCAT(' index ', l.INDEX_NAME), ''))"
    ),
}


def _ps_wrapped(sql: str) -> str:
    """Rows plus @@performance_schema, with one row even when there are none: an off performance_schema
    (empty tables) is told apart from an idle server, so the next alternative is tried."""
    wrapped = (
        "SELECT o.ps_on, x.* FROM (SELECT @@performance_schema AS ps_on) o LEFT JOIN ({}) x ON o.ps_on = 1"
    )
    return wrapped.format(sql)


# MariaDB has no performance_schema.processlist, and its performance_schema.threads leaves the statement
# text of prepared statements empty (what Connector/ODBC and JDBC send): information_schema.PROCESSLIST
# is the only complete source there. Metadata-lock holders come from performance_schema when it is on.
MARIADB_SESSIONS = _SESSIONS.format(
    processlist=_MARIADB_IS_PROCESSLIST, mdl_columns=_MDL_COLUMNS, mdl_join=_MDL_WAITS, **_MARIADB
)
# MySQL 8.0.22+: performance_schema.processlist, the documented replacement of the processlist that
# takes no global mutex
MYSQL8_SESSIONS = _ps_wrapped(
    _SESSIONS.format(
        processlist=_MYSQL8_PROCESSLIST, mdl_columns=_MDL_COLUMNS, mdl_join=_MDL_WAITS, **_MYSQL8
    )
)
MYSQL_SESSIONS_NO_PS = _SESSIONS.format(
    processlist=_MYSQL_IS_PROCESSLIST, mdl_columns=_NO_MDL_COLUMNS, mdl_join="", **_MYSQL8
)

# --- waits ------------------------------------------------------------------------------------------

# performance_schema waits are cumulative (the live backend subtracts an earlier sample). Row-lock waits
# never appear there (InnoDB row locks are not instrumented as waits), so they come from InnoDB's own
# counter plus the waits still in progress: completed + in progress makes the difference of two
# samples exactly the row-lock time between them.
_WAITS = """
SELECT @@performance_schema AS ps_on, 'performance_schema' AS source, w.*
FROM (SELECT 1 AS one) one LEFT JOIN (
    SELECT EVENT_NAME AS wait_type, COUNT_STAR AS waiting_tasks_count,
           SUM_TIMER_WAIT / 1000000000 AS wait_time_ms
    FROM performance_schema.events_waits_summary_global_by_event_name
    WHERE SUM_TIMER_WAIT > 0 AND EVENT_NAME <> 'idle'
    ORDER BY SUM_TIMER_WAIT DESC
    LIMIT 50
) w ON 1 = 1
UNION ALL
SELECT @@performance_schema, 'innodb', 'wait/lock/innodb/row_lock',
       (SELECT VARIABLE_VALUE FROM {status} WHERE UPPER(VARIABLE_NAME) = 'INNODB_ROW_LOCK_WAITS'),
       (SELECT VARIABLE_VALUE FROM {status} WHERE UPPER(VARIABLE_NAME) = 'INNODB_ROW_LOCK_TIME')
       + COALESCE((SELECT SUM(TIMESTAMPDIFF(MICROSECOND, trx_wait_started, NOW(6))) / 1000
                   FROM information_schema.INNODB_TRX WHERE trx_state = 'LOCK WAIT'), 0)
"""
MARIADB_WAITS = _WAITS.format(status="information_schema.GLOBAL_STATUS")
MYSQL8_WAITS = _WAITS.format(status="performance_schema.global_status")

# --- top queries: ranked without text, then the text of the top 50 --------------------------------

# Statements that read performance_schema / information_schema are monitoring (the copilot's own
# included), not the workload: they are left out. Timer columns are picoseconds.
# MariaDB (10.11 checked) does not digest statements run as server-side prepared statements
# (COM_STMT_EXECUTE: MariaDB Connector/ODBC sends every SELECT and every statement with parameters
# that way; so do JDBC with useServerPrepStmts and PDO without emulation): such a workload is missing
# here. MySQL 8 digests them.
TOP_QUERIES = _ps_wrapped("""
    SELECT t.query_hash, t.execution_count, t.total_elapsed_ms, t.avg_elapsed_ms, t.last_seen_epoch,
           MIN(x.DIGEST_TEXT) AS sql_text
    FROM (SELECT DIGEST AS query_hash, SUM(COUNT_STAR) AS execution_count,
                 SUM(SUM_TIMER_WAIT) / 1000000000 AS total_elapsed_ms,
                 SUM(SUM_TIMER_WAIT) / SUM(COUNT_STAR) / 1000000000 AS avg_elapsed_ms,
                 UNIX_TIMESTAMP(MAX(LAST_SEEN)) AS last_seen_epoch
          FROM performance_schema.events_statements_summary_by_digest
          WHERE DIGEST IS NOT NULL AND COUNT_STAR > 0
            AND DIGEST_TEXT NOT LIKE '%performance_schema%' AND DIGEST_TEXT NOT LIKE '%information_schema%'
          GROUP BY DIGEST
          ORDER BY SUM(SUM_TIMER_WAIT) DESC
          LIMIT 50) t
    JOIN performance_schema.events_statements_summary_by_digest x ON x.DIGEST = t.query_hash
    GROUP BY t.query_hash, t.execution_count, t.total_elapsed_ms, t.avg_elapsed_ms, t.last_seen_epoch
    ORDER BY t.total_elapsed_ms DESC
""")

# --- files ------------------------------------------------------------------------------------------

# InnoDB tablespaces per schema (the system tablespace as `innodb_system`), read with PROCESS only:
# information_schema.TABLES would list only tables the login has privileges on. A tablespace grows on
# demand, so its size is all used; the system tablespace's maximum is in innodb_data_file_path.
_TABLESPACES = """
SELECT g.db AS database_name,
       CASE WHEN g.n = 1 THEN g.f ELSE CONCAT('./', g.db, '/*.ibd') END AS file_name,
       'data' AS type, g.size / 1048576 AS size_mb, g.size / 1048576 AS used_mb,
       NULL AS max_size_mb, NULL AS volume_free_mb, @@innodb_data_file_path AS data_file_path
FROM (SELECT SUBSTRING_INDEX(NAME, '/', 1) AS db, COUNT(*) AS n, MIN({file}) AS f, SUM(FILE_SIZE) AS size
      FROM information_schema.{view}
      GROUP BY SUBSTRING_INDEX(NAME, '/', 1)) g
"""

# MariaDB: the redo log is full, for InnoDB, when the checkpoint age reaches Innodb_checkpoint_max_age
# (about 80% of the log file): then it stalls writes for furious flushing. So that is the capacity.
_MARIADB_REDO = """
SELECT 'all databases', 'ib_logfile0 (checkpoint age)', 'log', m.VARIABLE_VALUE / 1048576,
       a.VARIABLE_VALUE / 1048576, m.VARIABLE_VALUE / 1048576, NULL, NULL
FROM information_schema.GLOBAL_STATUS a
JOIN information_schema.GLOBAL_STATUS m ON m.VARIABLE_NAME = 'INNODB_CHECKPOINT_MAX_AGE'
WHERE a.VARIABLE_NAME = 'INNODB_CHECKPOINT_AGE'
"""
# MySQL 8.0.30+: the redo capacity and its logical size (what is not yet checkpointed)
_MYSQL8_REDO = """
SELECT 'all databases', '#innodb_redo', 'log', @@innodb_redo_log_capacity / 1048576,
       (SELECT VARIABLE_VALUE FROM performance_schema.global_status
        WHERE VARIABLE_NAME = 'Innodb_redo_log_logical_size') / 1048576,
       @@innodb_redo_log_capacity / 1048576, NULL, NULL
"""
_MYSQL57_REDO = """
SELECT 'all databases', 'ib_logfile*', 'log', @@innodb_log_file_size * @@innodb_log_files_in_group / 1048576,
       NULL, @@innodb_log_file_size * @@innodb_log_files_in_group / 1048576, NULL, NULL
"""
_VISIBLE_TABLES = """
SELECT TABLE_SCHEMA AS database_name, CONCAT(TABLE_SCHEMA, ' tables') AS file_name, 'data' AS type,
       SUM(COALESCE(DATA_LENGTH, 0) + COALESCE(INDEX_LENGTH, 0)) / 1048576 AS size_mb,
       SUM(COALESCE(DATA_LENGTH, 0) + COALESCE(INDEX_LENGTH, 0)) / 1048576 AS used_mb,
       NULL AS max_size_mb, NULL AS volume_free_mb, NULL AS data_file_path
FROM information_schema.TABLES
WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA NOT IN ('information_schema', 'performance_schema', 'sys')
GROUP BY TABLE_SCHEMA
"""
MARIADB_TABLESPACES = _TABLESPACES.format(view="INNODB_SYS_TABLESPACES", file="FILENAME")
MYSQL8_TABLESPACES = _TABLESPACES.format(view="INNODB_TABLESPACES", file="NAME")

# --- server -------------------------------------------------------------------------------------------

_SERVER = """
SELECT UTC_TIMESTAMP(6) AS sampled_at, @@version AS version,
       UNIX_TIMESTAMP() - MAX(CASE WHEN UPPER(s.VARIABLE_NAME) = 'UPTIME' THEN s.VARIABLE_VALUE END)
           AS started_epoch,
       MAX(CASE WHEN UPPER(s.VARIABLE_NAME) = 'THREADS_CONNECTED' THEN s.VARIABLE_VALUE END) AS connections,
       @@max_connections AS max_connections,
       MAX(CASE WHEN UPPER(s.VARIABLE_NAME) = 'THREADS_RUNNING' THEN s.VARIABLE_VALUE END)
           AS active_connections,
       MAX(CASE WHEN UPPER(s.VARIABLE_NAME) = 'MAX_USED_CONNECTIONS' THEN s.VARIABLE_VALUE END)
           AS max_used_connections,
       MAX(CASE WHEN UPPER(s.VARIABLE_NAME) = 'CONNECTION_ERRORS_MAX_CONNECTIONS' THEN s.VARIABLE_VALUE END)
           AS refused_connections,
       COALESCE(MAX(CASE WHEN UPPER(s.VARIABLE_NAME) = 'INNODB_DEADLOCKS' THEN s.VARIABLE_VALUE END),
                (SELECT m.COUNT FROM information_schema.INNODB_METRICS m WHERE m.NAME = 'lock_deadlocks'))
           AS deadlocks,
       MAX(CASE WHEN UPPER(s.VARIABLE_NAME) = 'CREATED_TMP_DISK_TABLES' THEN s.VARIABLE_VALUE END)
           AS temp_spills,
       MAX(CASE WHEN UPPER(s.VARIABLE_NAME) = 'SORT_MERGE_PASSES' THEN s.VARIABLE_VALUE END) AS sort_spills,
       COALESCE(MAX(CASE WHEN UPPER(s.VARIABLE_NAME) = 'INNODB_HISTORY_LIST_LENGTH'
                         THEN s.VARIABLE_VALUE END),
                (SELECT m.COUNT FROM information_schema.INNODB_METRICS m
                 WHERE m.NAME = 'trx_rseg_history_len'))
           AS history_list_length,
       (SELECT COUNT(*) FROM information_schema.INNODB_TRX t WHERE t.trx_mysql_thread_id = 0)
           AS prepared_transactions
FROM {status} s
"""

MARIADB_SERVER = _SERVER.format(status="information_schema.GLOBAL_STATUS")
MYSQL8_SERVER = _SERVER.format(status="performance_schema.global_status")

# binary logs (what they hold; binlog_expire_logs_seconds / expire_logs_days say whether they expire)
SHOW_BINARY_LOGS = "SHOW BINARY LOGS"
_BINLOG_OFF = """
SELECT 'binlog' AS log, NULL AS database_name, 'binary logs' AS holder,
       IF(@@log_bin = 0, 'binary logging is off', NULL) AS reason, NULL AS size_mb, NULL AS used_mb,
       NULL AS limit_mb, NULL AS active, NULL AS since,
       IF(@@log_bin = 0, NULL, 'binary logs not listed: the login needs BINLOG MONITOR (MariaDB) or '
          'REPLICATION CLIENT (MySQL)') AS detail
"""

_PROCESS = "PROCESS ON *.*"
_PS = "SELECT ON performance_schema.* (and performance_schema=ON)"
_BINLOG = "BINLOG MONITOR (MariaDB 10.5+) or REPLICATION CLIENT (MySQL)"
_REPLICA = "SLAVE MONITOR (MariaDB 10.5+) or REPLICATION CLIENT (MySQL)"

PACK = QueryPack(
    engine="mysql",
    queries=(
        PackQuery("sessions", MARIADB_SESSIONS, rows.session_rows, requires=f"{_PROCESS}, {_PS}"),
        PackQuery("sessions", MYSQL8_SESSIONS, rows.session_rows, requires=f"{_PROCESS}, {_PS}"),
        PackQuery("sessions", MYSQL_SESSIONS_NO_PS, rows.session_rows, requires=_PROCESS),
        PackQuery("waits", MARIADB_WAITS, rows.wait_rows, requires=f"{_PROCESS}, {_PS}", optional=True),
        PackQuery("waits", MYSQL8_WAITS, rows.wait_rows, requires=f"{_PROCESS}, {_PS}", optional=True),
        PackQuery("top_queries", TOP_QUERIES, rows.top_query_rows, requires=_PS, optional=True),
        PackQuery(
            "files", MARIADB_TABLESPACES + "UNION ALL" + _MARIADB_REDO, rows.file_rows, requires=_PROCESS
        ),
        PackQuery(
            "files", MYSQL8_TABLESPACES + "UNION ALL" + _MYSQL8_REDO, rows.file_rows, requires=_PROCESS
        ),
        PackQuery(
            "files", MYSQL8_TABLESPACES + "UNION ALL" + _MYSQL57_REDO, rows.file_rows, requires=_PROCESS
        ),
        # last resort: only the tables the login has privileges on are visible
        PackQuery("files", _VISIBLE_TABLES, rows.file_rows, requires="any privilege on the tables"),
        PackQuery(
            "server",
            _SERVER.format(status="information_schema.GLOBAL_STATUS"),
            rows.server_rows,
            requires=_PROCESS,
        ),
        PackQuery(
            "server",
            _SERVER.format(status="performance_schema.global_status"),
            rows.server_rows,
            requires=f"{_PROCESS}, {_PS}",
        ),
        PackQuery("log_reuse", SHOW_BINARY_LOGS, rows.binlog_rows, requires=_BINLOG, variant=True),
        PackQuery("log_reuse", _BINLOG_OFF, requires=_BINLOG),
        PackQuery("replicas", "SHOW ALL SLAVES STATUS", rows.replica_rows, requires=_REPLICA, variant=True),
        PackQuery("replicas", "SHOW REPLICA STATUS", rows.replica_rows, requires=_REPLICA),  # MySQL 8.0.22+
        PackQuery("replicas", "SHOW SLAVE STATUS", rows.replica_rows, requires=_REPLICA),
        PackQuery(
            "deadlocks", "SHOW ENGINE INNODB STATUS", rows.deadlock_rows, requires=_PROCESS, optional=True
        ),
    ),
    session_setup=(
        "SET SESSION TRANSACTION READ ONLY",
        "SET SESSION max_statement_time = {timeout_s}",  # MariaDB (seconds); unknown to MySQL: skipped
        "SET SESSION max_execution_time = {timeout_ms}",  # MySQL (ms, SELECT only); unknown to MariaDB
        "SET SESSION lock_wait_timeout = {timeout_s_int}",  # metadata locks
    ),
    # doctor: a non-empty `missing_privileges` names what is missing though every query runs
    probe=(
        "SELECT IF(@@performance_schema = 1, '',"
        " 'performance_schema=ON (server setting, needs a restart)') AS missing_privileges"
    ),
)
