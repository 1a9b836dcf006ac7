"""Row mappers of the SQL Server query pack: DMV rows (lower-case column names) -> SPEC rows."""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from tools.sources import SourceError
from tools.sql.packs.deadlock_graphs import mssql_deadlocks

PAGES_PER_MB = 128  # 8 KB pages
US_PER_MS = 1000.0
UNLIMITED = -1  # sys.master_files.max_size: grow until the disk is full
MAX_TEXT_CHARS = 4000  # statement text kept per row (the analyzers redact and shorten it further)
PLATFORMS = {5: "Azure SQL Database", 8: "Azure SQL Managed Instance"}
# blocking_session_id values that are not sessions (sys.dm_exec_requests, sys.dm_os_waiting_tasks)
SPECIAL_BLOCKERS = {
    -2: "orphaned_distributed_transaction",
    -3: "deferred_recovery_transaction",
    -4: "latch_owner_unknown",
    -5: "latch_owner_unknown",
}

Rows = list[dict[str, Any]]


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


def _offset(sampled_at: Any, sampled_at_utc: Any) -> timedelta:
    """The server's UTC offset, rounded to a minute, from two clocks read in one statement."""
    if isinstance(sampled_at, datetime) and isinstance(sampled_at_utc, datetime):
        return timedelta(minutes=round((sampled_at_utc - sampled_at).total_seconds() / 60))
    return timedelta(0)


def _to_utc(local: Any, sampled_at: Any, sampled_at_utc: Any) -> datetime | None:
    """A server-local DMV timestamp in UTC, using the server's own offset."""
    if not isinstance(local, datetime):
        return None
    return (local + _offset(sampled_at, sampled_at_utc)).replace(tzinfo=UTC)


def query_hash_text(value: Any) -> str:
    """binary(8) query_hash as SQL Server prints it: 0x8A3F1C2D4E5B6A70 (from bytes or hex text)."""
    if isinstance(value, bytes | bytearray | memoryview):
        return "0x" + bytes(value).hex().upper()
    text = str(value).strip()
    digits = text[2:] if text.lower().startswith("0x") else text
    return "0x" + digits.upper() if digits and all(c in "0123456789abcdefABCDEF" for c in digits) else text


# --- sessions -------------------------------------------------------------------------------------

_LOCK_MODE = re.compile(r"^LCK_M_([A-Z_]+?)(?:_LOW_PRIORITY|_ABORT_BLOCKERS)?$")


def _blocker(bid: int, wait_type: str | None, resource: str | None, wait_ms: float | None) -> dict[str, Any]:
    mode = _LOCK_MODE.match(wait_type or "")
    out: dict[str, Any] = {
        "session_id": bid,
        "lock_mode": mode.group(1) if mode else None,
        "resource": resource,
        "wait_time_ms": wait_ms,
    }
    if bid in SPECIAL_BLOCKERS:
        out["kind"] = SPECIAL_BLOCKERS[bid]
    return out


