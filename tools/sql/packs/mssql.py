"""The SQL Server query pack: read-only DMV queries and their mapping into SPEC v1 datasets.

Every statement is a single SELECT over dynamic management views and catalog views: no locks
taken on user data (DMVs are not locked, so no NOLOCK hints), no temp tables, no dynamic SQL,
nothing that writes. The login needs VIEW SERVER STATE (VIEW SERVER PERFORMANCE STATE on SQL
Server 2022+) and VIEW ANY DEFINITION for sys.master_files; Query Store is read in the connected
database with VIEW DATABASE STATE.

Units: sys.dm_exec_requests and sys.dm_exec_sessions report milliseconds; sys.dm_exec_query_stats
and Query Store report microseconds (divided by 1000 here); sizes are 8 KB pages (divided by 128
for MB). DMV timestamps are the server's local time; they are turned into UTC with the offset
between SYSDATETIME() and SYSUTCDATETIME() read in the same statement.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from tools.sql.packs.base import PackQuery, QueryPack

PAGES_PER_MB = 128  # 8 KB pages
US_PER_MS = 1000.0
UNLIMITED = -1  # sys.master_files.max_size: grow until the disk is full
MAX_TEXT_CHARS = 4000  # statement text kept per row (the analyzers redact and shorten it further)
TOP_STATEMENTS = 50

Rows = list[dict[str, Any]]

# The statement text of a request (or, for a session with no request, of its last batch). The
# offsets are byte positions in the nvarchar text; -1 means "to the end of the batch".
_STATEMENT = """SUBSTRING(t.text, COALESCE({o}.statement_start_offset, 0) / 2 + 1,
           CASE WHEN COALESCE({o}.statement_end_offset, -1) = -1 THEN 1073741823
                ELSE ({o}.statement_end_offset - COALESCE({o}.statement_start_offset, 0)) / 2 + 1 END)"""

# Sessions doing something (a request) or holding something (an open transaction): the idle
# pooled connections, usually most of them, cannot block anyone and are left out. Elapsed time is
# the request's, or for a sleeping session the age of its oldest open transaction.
SESSIONS_SQL = f"""
SELECT s.session_id,
       COALESCE(r.status, s.status) AS status,
       s.login_name, s.host_name, s.program_name,
       DB_NAME(COALESCE(r.database_id, s.database_id)) AS database_name,
       r.command, r.wait_type, r.wait_time, r.wait_resource, r.blocking_session_id,
       COALESCE(r.cpu_time, s.cpu_time) AS cpu_time,
       COALESCE(r.logical_reads, s.logical_reads) AS logical_reads,
       r.total_elapsed_time,
       s.open_transaction_count,
       tx.transaction_begin_time,
       s.last_request_start_time,
       {_STATEMENT.format(o="r")} AS sql_text,
       SYSDATETIME() AS sampled_at
FROM sys.dm_exec_sessions AS s
LEFT JOIN sys.dm_exec_requests AS r ON r.session_id = s.session_id
LEFT JOIN sys.dm_exec_connections AS c ON c.session_id = s.session_id AND c.parent_connection_id IS NULL
LEFT JOIN (SELECT st.session_id, MIN(tat.transaction_begin_time) AS transaction_begin_time
           FROM sys.dm_tran_session_transactions AS st
           JOIN sys.dm_tran_active_transactions AS tat ON tat.transaction_id = st.transaction_id
           GROUP BY st.session_id) AS tx ON tx.session_id = s.session_id
OUTER APPLY sys.dm_exec_sql_text(COALESCE(r.sql_handle, c.most_recent_sql_handle)) AS t
WHERE s.is_user_process = 1
  AND s.session_id <> @@SPID
  AND (r.session_id IS NOT NULL OR s.open_transaction_count > 0)
