"""The MySQL / MariaDB query pack: processlist with InnoDB lock waits, performance_schema waits and
statement digests, InnoDB tablespace and redo log sizes as SPEC v1 rows.

Queries of one dataset are alternatives, best first (see tools.sql.live): MariaDB (10.x/11.x:
information_schema.INNODB_LOCK_WAITS, INNODB_SYS_TABLESPACES) before MySQL 8 (performance_schema
.data_lock_waits, INNODB_TABLESPACES); the first the server can answer gives the rows.
Needs (docs/readonly-logins.md): PROCESS, SELECT on performance_schema.*, and performance_schema=ON
for waits and top queries (without it those datasets are empty, with a note).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from tools.sources import SourceError
from tools.sql.packs.base import PackQuery, QueryPack

# --- sessions ---------------------------------------------------------------------------------

_SESSIONS = """
SELECT p.ID AS session_id, p.COMMAND AS command, p.STATE AS state, p.USER AS login_name, p.HOST AS host,
       p.DB AS database_name, {time_ms} AS time_ms, p.INFO AS sql_text,
       t.trx_state AS trx_state,
       TIMESTAMPDIFF(MICROSECOND, t.trx_started, NOW(6)) / 1000 AS trx_ms,
       TIMESTAMPDIFF(MICROSECOND, t.trx_wait_started, NOW(6)) / 1000 AS lock_wait_ms,
       bw.blocker AS blocking_session_id,
       {lock_type} AS lock_type,
       {lock_resource} AS wait_resource
FROM information_schema.PROCESSLIST p
LEFT JOIN information_schema.INNODB_TRX t ON t.trx_mysql_thread_id = p.ID
LEFT JOIN ({lock_waits}) bw ON bw.requesting_trx_id = t.trx_id
LEFT JOIN {locks} l ON l.{lock_id} = t.trx_requested_lock_id
WHERE p.ID <> CONNECTION_ID() AND p.COMMAND NOT IN ('Daemon', 'Binlog Dump')
ORDER BY (t.trx_state = 'LOCK WAIT') DESC, t.trx_started IS NULL, t.trx_started, p.ID
LIMIT 2000
"""

# the first blocker (lowest thread id) of each waiting transaction
_MARIADB_LOCK_WAITS = """
SELECT w.requesting_trx_id, MIN(b.trx_mysql_thread_id) AS blocker
FROM information_schema.INNODB_LOCK_WAITS w
JOIN information_schema.INNODB_TRX b ON b.trx_id = w.blocking_trx_id
GROUP BY w.requesting_trx_id
"""
_MYSQL8_LOCK_WAITS = """
SELECT w.REQUESTING_ENGINE_TRANSACTION_ID AS requesting_trx_id, MIN(b.trx_mysql_thread_id) AS blocker
FROM performance_schema.data_lock_waits w
JOIN information_schema.INNODB_TRX b ON b.trx_id = w.BLOCKING_ENGINE_TRANSACTION_ID
GROUP BY w.REQUESTING_ENGINE_TRANSACTION_ID
"""

MARIADB_SESSIONS = _SESSIONS.format(
    time_ms="p.TIME_MS",
    lock_waits=_MARIADB_LOCK_WAITS,
    locks="information_schema.INNODB_LOCKS",
    lock_id="lock_id",
    lock_type="l.lock_type",
    lock_resource=(
        "CONCAT(l.lock_mode, ' lock on ', l.lock_table, COALESCE(CONCAT(' index ', l.lock_index), ''))"
    ),
)
MYSQL8_SESSIONS = _SESSIONS.format(
    time_ms="p.TIME * 1000",
    lock_waits=_MYSQL8_LOCK_WAITS,
    locks="performance_schema.data_locks",
    lock_id="ENGINE_LOCK_ID",
    lock_type="l.LOCK_TYPE",
    lock_resource=(
        "CONCAT(l.LOCK_MODE, ' lock on `', l.OBJECT_SCHEMA, '`.`', l.OBJECT_NAME, '`',"
        " COALESCE(CONCAT(' index ', l.INDEX_NAME), ''))"
    ),
)


def _float(v: Any) -> float | None:
    return None if v is None else float(v)


def _client_host(host: str | None) -> str | None:
    """'10.1.2.3:52144' -> '10.1.2.3' (the port only tells connections of one client apart)."""
    if host and re.fullmatch(r".+:\d+", host):
        return host.rsplit(":", 1)[0]
    return host


def session_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Processlist + InnoDB transaction rows -> SessionRow fields."""
    out = []
    for r in rows:
        command, state = r["command"] or "", r["state"] or ""
        in_trx, lock_wait = r["trx_state"] is not None, r["trx_state"] == "LOCK WAIT"
        sleeping = command == "Sleep"
        if lock_wait:
            kind = "row" if (r["lock_type"] or "RECORD").upper() == "RECORD" else "table"
            wait_type, wait_ms = f"innodb {kind} lock", _float(r["lock_wait_ms"])
        elif state.startswith("Waiting for"):  # e.g. 'Waiting for table metadata lock'
            wait_type, wait_ms = state, _float(r["time_ms"])
        else:
            wait_type, wait_ms = None, None
        out.append(
            {
                "session_id": int(r["session_id"]),
                "status": "sleeping" if sleeping else "lock wait" if lock_wait else "running",
                "login_name": r["login_name"],
                "host_name": _client_host(r["host"]),
                "database_name": r["database_name"],
                "command": command or None,
                "wait_type": wait_type,
                "wait_time_ms": wait_ms,
                "wait_resource": r["wait_resource"] if lock_wait else None,
                "blocking_session_id": r["blocking_session_id"],
                # a sleeping session's age is its transaction's; otherwise its current command's
                "elapsed_ms": _float(r["trx_ms"] if sleeping and in_trx else r["time_ms"]),
                "open_transaction_count": 1 if in_trx else 0,
                "sql_text": r["sql_text"],
            }
        )
    return out