def session_rows(rows: Rows) -> Rows:
    """sys.dm_exec_sessions + requests + waiting tasks -> SPEC `sessions`: one row per session, every
    blocker of its tasks in `blocked_by` (-2/-3/-4/-5 named for what they are, never as a session)."""
    out: dict[int, dict[str, Any]] = {}
    for r in rows:
        sid = int(r["session_id"])
        row = out.get(sid)
        if row is None:
            elapsed = _num(r.get("total_elapsed_time"))
            transaction_ms = _ms_between(r.get("transaction_begin_time"), r.get("sampled_at"))
            if elapsed is None:  # no request: how long the session has held its transaction (or been idle)
                elapsed = (
                    transaction_ms
                    if transaction_ms is not None
                    else _ms_between(r.get("last_request_start_time"), r.get("sampled_at"))
                )
            login = _to_utc(r.get("login_time"), r.get("sampled_at"), r.get("sampled_at_utc"))
            requested, granted = _num(r.get("requested_memory_kb")), _num(r.get("granted_memory_kb"))
            tempdb = _num(r.get("tempdb_pages"))
            snapshot = _num(r.get("snapshot_seconds"))
            row = out[sid] = {
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
                "blocking_session_id": _int(r.get("blocking_session_id")),
                "blocked_by": [],
                "cpu_time_ms": _num(r.get("cpu_time")),
                "logical_reads": _num(r.get("logical_reads")),
                "elapsed_ms": elapsed,
                "open_transaction_count": _int(r.get("open_transaction_count")),
                "transaction_ms": transaction_ms,
                "snapshot_ms": None if snapshot is None else snapshot * 1000.0,
                "tempdb_mb": None if tempdb is None else max(0.0, tempdb) / PAGES_PER_MB,
                "memory_requested_mb": None if requested is None else requested / 1024.0,
                "memory_granted_mb": None if granted is None else granted / 1024.0,
                "memory_grant_wait_ms": _num(r.get("grant_wait_ms")),
                "login_time": login.isoformat().replace("+00:00", "Z") if login else None,
                "sql_text": _text(r.get("sql_text")),
            }
        request_blocker = _int(r.get("blocking_session_id"))  # MARS: each request of the session has one
        if request_blocker not in (None, 0, sid) and request_blocker not in {
            b["session_id"] for b in row["blocked_by"]
        }:
            assert request_blocker is not None
            row["blocked_by"].append(
                _blocker(
                    request_blocker,
                    _text(r.get("wait_type")),
                    _text(r.get("wait_resource")),
                    _num(r.get("wait_time")),
                )
            )
        task_blocker = _int(r.get("task_blocker"))
        if task_blocker is not None and task_blocker != sid:
            known = {b["session_id"] for b in row["blocked_by"]}
            if task_blocker not in known:
                row["blocked_by"].append(
                    _blocker(
                        task_blocker,
                        _text(r.get("task_wait_type")),
                        _text(r.get("task_resource")),
                        _num(r.get("task_wait_ms")),
                    )
                )
    for row in out.values():
        request_blocker = row["blocking_session_id"]
        if not row["blocked_by"]:
            row["blocked_by"] = [] if request_blocker is not None else None
        # blocking_session_id names a session: a negative value is kept only in blocked_by, named
        first = next((b["session_id"] for b in row["blocked_by"] or [] if b["session_id"] > 0), None)
        row["blocking_session_id"] = (
            first if first is not None else (0 if request_blocker is not None else None)
        )
    return list(out.values())


# --- waits and top queries ---------------------------------------------------------------------------


def wait_rows(rows: Rows) -> Rows:
    """sys.dm_os_wait_stats (+ waits in progress) -> SPEC `waits` (already milliseconds)."""
    return [
        {
            "wait_type": str(r["wait_type"]).strip(),
            "waiting_tasks_count": _num(r.get("waiting_tasks_count")),
            "wait_time_ms": float(r["wait_time_ms"]),
            "signal_wait_time_ms": _num(r.get("signal_wait_time_ms")),
        }
        for r in rows
    ]


def _baseline_source(r: dict[str, Any], has_baseline: bool, read_store: bool) -> str:
    """Where a statement's baseline comes from, or why it has none (Query Store is per database)."""
    connected = _text(r.get("connected_database"))
    statement_db = _text(r.get("statement_database"))
    if has_baseline:
        return f"Query Store of {connected}"
    if not read_store:
        return "Query Store not read (not available, not permitted, or too slow on this server)"
    if connected and connected.lower() in ("master", "tempdb", "model"):
        return (
            f"the copilot is connected to {connected}, where Query Store cannot run: set the instance's "
            "`database`"
        )
    if statement_db and connected and statement_db != connected:
        return (
            f"its database {statement_db}'s Query Store is not read (only the connected database's, "
            f"{connected})"
        )
    return f"no runs in Query Store of {connected or 'the connected database'} in the baseline week"


def top_query_rows(rows: Rows) -> Rows:
    """The plan each query runs now (plan cache, microseconds) + the Query Store baseline -> SPEC
    `top_queries` in ms, with plan ids and why a baseline is missing."""
    out = []
    read_store = bool(rows) and "baseline_duration" in rows[0]
    for r in rows:
        runs = _num(r.get("execution_count"))
        elapsed_ms = _num(r.get("total_elapsed_time"))
        elapsed_ms = None if elapsed_ms is None else elapsed_ms / US_PER_MS
        cpu_ms = _num(r.get("total_worker_time"))
        base_us, base_runs = _num(r.get("baseline_duration")), _num(r.get("baseline_executions"))
        baseline = base_us / base_runs / US_PER_MS if base_us is not None and base_runs else None
        plan_id = r.get("plan_id")
        baseline_plan = r.get("baseline_plan_id")
        changed = plan_id is not None and baseline_plan is not None and str(plan_id) != str(baseline_plan)
        out.append(
            {
                "query_hash": query_hash_text(r["query_hash"]),
                "database_name": _text(r.get("statement_database")),
                "execution_count": runs,
                "total_cpu_ms": None if cpu_ms is None else cpu_ms / US_PER_MS,
                "total_elapsed_ms": elapsed_ms,
                "total_logical_reads": _num(r.get("total_logical_reads")),
                "avg_elapsed_ms": elapsed_ms / runs if elapsed_ms is not None and runs else None,
                "baseline_avg_elapsed_ms": baseline,
                "last_execution_time": _to_utc(
                    r.get("last_execution_time"), r.get("sampled_at"), r.get("sampled_at_utc")
                ),
                "sql_text": _text(r.get("sql_text")),
                "plan_id": str(plan_id)
                if plan_id is not None
                else query_hash_text(r.get("query_plan_hash") or ""),
                "plans": _int(r.get("plans")),
                "baseline_plan_id": None if baseline_plan is None else str(baseline_plan),
                "plan_changed_at": _to_utc(
                    r.get("creation_time"), r.get("sampled_at"), r.get("sampled_at_utc")
                )
                if changed
                else None,
                "baseline_source": _baseline_source(r, baseline is not None, read_store),
            }
        )
    return out