"""

# Cumulative since the last restart (or DBCC SQLPERF clear). Benign idle waits are kept: the
# analyzer (tools.sql.waits) is the one place that knows which they are.
WAITS_SQL = """
SELECT wait_type, waiting_tasks_count, wait_time_ms, signal_wait_time_ms
FROM sys.dm_os_wait_stats
WHERE wait_time_ms > 0
ORDER BY wait_time_ms DESC
"""

# One row per query_hash (a query may have several cached plans) over the plans that ran in the
# last day, with the plan cache's totals since each was cached; the text is the statement of the
# plan with the most elapsed time.
_PER_PLAN = """per_plan AS (
    SELECT qs.query_hash, qs.sql_handle, qs.statement_start_offset, qs.statement_end_offset,
           SUM(qs.execution_count) OVER (PARTITION BY qs.query_hash) AS execution_count,
           SUM(qs.total_worker_time) OVER (PARTITION BY qs.query_hash) AS total_worker_time,
           SUM(qs.total_elapsed_time) OVER (PARTITION BY qs.query_hash) AS total_elapsed_time,
           SUM(qs.total_logical_reads) OVER (PARTITION BY qs.query_hash) AS total_logical_reads,
           MAX(qs.last_execution_time) OVER (PARTITION BY qs.query_hash) AS last_execution_time,
           ROW_NUMBER() OVER (PARTITION BY qs.query_hash ORDER BY qs.total_elapsed_time DESC) AS plan_rank
    FROM sys.dm_exec_query_stats AS qs
    WHERE qs.last_execution_time >= DATEADD(HOUR, -24, SYSDATETIME())
)"""

# The baseline: each query's execution-weighted average duration in the connected database's
# Query Store over the week before the last day (the last day is what is being compared), regular
# executions only (execution_type 0: not aborted, not failed). Matched to the plan cache by
# query_hash; queries of other databases, or with Query Store off, get no baseline.
_BASELINE = """baseline AS (
    SELECT qq.query_hash,
           SUM(rs.avg_duration * rs.count_executions) AS baseline_duration,
           SUM(rs.count_executions) AS baseline_executions
    FROM sys.query_store_runtime_stats AS rs
    JOIN sys.query_store_runtime_stats_interval AS i
         ON i.runtime_stats_interval_id = rs.runtime_stats_interval_id
    JOIN sys.query_store_plan AS p ON p.plan_id = rs.plan_id
    JOIN sys.query_store_query AS qq ON qq.query_id = p.query_id
    WHERE i.start_time >= DATEADD(DAY, -8, SYSUTCDATETIME())
      AND i.end_time <= DATEADD(DAY, -1, SYSUTCDATETIME())
      AND rs.execution_type = 0
    GROUP BY qq.query_hash
)"""

_TOP = f"""
SELECT TOP ({TOP_STATEMENTS})
       q.query_hash, q.execution_count, q.total_worker_time, q.total_elapsed_time,
       q.total_logical_reads, q.last_execution_time,{{baseline_columns}}
       {_STATEMENT.format(o="q")} AS sql_text,
       SYSDATETIME() AS sampled_at, SYSUTCDATETIME() AS sampled_at_utc
