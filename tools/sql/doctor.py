"""The SQL doctor: per instance, reachable, login accepted, each dataset readable, and what to fix."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pyodbc
from pydantic import BaseModel, ValidationError

from tools.estate import SqlInstanceConfig
from tools.resilience import PoolTimeout
from tools.sources import SourceCheck, SourceError
from tools.sql.odbc_errors import OdbcFailure, WatchdogTimeout, classify, scrub_secrets
from tools.sql.packs.base import Dataset, PackQuery
from tools.world import (
    DeadlockRow,
    FileRow,
    LogReuseRow,
    QueryStatRow,
    ReplicaRow,
    ServerRow,
    SessionRow,
    WaitRow,
)

if TYPE_CHECKING:
    from tools.sql.instance import OdbcInstance

MODELS: dict[Dataset, type[BaseModel]] = {
    "sessions": SessionRow,
    "waits": WaitRow,
    "top_queries": QueryStatRow,
    "files": FileRow,
    "server": ServerRow,
    "log_reuse": LogReuseRow,
    "replicas": ReplicaRow,
    "deadlocks": DeadlockRow,
}
Execute = Callable[["OdbcInstance", pyodbc.Connection, str], list[dict[str, Any]]]


def check_instance(inst: OdbcInstance, execute: Execute, acquire_timeout_s: float) -> SourceCheck:
    """Reachable, login accepted, each dataset readable, latency, circuit: checked now on one connection."""
    cfg = inst.cfg
    row = SourceCheck(
        source=f"sql:{cfg.name}",
        kind="sql",
        target=inst.target,
        reachable=False,
        circuit=inst.breaker.state,
    )
    details: list[str] = []
    fixes: list[str] = []
    connected = False
    inst.choice.clear()  # re-probe every alternative from the best one
    try:
        with inst.pool.connection(acquire_timeout_s, lambda exc: True) as (conn, _fresh):
            connected = row.reachable = row.authenticated = True
            started = time.monotonic()
            probe = execute(inst, conn, inst.pack.probe)
            row.latency_ms = round(1000 * (time.monotonic() - started), 1)
            details.append(f"latency {row.latency_ms:g} ms")
            missing = str((probe[0].get("missing_privileges") if probe else None) or "").strip()
            if missing:
                row.permissions_ok = False
                fixes.append(f"grant {missing} to {_login(cfg)}")
            counts = []
            for dataset in (d for d in MODELS if inst.pack.for_dataset(d)):
                count, ok, fix = _check_dataset(inst, execute, conn, dataset)
                counts.append(f"{dataset} {count}")
                if not ok:
                    row.permissions_ok = False
                fixes += [f for f in fix if f not in fixes]
            details.append(", ".join(counts))
            if row.permissions_ok is None:
                row.permissions_ok = True
    except PoolTimeout as exc:
        row.reachable = True
        details.append(str(exc))
        fixes.append("the copilot's connections stay busy; run doctor again when investigations finish")
    except (pyodbc.Error, WatchdogTimeout) as exc:
        f = classify(exc, lambda s: scrub_secrets(s, cfg))
        details.append(f.message)
        if connected:
            fixes.append(f"the server answered the login but not the checks ({f.kind}): {f.message}")
        else:
            _login_failure(row, f, cfg, fixes)
    details.append(inst.breaker.describe())
    row.detail = scrub_secrets("; ".join(details), cfg)
    row.fix = scrub_secrets("; ".join(fixes), cfg)
    return row


def _check_dataset(
    inst: OdbcInstance, execute: Execute, conn: pyodbc.Connection, dataset: Dataset
) -> tuple[str, bool, list[str]]:
    """Run the dataset's alternatives until one works: (what it read, readable, fixes)."""
    queries = list(inst.pack.for_dataset(dataset))
    if not queries:
        return "(no query in the pack)", True, []
    fixes: list[str] = []
    problems: list[tuple[PackQuery, str, str]] = []
    user = _login(inst.cfg)
    for q in queries:
        try:
            rows = q.to_rows(execute(inst, conn, q.sql))
            model = MODELS[dataset]
            for r in rows:
                model.model_validate(r)
        except pyodbc.Error as exc:
            f = classify(exc, lambda s: scrub_secrets(s, inst.cfg))
            if f.kind == "timeout":
                limit = inst.cfg.query_timeout_s
                hint = f"{dataset} took longer than query_timeout_s ({limit:g} s): check the server's load"
                return f"timed out after {limit:g} s", True, [*fixes, hint]
            if f.kind not in ("denied", "missing") and not q.variant:
                raise
            problems.append((q, f.kind, f.message))
            if q.variant and f.kind not in ("denied", "missing"):
                continue  # a variant that cannot run here: its fallback answers (as in the live backend)
            if f.kind == "denied":
                fixes.append(
                    f"grant {q.requires or 'the privilege it names'} to {user} ({dataset}: {f.message})"
                )
            continue
        except SourceError as exc:
            problems.append((q, "missing", str(exc)))
            continue
        except ValidationError as exc:
            return (
                f"invalid rows ({exc.error_count()} errors)",
                False,
                [f"fix the {inst.pack.engine} pack"],
            )
        return f"{len(rows)} rows", True, fixes
    if not fixes:  # nothing denied: a feature or object is missing
        q, _, message = problems[0]
        fixes.append(f"{dataset} needs {q.requires}: {message}" if q.requires else f"{dataset}: {message}")
    optional = any(q.optional for q in queries)
    return ("empty: " if optional else "unreadable: ") + problems[0][2], optional, fixes


def _login(cfg: SqlInstanceConfig) -> str:
    return cfg.username or "the copilot's login"


def _login_failure(row: SourceCheck, f: OdbcFailure, cfg: SqlInstanceConfig, fixes: list[str]) -> None:
    """Fill a doctor row for a connection that could not be opened."""
    msg = f.message.lower()
    if f.kind == "login":
        row.reachable, row.authenticated = True, False
        fixes.append(
            f"check username/password: the server rejected the login of {_login(cfg)} "
            "(create it as in docs/readonly-logins.md, or fix the password reference in the settings)"
        )
    elif f.kind == "database":
        row.reachable, row.authenticated, row.permissions_ok = True, True, False
        fixes.append(
            f"check database: {cfg.database or 'the default database'} is missing or {_login(cfg)} may not "
            "open it (leave `database` empty for MySQL/MariaDB; grant CONNECT for PostgreSQL)"
        )
    elif f.kind == "driver":
        installed = ", ".join(pyodbc.drivers()) or "none"
        fixes.append(f"install the ODBC driver or set `driver` to an installed one ({installed})")
    elif "refused" in msg or f.native in (2002, 2003):
        fixes.append(
            "check host/port; the server refused the connection (is it running and listening there?)"
        )
    elif any(w in msg for w in ("unknown server host", "translate host name", "not known", "resolve")):
        fixes.append(f"check host: {cfg.host or 'the server name'} does not resolve")
    elif f.kind == "timeout" or any(
        w in msg for w in ("timeout", "timed out", "handshake", "lost connection")
    ):
        fixes.append("check host/port and firewalls: the server did not answer the login in time")
    else:
        fixes.append("check host/port and that the server is running")