# --- waits and top queries (performance_schema) ------------------------------------------------

# `(SELECT 1) one LEFT JOIN (...)` always yields a row carrying @@performance_schema, so an empty
# result can be told apart from performance_schema being off.
WAITS = """
SELECT @@performance_schema AS ps_on, w.* FROM (SELECT 1 AS one) one LEFT JOIN (
    SELECT EVENT_NAME AS wait_type, COUNT_STAR AS waiting_tasks_count,
           SUM_TIMER_WAIT / 1000000000 AS wait_time_ms
    FROM performance_schema.events_waits_summary_global_by_event_name
    WHERE SUM_TIMER_WAIT > 0 AND EVENT_NAME <> 'idle'
    ORDER BY SUM_TIMER_WAIT DESC
    LIMIT 50
) w ON 1 = 1
"""

# Statements that read performance_schema / information_schema are monitoring (the copilot's own
# included), not the workload: they are left out. Timer columns are picoseconds.
# MariaDB (10.11 checked) does not digest statements run as server-side prepared statements
# (COM_STMT_EXECUTE: MariaDB Connector/ODBC sends every SELECT and every statement with parameters
# that way; so do JDBC with useServerPrepStmts and PDO without emulation): such a workload is missing
# here. MySQL 8 digests them.
TOP_QUERIES = """
SELECT @@performance_schema AS ps_on, d.* FROM (SELECT 1 AS one) one LEFT JOIN (
    SELECT DIGEST AS query_hash, SUM(COUNT_STAR) AS execution_count,
           SUM(SUM_TIMER_WAIT) / 1000000000 AS total_elapsed_ms,
           SUM(SUM_TIMER_WAIT) / SUM(COUNT_STAR) / 1000000000 AS avg_elapsed_ms,
           UNIX_TIMESTAMP(MAX(LAST_SEEN)) AS last_seen_epoch,
           MIN(DIGEST_TEXT) AS sql_text
    FROM performance_schema.events_statements_summary_by_digest
    WHERE DIGEST IS NOT NULL AND COUNT_STAR > 0
      AND DIGEST_TEXT NOT LIKE '%performance_schema%' AND DIGEST_TEXT NOT LIKE '%information_schema%'
    GROUP BY DIGEST
    ORDER BY SUM(SUM_TIMER_WAIT) DESC
    LIMIT 50
) d ON 1 = 1
"""

_PS_OFF = "performance_schema is off (set performance_schema=ON in the server configuration and restart)"


def _performance_schema_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if rows and not int(rows[0]["ps_on"] or 0):
        raise SourceError(_PS_OFF)
    return [r for r in rows if r.get("wait_type") is not None or r.get("query_hash") is not None]


def wait_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "wait_type": r["wait_type"],
            "waiting_tasks_count": _float(r["waiting_tasks_count"]),
            "wait_time_ms": float(r["wait_time_ms"]),
        }
        for r in _performance_schema_rows(rows)
    ]


def top_query_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "query_hash": r["query_hash"],
            "execution_count": _float(r["execution_count"]),
            "total_elapsed_ms": _float(r["total_elapsed_ms"]),
            "avg_elapsed_ms": _float(r["avg_elapsed_ms"]),
            # baseline_avg_elapsed_ms: unknown, digests keep no history
            "last_execution_time": (
                datetime.fromtimestamp(float(r["last_seen_epoch"]), UTC) if r["last_seen_epoch"] else None
            ),
            "sql_text": r["sql_text"],
        }
        for r in _performance_schema_rows(rows)
    ]