FROM per_plan AS q{{baseline_join}}
OUTER APPLY sys.dm_exec_sql_text(q.sql_handle) AS t
WHERE q.plan_rank = 1
ORDER BY q.total_elapsed_time DESC
"""

# With the Query Store baseline (SQL Server 2016+); without it where Query Store cannot be read.
TOP_QUERIES_WITH_BASELINE_SQL = f"WITH {_PER_PLAN},\n{_BASELINE}" + _TOP.format(
    baseline_columns="\n       b.baseline_duration, b.baseline_executions,",
    baseline_join="\nLEFT JOIN baseline AS b ON b.query_hash = q.query_hash",
)
TOP_QUERIES_SQL = f"WITH {_PER_PLAN}" + _TOP.format(baseline_columns="", baseline_join="")

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


# --- row mappers ----------------------------------------------------------------------------------


def _num(value: Any) -> float | None:
    return None if value is None else float(value)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text[:MAX_TEXT_CHARS] or None


def _ms_between(start: Any, end: Any) -> float | None:
    if not isinstance(start, datetime) or not isinstance(end, datetime):
        return None
    return max(0.0, (end - start).total_seconds() * 1000.0)


def query_hash_text(value: Any) -> str:
    """binary(8) query_hash as SQL Server prints it: 0x8A3F1C2D4E5B6A70 (from bytes or hex text)."""
    if isinstance(value, bytes | bytearray | memoryview):
        return "0x" + bytes(value).hex().upper()
    text = str(value).strip()
    digits = text[2:] if text.lower().startswith("0x") else text
    return "0x" + digits.upper() if digits and all(c in "0123456789abcdefABCDEF" for c in digits) else text


def session_rows(rows: Rows) -> Rows:
    """sys.dm_exec_sessions + requests -> SPEC `sessions`; one row per session (MARS may give more)."""
    out: dict[int, dict[str, Any]] = {}
    for r in rows:
        sid = int(r["session_id"])
        blocker = _int(r.get("blocking_session_id"))
        # negative blockers are not sessions (-2 orphaned DTC, -3 deferred recovery, -4 latch owner
        # unknown): not a chain to walk
        blocker = None if blocker is None else max(blocker, 0)
        elapsed = _num(r.get("total_elapsed_time"))
        if elapsed is None:  # no request: how long the session has held its transaction (or been idle)
            elapsed = _ms_between(
                r.get("transaction_begin_time") or r.get("last_request_start_time"), r.get("sampled_at")
            )
        row: dict[str, Any] = {
            "session_id": sid,
            "status": _text(r.get("status")),
            "login_name": _text(r.get("login_name")),
            "host_name": _text(r.get("host_name")),
            "program_name": _text(r.get("program_name")),
            "database_name": _text(r.get("database_name")),
            "command": _text(r.get("command")),
            "wait_type": _text(r.get("wait_type")),
            "wait_time_ms": _num(r.get("wait_time")),
            "wait_resource": _text(r.get("wait_resource")),
            "blocking_session_id": blocker,
            "cpu_time_ms": _num(r.get("cpu_time")),
            "logical_reads": _num(r.get("logical_reads")),
            "elapsed_ms": elapsed,
            "open_transaction_count": _int(r.get("open_transaction_count")),
            "sql_text": _text(r.get("sql_text")),
        }
        kept = out.get(sid)
        if kept is None or (row["blocking_session_id"] or 0) > (kept["blocking_session_id"] or 0):
            out[sid] = row
    return list(out.values())


def wait_rows(rows: Rows) -> Rows:
    """sys.dm_os_wait_stats -> SPEC `waits` (already milliseconds)."""
    return [
        {
            "wait_type": str(r["wait_type"]).strip(),
            "waiting_tasks_count": _num(r.get("waiting_tasks_count")),
            "wait_time_ms": float(r["wait_time_ms"]),
            "signal_wait_time_ms": _num(r.get("signal_wait_time_ms")),
        }
        for r in rows
    ]


def _to_utc(local: Any, sampled_at: Any, sampled_at_utc: Any) -> datetime | None:
    """A server-local DMV timestamp in UTC, using the server's own offset (rounded to a minute)."""
    if not isinstance(local, datetime):
        return None
    offset = timedelta(0)
    if isinstance(sampled_at, datetime) and isinstance(sampled_at_utc, datetime):
        offset = timedelta(minutes=round((sampled_at_utc - sampled_at).total_seconds() / 60))
    return (local + offset).replace(tzinfo=UTC)


