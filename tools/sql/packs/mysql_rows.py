"""Row mappers of the MySQL / MariaDB query pack: cursor rows (lower-case column names) -> SPEC rows."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from tools.sources import SourceError
from tools.sql.packs.deadlock_graphs import innodb_deadlock

PS_OFF = "performance_schema is off (set performance_schema=ON in the server configuration and restart)"


def _float(v: Any) -> float | None:
    return None if v is None or v == "" else float(v)


def _int(v: Any) -> int | None:
    return None if v is None or v == "" else int(float(v))


def _client_host(host: str | None) -> str | None:
    """'10.1.2.3:52144' -> '10.1.2.3' (the port only tells connections of one client apart)."""
    if host and re.fullmatch(r".+:\d+", host):
        return host.rsplit(":", 1)[0]
    return host


def _epoch_iso(v: Any) -> str | None:
    if v is None:
        return None
    return datetime.fromtimestamp(int(float(v)), UTC).isoformat().replace("+00:00", "Z")


def _ps_rows(rows: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """Rows of a query wrapped as `(SELECT @@performance_schema) LEFT JOIN (...)`: SourceError when
    performance_schema is off (so the next alternative is tried), else the rows that carry `key`."""
    if rows and "ps_on" in rows[0] and not int(rows[0]["ps_on"] or 0):
        raise SourceError(PS_OFF)
    return [r for r in rows if r.get(key) is not None]


# --- sessions -------------------------------------------------------------------------------------


def _innodb_blockers(
    text: str | None, mode: str | None, resource: str | None, wait_ms: float | None
) -> list[dict[str, Any]]:
    """'thread:trx_id:held mode,...' -> Blocker dicts; thread 0 is a prepared (XA) transaction."""
    out = []
    for part in (text or "").split(","):
        bits = part.split(":", 2)
        if len(bits) < 2 or not bits[0].strip().lstrip("-").isdigit():
            continue
        thread, trx, held = int(bits[0]), bits[1], (bits[2] if len(bits) > 2 else "") or None
        common = {"lock_mode": mode, "held_mode": held, "resource": resource, "wait_time_ms": wait_ms}
        if thread == 0:
            out.append({"session_id": 0, "kind": "prepared_transaction", "name": f"XA trx {trx}", **common})
        else:
            out.append({"session_id": thread, **common})
    return out


def _mdl_blockers(
    text: str | None, obj: str | None, mode: str | None, wait_ms: float | None
) -> list[dict[str, Any]]:
    """'thread:held type,...' -> Blocker dicts for a pending metadata lock."""
    out = []
    for part in (text or "").split(","):
        thread, _, held = part.partition(":")
        if thread.strip().isdigit():
            out.append(
                {
                    "session_id": int(thread),
                    "lock_mode": mode,
                    "held_mode": held or None,
                    "resource": f"metadata lock on {obj}",
                    "wait_time_ms": wait_ms,
                }
            )
    return out


def session_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Processlist + InnoDB transaction + lock-wait rows -> SessionRow fields with every blocker."""
    out = []
    for r in _ps_rows(rows, "session_id"):
        command, state = r.get("command") or "", r.get("state") or ""
        in_trx, lock_wait = r.get("trx_state") is not None, r.get("trx_state") == "LOCK WAIT"
        sleeping = command == "Sleep"
        time_ms = _float(r.get("time_ms"))
        blocked_by: list[dict[str, Any]] | None = None
        if lock_wait:
            kind = "row" if (r.get("lock_type") or "RECORD").upper() == "RECORD" else "table"
            wait_type, wait_ms = f"innodb {kind} lock", _float(r.get("lock_wait_ms"))
            blocked_by = _innodb_blockers(
                r.get("blockers"), r.get("lock_mode"), r.get("wait_resource"), wait_ms
            )
        elif state.startswith("Waiting for"):  # e.g. 'Waiting for table metadata lock'
            wait_type, wait_ms = state, time_ms
            if "metadata lock" in state:
                blocked_by = _mdl_blockers(
                    r.get("mdl_blockers"), r.get("mdl_object"), r.get("mdl_mode"), wait_ms
                )
                if not blocked_by:
                    why = (
                        "the holder is not named: performance_schema's wait/lock/metadata/sql/mdl "
                        "instrument is off"
                    )
                    blocked_by = [{"kind": "unknown", "name": why, "wait_time_ms": wait_ms}]
        else:
            wait_type, wait_ms = None, None
        first = next((b["session_id"] for b in blocked_by or [] if b.get("session_id")), None)
        trx_ms = _float(r.get("trx_ms"))
        out.append(
            {
                "session_id": int(r["session_id"]),
                "status": "sleeping" if sleeping else "lock wait" if lock_wait or blocked_by else "running",
                "login_name": r.get("login_name"),
                "host_name": _client_host(r.get("host")),
                "database_name": r.get("database_name"),
                "command": command or None,
                "wait_type": wait_type,
                "wait_time_ms": wait_ms,
                "wait_resource": r.get("wait_resource")
                if lock_wait
                else (f"metadata lock on {r.get('mdl_object')}" if r.get("mdl_object") else None),
                "blocking_session_id": first,
                "blocked_by": blocked_by,
                # a sleeping session's age is its transaction's; otherwise its current command's
                "elapsed_ms": trx_ms if sleeping and in_trx else time_ms,
                "open_transaction_count": 1 if in_trx else 0,
                "transaction_ms": trx_ms,
                "snapshot_ms": trx_ms if r.get("read_view") else None,
                # MySQL keeps no connect time: the start of the current command (of the idle period for a
                # sleeping session), exact to the second and unchanged while the session sits idle
                "login_time": _epoch_iso(r.get("command_start_epoch")),
                "sql_text": r.get("sql_text"),
            }
        )
    return out