# --- files ------------------------------------------------------------------------------------------


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


# --- server, log reuse, replicas, deadlocks -------------------------------------------------------------


def server_rows(rows: Rows) -> Rows:
    if not rows:
        raise SourceError("no instance-wide row (Azure SQL Database answers the next alternative)")
    r = rows[0]
    edition = _int(r.get("engine_edition"))
    started = r.get("started_at_local")
    offset = _offset(r.get("sampled_at_local"), r.get("sampled_at"))
    version_kb = _num(r.get("version_store_kb"))
    return [
        {
            "sampled_at": r.get("sampled_at"),
            "platform": PLATFORMS.get(edition or 0, "SQL Server"),
            "version": _text(r.get("version")),
            "started_at": (started + offset) if isinstance(started, datetime) else None,
            "connections": _int(r.get("connections")),
            "max_connections": _int(r.get("max_connections")),
            "active_connections": _int(r.get("active_connections")),
            "workers": _int(r.get("workers")),
            "max_workers": _int(r.get("max_workers")),
            "queued_tasks": _int(r.get("queued_tasks")),
            "deadlocks": _num(r.get("deadlocks")),
            "memory_grants_pending": _int(r.get("memory_grants_pending")),
            "memory_grants_outstanding": _int(r.get("memory_grants_outstanding")),
            "version_store_mb": None if version_kb is None else version_kb / 1024.0,
        }
    ]


def log_reuse_rows(rows: Rows) -> Rows:
    """sys.databases.log_reuse_wait_desc + the log size counters -> SPEC `log_reuse`, one per database."""
    out = []
    for r in rows:
        size_kb, used_kb = _num(r.get("log_size_kb")), _num(r.get("log_used_kb"))
        out.append(
            {
                "log": "transaction log",
                "database_name": _text(r.get("database_name")),
                "holder": _text(r.get("database_name")),
                "reason": _text(r.get("log_reuse_wait_desc")),
                "size_mb": None if size_kb is None else size_kb / 1024.0,
                "used_mb": None if used_kb is None else used_kb / 1024.0,
                "detail": f"recovery model {_text(r.get('recovery_model_desc')) or '?'}",
            }
        )
    return out


def replica_rows(rows: Rows) -> Rows:
    """sys.dm_hadr_database_replica_states -> SPEC `replicas`, one per availability replica and database."""
    out = []
    for r in rows:
        lag = _num(r.get("secondary_lag_seconds"))
        send, redo = _num(r.get("log_send_queue_size")), _num(r.get("redo_queue_size"))
        suspended = bool(r.get("is_suspended"))
        state = _text(r.get("synchronization_state_desc"))
        if suspended:
            state = f"SUSPENDED ({_text(r.get('suspend_reason_desc')) or 'no reason given'})"
        out.append(
            {
                "name": _text(r.get("replica_server_name")) or "?",
                "kind": "availability_group",
                "role": "primary" if r.get("is_primary_replica") else "secondary",
                "local": bool(r.get("is_local")),
                "group_name": _text(r.get("group_name")),
                "database_name": _text(r.get("database_name")),
                "state": state,
                "synchronous": (_text(r.get("availability_mode_desc")) or "").upper() == "SYNCHRONOUS_COMMIT",
                "connected": not suspended
                and (_text(r.get("synchronization_health_desc")) or "") != "NOT_HEALTHY",
                "lag_s": lag,
                "send_queue_mb": None if send is None else send / 1024.0,
                "redo_queue_mb": None if redo is None else redo / 1024.0,
            }
        )
    # the primary's own rows say nothing about lag
    return [o for o in out if o["role"] == "secondary" or not any(x["role"] == "secondary" for x in out)]


def deadlock_rows(rows: Rows) -> Rows:
    """system_health's ring buffer -> the latest deadlock graphs."""
    return mssql_deadlocks(next((r.get("target_data") for r in rows if r.get("target_data")), None))