def top_query_rows(rows: Rows) -> Rows:
    """sys.dm_exec_query_stats (+ Query Store baseline), microseconds -> SPEC `top_queries` in ms."""
    out = []
    for r in rows:
        runs = _num(r.get("execution_count"))
        elapsed_ms = _num(r.get("total_elapsed_time"))
        elapsed_ms = None if elapsed_ms is None else elapsed_ms / US_PER_MS
        cpu_ms = _num(r.get("total_worker_time"))
        base_us, base_runs = _num(r.get("baseline_duration")), _num(r.get("baseline_executions"))
        out.append(
            {
                "query_hash": query_hash_text(r["query_hash"]),
                "execution_count": runs,
                "total_cpu_ms": None if cpu_ms is None else cpu_ms / US_PER_MS,
                "total_elapsed_ms": elapsed_ms,
                "total_logical_reads": _num(r.get("total_logical_reads")),
                "avg_elapsed_ms": elapsed_ms / runs if elapsed_ms is not None and runs else None,
                "baseline_avg_elapsed_ms": base_us / base_runs / US_PER_MS
                if base_us is not None and base_runs
                else None,
                "last_execution_time": _to_utc(
                    r.get("last_execution_time"), r.get("sampled_at"), r.get("sampled_at_utc")
                ),
                "sql_text": _text(r.get("sql_text")),
            }
        )
    return out


def _max_size_mb(max_size: int | None, growth: int | None, size_mb: float) -> float | None:
    if growth == 0:  # autogrowth off: the file is as big as it gets
        return size_mb
    if max_size is None or max_size == UNLIMITED:
        return None
    return max_size / PAGES_PER_MB  # a log's 268435456 pages is a real 2 TB cap


def file_rows(rows: Rows) -> Rows:
    """sys.master_files (+ space used, volume free) -> SPEC `files`.

    The log-used counter is per database: a database with several log files has it shared among
    them by size."""
    log_pages: dict[str, float] = defaultdict(float)
    for r in rows:
        if str(r.get("type_desc", "")).upper() == "LOG":
            log_pages[str(r["database_name"])] += float(r.get("size") or 0)
    out = []
    for r in rows:
        kind = "log" if str(r.get("type_desc", "")).upper() == "LOG" else "data"
        db = str(r["database_name"])
        pages = float(r.get("size") or 0)
        size_mb = pages / PAGES_PER_MB
        used_pages = _num(r.get("space_used"))
        if used_pages is None:
            used_pages = _num(r.get("tempdb_space_used"))
        used_mb = None if used_pages is None else used_pages / PAGES_PER_MB
        log_kb = _num(r.get("log_used_kb"))
        if used_mb is None and kind == "log" and log_kb is not None and log_pages[db] > 0:
            used_mb = log_kb / 1024.0 * (pages / log_pages[db])
        free = _num(r.get("volume_available_bytes"))
        out.append(
            {
                "database_name": db,
                "file_name": str(r["file_name"]),
                "type": kind,
                "size_mb": size_mb,
                "used_mb": used_mb,
                "max_size_mb": _max_size_mb(_int(r.get("max_size")), _int(r.get("growth")), size_mb),
                "volume_free_mb": None if free is None else free / (1024.0 * 1024.0),
            }
        )
    return out


_STATE = "VIEW SERVER STATE (VIEW SERVER PERFORMANCE STATE on SQL Server 2022+)"

# Queries of one dataset are alternatives, best first (tools.sql.live): the first the server answers
# gives the rows; the next is tried when an object or a permission is missing.
PACK = QueryPack(
    engine="mssql",
    queries=(
        PackQuery("sessions", SESSIONS_SQL, session_rows, requires=_STATE),
        PackQuery("waits", WAITS_SQL, wait_rows, requires=_STATE),
        PackQuery(
            "top_queries",
            TOP_QUERIES_WITH_BASELINE_SQL,
            top_query_rows,
            requires=f"{_STATE}, and Query Store (SQL Server 2016+) with VIEW DATABASE STATE in the database",
        ),
        PackQuery("top_queries", TOP_QUERIES_SQL, top_query_rows, requires=_STATE),
        PackQuery("files", FILES_SQL, file_rows, requires=f"{_STATE} and VIEW ANY DEFINITION"),
    ),
    # short and harmless: a catalog view blocked by DDL fails fast (error 1222) instead of waiting
    # out the query timeout, and the copilot's session is the one chosen as a deadlock victim
    session_setup=("SET LOCK_TIMEOUT 1000", "SET DEADLOCK_PRIORITY LOW"),
    probe="SELECT 1",
)