# --- waits, top queries, files --------------------------------------------------------------------


def wait_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """performance_schema waits plus the InnoDB row-lock row. With performance_schema off only the
    row-lock row remains (InnoDB counters need no instrumentation)."""
    ps_on = bool(rows) and int(rows[0].get("ps_on") or 0) == 1
    kept = [r for r in rows if r.get("wait_type") is not None and (ps_on or r.get("source") == "innodb")]
    if not kept:
        raise SourceError(PS_OFF)
    return [
        {
            "wait_type": r["wait_type"],
            "waiting_tasks_count": _float(r.get("waiting_tasks_count")),
            "wait_time_ms": float(r.get("wait_time_ms") or 0.0),
        }
        for r in kept
    ]


def top_query_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "query_hash": r["query_hash"],
            "execution_count": _float(r.get("execution_count")),
            "total_elapsed_ms": _float(r.get("total_elapsed_ms")),
            "avg_elapsed_ms": _float(r.get("avg_elapsed_ms")),
            # baseline_avg_elapsed_ms: unknown, digests keep no history
            "baseline_source": "statement digests keep no history",
            "last_execution_time": (
                datetime.fromtimestamp(float(r["last_seen_epoch"]), UTC) if r.get("last_seen_epoch") else None
            ),
            "sql_text": r.get("sql_text"),
        }
        for r in _ps_rows(rows, "query_hash")
    ]


_MAX = re.compile(r"(?:^|;)\s*([^:;]+):[^;]*?:max:(\d+)([KMG])", re.I)
_UNIT_MB = {"K": 1 / 1024, "M": 1.0, "G": 1024.0}


def file_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Column names of the UNION's first SELECT; sizes as floats. The system tablespace's maximum comes
    from innodb_data_file_path ('ibdata1:12M:autoextend:max:500M')."""
    out = []
    for r in rows:
        row = {
            k: r[k]
            for k in (
                "database_name",
                "file_name",
                "type",
                "size_mb",
                "used_mb",
                "max_size_mb",
                "volume_free_mb",
            )
        }
        for k in ("size_mb", "used_mb", "max_size_mb", "volume_free_mb"):
            row[k] = _float(row[k])
        path = r.get("data_file_path")
        if path and row["max_size_mb"] is None:
            m = _MAX.search(str(path))
            if m and str(row["file_name"]).endswith(m.group(1).strip().split("/")[-1]):
                row["max_size_mb"] = float(m.group(2)) * _UNIT_MB[m.group(3).upper()]
        out.append(row)
    return out


# --- server, log reuse, replicas, deadlocks ----------------------------------------------------------


def server_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not rows:
        raise SourceError("the server returned no row")
    r = rows[0]
    ints = (
        "connections",
        "max_connections",
        "active_connections",
        "max_used_connections",
        "history_list_length",
        "prepared_transactions",
    )
    floats = ("refused_connections", "deadlocks", "temp_spills", "sort_spills")
    out: dict[str, Any] = {k: _int(r.get(k)) for k in ints} | {k: _float(r.get(k)) for k in floats}
    out |= {
        "sampled_at": r.get("sampled_at"),
        "platform": "MariaDB" if "mariadb" in str(r.get("version", "")).lower() else "MySQL",
        "version": r.get("version"),
        "started_at": _epoch_iso(r.get("started_epoch")),
        "in_recovery": None,
    }
    return [out]


def binlog_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """SHOW BINARY LOGS -> one LogReuseRow for all binary logs (files, total size, the oldest kept)."""
    if not rows:
        return []
    sizes = [float(r.get("file_size") or 0.0) for r in rows]
    names = [str(r.get("log_name")) for r in rows]
    return [
        {
            "log": "binlog",
            "holder": "binary logs",
            "reason": None,
            "size_mb": sum(sizes) / 1048576.0,
            "used_mb": sum(sizes) / 1048576.0,
            "detail": f"{len(rows)} binary log files, oldest {names[0]}, newest {names[-1]}",
        }
    ]


def replica_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """SHOW ALL SLAVES STATUS / SHOW REPLICA STATUS -> ReplicaRow, one per channel of this replica."""
    out = []
    for r in rows:
        io = str(r.get("slave_io_running") or r.get("replica_io_running") or "")
        sql = str(r.get("slave_sql_running") or r.get("replica_sql_running") or "")
        lag = r.get("seconds_behind_master", r.get("seconds_behind_source"))
        error = r.get("last_io_error") or r.get("last_sql_error") or None
        source = r.get("master_host") or r.get("source_host") or "?"
        name = r.get("connection_name") or r.get("channel_name") or f"from {source}"
        state = (
            "running" if io == "Yes" and sql == "Yes" else f"IO thread {io or '?'}, SQL thread {sql or '?'}"
        )
        out.append(
            {
                "name": str(name),
                "kind": "replication_channel",
                "role": "secondary",
                "local": True,
                "state": "running" if state == "running" else state,
                "connected": io == "Yes",
                "lag_s": _float(lag),
                "last_error": str(error) if error else None,
            }
        )
    return out


def deadlock_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """SHOW ENGINE INNODB STATUS -> the latest detected deadlock (if InnoDB has one)."""
    status = next((r.get("status") for r in rows if r.get("status")), None)
    return innodb_deadlock(status)
