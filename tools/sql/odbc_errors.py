"""What an ODBC error means: its kind (SQLSTATE, native code, wording) and message, secrets scrubbed."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from tools.estate import SqlInstanceConfig
from tools.scrub import scrub_values
from tools.sources import SourceError
from tools.sql.packs.base import PackQuery

ErrorKind = Literal["timeout", "connection", "login", "database", "driver", "denied", "missing", "error"]
# errors that count against the circuit breaker (the server did not answer, or will not let us in)
BREAKER_KINDS: dict[ErrorKind, str] = {
    "timeout": "timeout",
    "connection": "connection failure",
    "login": "login failure",
    "database": "login failure",
    "driver": "driver failure",
}

_TIMEOUT_STATES = {"HYT00", "HYT01", "57014", "55P03"}  # 55P03: lock_timeout
_DENIED_STATES = {"42501"}
_MISSING_STATES = {"42P01", "42883", "42703", "42704", "55000", "42S02", "42S22", "3F000"}
# max_statement_time, max_execution_time, query interrupted, lock wait timeout; mssql 1222: LOCK_TIMEOUT
_TIMEOUT_CODES = {1969, 3024, 1317, 1205, 1222}
_MYSQL_CONNECTION = {2002, 2003, 2005, 2006, 2013, 2026, 2055}  # (PostgreSQL 57P0x: server shut down)
_MYSQL_DENIED = {1142, 1143, 1227, 1370}
_MYSQL_MISSING = {1146, 1109, 1193, 1054, 1305}
_MSSQL_DENIED = {229, 230, 297, 300, 262}
_MSSQL_MISSING = {208, 207, 2812, 4121}
_LOGIN_WORDS = (
    "password authentication failed",
    "access denied for user",
    "login failed",
    "no pg_hba.conf entry",
)
_ROLE_MISSING = re.compile(r'role ".*" does not exist', re.I)
_DB_MISSING = re.compile(r'database ".*" does not exist|unknown database|cannot open database', re.I)
_PWD_PATTERN = re.compile(r"(?i)\b(pwd|password)\s*=\s*(\{(?:[^}]|\}\})*\}|[^;]*)")


@dataclass(frozen=True)
class OdbcFailure:
    kind: ErrorKind
    sqlstate: str
    native: int | None
    message: str  # one line, driver prefixes stripped, secrets scrubbed


class WatchdogTimeout(TimeoutError):
    """The client cancelled a statement that outlived the server-side limit."""


class DatasetUnavailable(SourceError):
    """The server answered, but this query cannot run there (missing object/privilege/feature)."""

    def __init__(self, message: str, kind: ErrorKind, query: PackQuery) -> None:
        super().__init__(message)
        self.kind = kind
        self.query = query


def _native_code(raw: str) -> int | None:
    m = re.search(r"\((-?\d+)\)\s*\(SQL\w+\)\s*$", raw.strip())
    return int(m.group(1)) if m else None


def _one_line(raw: str) -> str:
    msg = re.sub(r"\s*\(-?\d+\)\s*\(SQL\w+\)\s*$", "", raw.strip())
    msg = re.sub(r"^(\[[^\]]*\]\s*)+", "", msg)
    msg = re.sub(r";?\s*Error while executing the query\s*$", "", msg)
    return re.sub(r"\s+", " ", msg).strip().rstrip(";")


def classify(exc: BaseException, scrub: Callable[[str], str] = lambda s: s) -> OdbcFailure:
    """What kind of failure an ODBC error is, by SQLSTATE, native code and (for logins) wording."""
    if isinstance(exc, WatchdogTimeout):
        return OdbcFailure("timeout", "HYT00", None, str(exc))
    args: tuple[Any, ...] = tuple(exc.args)
    state = str(args[0]) if len(args) > 1 and isinstance(args[0], str) else ""
    raw = str(args[1]) if len(args) > 1 else str(exc)
    native, message, lower = _native_code(raw), scrub(_one_line(raw)), raw.lower()
    kind: ErrorKind = "error"
    if state in _TIMEOUT_STATES or native in _TIMEOUT_CODES:
        kind = "timeout"
    elif state in ("IM002", "IM003", "01000") or "can't open lib" in lower or "file not found" in lower:
        kind = "driver"
    elif _DB_MISSING.search(raw) or native in (1044, 1049, 4060):
        kind = "database"
    elif state.startswith("28") or native in (1045, 1698, 18456) or _is_login_failure(raw):
        kind = "login"
    elif state.startswith(("08", "57P")) or native in _MYSQL_CONNECTION or "timeout expired" in lower:
        kind = "connection"
    elif state in _DENIED_STATES or native in _MYSQL_DENIED or native in _MSSQL_DENIED:
        kind = "denied"
    elif state in _MISSING_STATES or native in _MYSQL_MISSING or native in _MSSQL_MISSING:
        kind = "missing"
    return OdbcFailure(kind, state, native, message)


def _is_login_failure(raw: str) -> bool:
    return any(w in raw.lower() for w in _LOGIN_WORDS) or bool(_ROLE_MISSING.search(raw))


def source_error(cfg: SqlInstanceConfig, target: str, query: PackQuery, exc: BaseException) -> SourceError:
    """The SourceError an instance's failed query becomes: what went wrong, in the operator's words."""
    f = classify(exc, lambda s: scrub_secrets(s, cfg))
    name, what = cfg.name, query.dataset
    if f.kind in ("denied", "missing"):
        needs = f"; needs {query.requires}" if query.requires else ""
        return DatasetUnavailable(f"{name}: {what}: {f.message}{needs}", f.kind, query)
    if f.kind == "timeout":
        return SourceError(f"{name}: {what} query timed out after {cfg.query_timeout_s:g} s ({f.message})")
    if f.kind == "driver":
        return SourceError(f"{name}: the ODBC driver cannot be loaded: {f.message}")
    if f.kind == "connection":
        return SourceError(f"{name} unreachable at {target}: {f.message}")
    if f.kind in ("login", "database"):
        return SourceError(f"{name} refused the login at {target}: {f.message}")
    return SourceError(f"{name}: {what} query failed: {f.message}")


def scrub_secrets(text: str, cfg: SqlInstanceConfig) -> str:
    """The text without any PWD=... or URL password it might quote: scrubbed by the fields known to
    carry secrets and the password as a whole token (`tools.scrub`), never as a bare substring."""
    known = [cfg.password.get_secret_value()] if cfg.password is not None else []
    return scrub_values(_PWD_PATTERN.sub(lambda m: f"{m.group(1)}=***", text), known)