# --- files ------------------------------------------------------------------------------------

# InnoDB tablespaces per schema (the system tablespace as `innodb_system`), read with PROCESS only:
# information_schema.TABLES would list only tables the login has privileges on. used_mb stays null:
# free space on the volume cannot be read over SQL.
_TABLESPACES = """
SELECT g.db AS database_name,
       CASE WHEN g.n = 1 THEN g.f ELSE CONCAT('./', g.db, '/*.ibd') END AS file_name,
       'data' AS type, g.size / 1048576 AS size_mb,
       NULL AS used_mb, NULL AS max_size_mb, NULL AS volume_free_mb
FROM (SELECT SUBSTRING_INDEX(NAME, '/', 1) AS db, COUNT(*) AS n, MIN({file}) AS f, SUM(FILE_SIZE) AS size
      FROM information_schema.{view}
      GROUP BY SUBSTRING_INDEX(NAME, '/', 1)) g
"""

# MariaDB: one redo log file of a fixed size; used = checkpoint age (redo not yet checkpointed). At ~90%
# of the file InnoDB stalls writes for furious flushing, so that is the "log nearly full" of InnoDB.
_MARIADB_REDO = """
SELECT 'all databases', 'ib_logfile0', 'log', @@innodb_log_file_size / 1048576,
       s.VARIABLE_VALUE / 1048576, @@innodb_log_file_size / 1048576, NULL
FROM information_schema.GLOBAL_STATUS s
WHERE s.VARIABLE_NAME = 'INNODB_CHECKPOINT_AGE'
"""
_MYSQL8_REDO = """
SELECT 'all databases', '#innodb_redo', 'log', @@innodb_redo_log_capacity / 1048576, NULL,
       @@innodb_redo_log_capacity / 1048576, NULL
"""
_MYSQL57_REDO = """
SELECT 'all databases', 'ib_logfile*', 'log', @@innodb_log_file_size * @@innodb_log_files_in_group / 1048576,
       NULL, @@innodb_log_file_size * @@innodb_log_files_in_group / 1048576, NULL
"""
_VISIBLE_TABLES = """
SELECT TABLE_SCHEMA AS database_name, CONCAT(TABLE_SCHEMA, ' tables') AS file_name, 'data' AS type,
       SUM(COALESCE(DATA_LENGTH, 0) + COALESCE(INDEX_LENGTH, 0)) / 1048576 AS size_mb,
       NULL AS used_mb, NULL AS max_size_mb, NULL AS volume_free_mb
FROM information_schema.TABLES
WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA NOT IN ('information_schema', 'performance_schema', 'sys')
GROUP BY TABLE_SCHEMA
"""
MARIADB_TABLESPACES = _TABLESPACES.format(view="INNODB_SYS_TABLESPACES", file="FILENAME")
MYSQL8_TABLESPACES = _TABLESPACES.format(view="INNODB_TABLESPACES", file="NAME")


def file_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Column names of the UNION's first SELECT; sizes as floats."""
    out = []
    for r in rows:
        row = dict(r)
        for k in ("size_mb", "used_mb", "max_size_mb", "volume_free_mb"):
            row[k] = _float(row[k])
        out.append(row)
    return out


_PROCESS = "PROCESS ON *.*"
_PS = "SELECT ON performance_schema.* (and performance_schema=ON)"

PACK = QueryPack(
    engine="mysql",
    queries=(
        PackQuery("sessions", MARIADB_SESSIONS, to_rows=session_rows, requires=_PROCESS),
        PackQuery("sessions", MYSQL8_SESSIONS, to_rows=session_rows, requires=f"{_PROCESS}, {_PS}"),
        PackQuery("waits", WAITS, to_rows=wait_rows, requires=_PS, optional=True),
        PackQuery("top_queries", TOP_QUERIES, to_rows=top_query_rows, requires=_PS, optional=True),
        PackQuery(
            "files", MARIADB_TABLESPACES + "UNION ALL" + _MARIADB_REDO, to_rows=file_rows, requires=_PROCESS
        ),
        PackQuery(
            "files", MYSQL8_TABLESPACES + "UNION ALL" + _MYSQL8_REDO, to_rows=file_rows, requires=_PROCESS
        ),
        PackQuery(
            "files", MYSQL8_TABLESPACES + "UNION ALL" + _MYSQL57_REDO, to_rows=file_rows, requires=_PROCESS
        ),
        # last resort: only the tables the login has privileges on are visible
        PackQuery("files", _VISIBLE_TABLES, to_rows=file_rows, requires="any privilege on the tables"),
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
