"""The live SQL backend: query packs run over ODBC through a bounded pool and a circuit breaker per instance.

Usage::

    sql = OdbcSql(estate.sql)                       # packs default to tools.sql.packs.<engine>.PACK
    sql = OdbcSql(estate.sql, packs={"mssql": MY})  # or give packs per engine
    sql.sessions("pg-prod-01"); sql.doctor(); sql.stats("pg-prod-01"); sql.close()

How a pack is used:
- `session_setup` runs once on every new connection, after `str.format` with `{timeout_ms}`,
  `{timeout_s}`, `{timeout_s_int}` (the instance's query_timeout_s) and `{application_name}`. A setup
  statement the server does not know (unknown variable, e.g. MySQL's max_execution_time on MariaDB) is
  skipped; any other failure fails the connection.
- The queries of one dataset are alternatives, best first: the first that the server can answer gives
  the rows. The next one is tried only when the server says an object, column, function or privilege
  is missing, or when `to_rows` raises SourceError (e.g. "performance_schema is off"). The one that
  worked is remembered per instance. When none works: an `optional` dataset is empty (with a note in
  `notes(instance)`), otherwise SourceError naming what the queries `require`.
- `probe` is the doctor's first statement; a column `missing_privileges` with text names what the login
  lacks although every query runs (e.g. pg_read_all_stats: other logins' statements stay hidden).

Read-only: only pack SQL (and `run_query` with a PackQuery) runs, in autocommit, on a connection set
read-only where the driver allows it and by the pack's session setup. Time limits: login timeout, the
driver's query timeout (`connection.timeout`) where the driver supports it, the server-side limit from
the pack's setup, and a watchdog that cancels a statement one second after query_timeout_s.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, TypeVar

import pyodbc
from pydantic import BaseModel, ValidationError

from tools.estate import SqlInstanceConfig
from tools.resilience import BoundedPool, CircuitBreaker, CircuitOpen, PoolTimeout, guarded_call
from tools.sources import SourceCheck, SourceError
from tools.sql.packs.base import Dataset, PackQuery, QueryPack
from tools.world import Engine, FileRow, QueryStatRow, SessionRow, WaitRow

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)
ErrorKind = Literal["timeout", "connection", "login", "database", "driver", "denied", "missing", "error"]
MODELS: dict[Dataset, type[BaseModel]] = {
    "sessions": SessionRow,
    "waits": WaitRow,
    "top_queries": QueryStatRow,
    "files": FileRow,
}
WATCHDOG_GRACE_S = 1.0  # the client cancels this long after the server-side limit should have fired
MAX_ROWS = 10_000
SQL_ATTR_ACCESS_MODE, SQL_MODE_READ_ONLY = 101, 1
# errors that count against the circuit breaker (the server did not answer, or will not let us in)
BREAKER_KINDS: dict[ErrorKind, str] = {
    "timeout": "timeout",
    "connection": "connection failure",
    "login": "login failure",
    "database": "login failure",
    "driver": "driver failure",
}

# --- classifying ODBC errors ------------------------------------------------------------------

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


@dataclass(frozen=True)
class OdbcFailure:
    kind: ErrorKind
    sqlstate: str
    native: int | None
    message: str  # one line, driver prefixes stripped, secrets scrubbed


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
    if isinstance(exc, _WatchdogTimeout):
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


class _WatchdogTimeout(TimeoutError):
    """The client cancelled a statement that outlived the server-side limit."""


class DatasetUnavailable(SourceError):
    """The server answered, but this query cannot run there (missing object/privilege/feature)."""

    def __init__(self, message: str, kind: ErrorKind, query: PackQuery) -> None:
        super().__init__(message)
        self.kind = kind
        self.query = query


# --- connection strings -----------------------------------------------------------------------


def _odbc_value(value: str) -> str:
    """An ODBC connection-string value, braced when it holds special characters."""
    if re.search(r"[;{}=\s]", value) or not value:
        return "{" + value.replace("}", "}}") + "}"
    return value


def _keys(conn_str: str) -> set[str]:
    return {m.group(1).strip().upper() for m in re.finditer(r"(?:^|;)\s*([^=;]+?)\s*=", conn_str)}


def _app_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9 _.:-]", "", name)[:60] or "opscopilot"


@dataclass
class SqlStats:
    """What one instance cost: for the benchmark and for `opscopilot doctor`."""

    queries: int = 0  # pack queries (and run_query calls) sent
    setup_statements: int = 0  # session setup statements sent on new connections
    connections_opened: int = 0
    failures: int = 0
    seconds: float = 0.0  # wall time of calls, connecting included

    def snapshot(self) -> SqlStats:
        return SqlStats(**self.__dict__)


@dataclass
class _Instance:
    cfg: SqlInstanceConfig
    pack: QueryPack
    breaker: CircuitBreaker
    pool: BoundedPool[pyodbc.Connection]
    connection_string: str  # with PWD: never logged
    target: str
    stats: SqlStats = field(default_factory=SqlStats)
    choice: dict[str, int] = field(default_factory=dict)  # dataset -> index of the alternative that worked
    notes: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def default_pack(engine: Engine) -> QueryPack:
    """tools.sql.packs.<engine>.PACK (mssql, postgresql, mysql)."""
    try:
        module = importlib.import_module(f"tools.sql.packs.{engine}")
    except ImportError as exc:
        raise ValueError(f"no query pack for engine {engine!r} (tools/sql/packs/{engine}.py)") from exc
    pack: QueryPack = module.PACK
    return pack


class OdbcSql:
    """SqlSource over ODBC for every configured instance (see the module docstring)."""

    def __init__(
        self,
        instances: list[SqlInstanceConfig],
        packs: dict[str, QueryPack] | None = None,
        *,
        application_name: str = "opscopilot",
        login_timeout_s: float | None = None,
    ) -> None:
        # the pools below are the only pools: driver-manager pooling would keep connections we closed
        pyodbc.pooling = False
        self.application_name = _app_name(application_name)
        self._login_timeout_s = login_timeout_s
        self._instances: dict[str, _Instance] = {}
        for cfg in instances:
            if cfg.name in self._instances:
                raise ValueError(f"sql: duplicate instance name {cfg.name!r}")
            pack = (packs or {}).get(cfg.engine) or default_pack(cfg.engine)
            self._instances[cfg.name] = self._instance(cfg, pack)

    # --- SqlSource ------------------------------------------------------------------------------

    def instances(self) -> dict[str, Engine]:
        return {name: inst.cfg.engine for name, inst in self._instances.items()}

    def sessions(self, instance: str) -> list[SessionRow]:
        return self._dataset(instance, "sessions", SessionRow)

    def waits(self, instance: str) -> list[WaitRow]:
        return self._dataset(instance, "waits", WaitRow)

    def top_queries(self, instance: str) -> list[QueryStatRow]:
        return self._dataset(instance, "top_queries", QueryStatRow)

    def files(self, instance: str) -> list[FileRow]:
        return self._dataset(instance, "files", FileRow)

    # --- counters, notes, lifecycle -------------------------------------------------------------

    def stats(self, instance: str) -> SqlStats:
        inst = self._get(instance)
        with inst.lock:
            return inst.stats.snapshot()

    def notes(self, instance: str) -> list[str]:
        """Why a dataset of this instance is empty or degraded, e.g. 'waits: performance_schema is off'."""
        inst = self._get(instance)
        with inst.lock:
            return list(inst.notes)

    def circuit(self, instance: str) -> CircuitBreaker:
        return self._get(instance).breaker

    def close(self) -> None:
        for inst in self._instances.values():
            inst.pool.close()

    def __enter__(self) -> OdbcSql:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- running queries ------------------------------------------------------------------------

    def run_query(self, instance: str, query: PackQuery) -> list[dict[str, Any]]:
        """Run one vetted query through the instance's breaker and pool; rows after `query.to_rows`.

        Raises SourceError: circuit open, all connections busy, timed out, unreachable, login refused,
        or DatasetUnavailable when the server lacks an object or privilege the query needs."""
        inst = self._get(instance)
        started = time.monotonic()
        try:
            raw = self._guarded(inst, query.sql)
        except (CircuitOpen, PoolTimeout) as exc:
            raise SourceError(f"{inst.cfg.name} skipped: {exc}") from None
        except (pyodbc.Error, _WatchdogTimeout) as exc:
            with inst.lock:
                inst.stats.failures += 1
            raise self._source_error(inst, query, exc) from None
        finally:
            with inst.lock:
                inst.stats.seconds += time.monotonic() - started
        try:
            return query.to_rows(raw)
        except SourceError as exc:  # the pack says the feature is off (e.g. performance_schema)
            raise DatasetUnavailable(f"{inst.cfg.name}: {query.dataset}: {exc}", "missing", query) from None

    def _guarded(self, inst: _Instance, sql: str) -> list[dict[str, Any]]:
        """Breaker, pool, statement. A pooled connection that turns out dead (the server restarted, a
        firewall dropped it) is replaced once, together with every other idle one."""
        for attempt in (1, 2):
            reused = False

            def call(conn: pyodbc.Connection, fresh: bool) -> list[dict[str, Any]]:
                nonlocal reused
                reused = not fresh
                return self._execute(inst, conn, sql)

            try:
                return guarded_call(
                    inst.breaker,
                    inst.pool,
                    call,
                    acquire_timeout_s=self._acquire_timeout(inst),
                    failure_kind=lambda exc: BREAKER_KINDS.get(classify(exc).kind),
                    broken=lambda exc: classify(exc).kind in ("timeout", "connection", "error"),
                )
            except pyodbc.Error as exc:
                if attempt == 2 or not reused or classify(exc).kind != "connection":
                    raise
                log.info("sql %s: a pooled connection was dead; reconnecting", inst.cfg.name)
                inst.pool.clear()
        raise AssertionError("unreachable")

    def _dataset(self, instance: str, dataset: Dataset, model: type[M]) -> list[M]:
        inst = self._get(instance)
        queries = list(inst.pack.for_dataset(dataset))
        if not queries:
            raise SourceError(f"{instance}: the {inst.pack.engine} query pack has no {dataset} query")
        first = inst.choice.get(dataset, 0)
        misses: list[DatasetUnavailable] = []
        for i in range(first, len(queries)):
            try:
                rows = self.run_query(instance, queries[i])
            except DatasetUnavailable as exc:
                misses.append(exc)
                continue
            inst.choice[dataset] = i
            with inst.lock:  # an earlier note on this dataset no longer holds
                inst.notes = [n for n in inst.notes if not n.startswith(f"{dataset}:")]
            return self._validate(inst, dataset, model, rows)
        inst.choice.pop(dataset, None)  # retry from the best alternative next time
        reason = "; ".join(str(m).removeprefix(f"{instance}: ") for m in misses)
        if any(q.optional for q in queries):
            note = f"{dataset}: empty, {reason}"
            with inst.lock:
                if note not in inst.notes:
                    inst.notes.append(note)
            log.warning("sql %s: %s", instance, note)
            return []
        needs = "; or ".join(dict.fromkeys(q.requires for q in queries if q.requires))
        raise SourceError(
            f"{instance}: cannot read {dataset} ({reason})" + (f"; needs {needs}" if needs else "")
        )

    def _validate(
        self, inst: _Instance, dataset: Dataset, model: type[M], rows: list[dict[str, Any]]
    ) -> list[M]:
        try:
            return [model.model_validate(r) for r in rows]
        except ValidationError as exc:  # a pack bug: say which pack and dataset
            log.error(
                "sql %s: the %s pack's %s rows do not validate: %s",
                inst.cfg.name,
                inst.pack.engine,
                dataset,
                exc,
            )
            raise SourceError(
                f"{inst.cfg.name}: the {inst.pack.engine} pack returned invalid {dataset} rows: "
                f"{exc.error_count()} errors, first: {exc.errors()[0]['loc']} {exc.errors()[0]['msg']}"
            ) from None

    def _execute(
        self, inst: _Instance, conn: pyodbc.Connection, sql: str, *, setup: bool = False
    ) -> list[dict[str, Any]]:
        """One statement on one connection, bounded by the client-side watchdog."""
        cursor = conn.cursor()
        fired = threading.Event()

        def cancel() -> None:
            fired.set()
            try:
                cursor.cancel()
            except pyodbc.Error as exc:
                log.warning("sql %s: cancelling a statement failed: %s", inst.cfg.name, classify(exc).message)

        watchdog = threading.Timer(inst.cfg.query_timeout_s + WATCHDOG_GRACE_S, cancel)
        watchdog.daemon = True
        watchdog.start()
        with inst.lock:
            if setup:
                inst.stats.setup_statements += 1
            else:
                inst.stats.queries += 1
        try:
            cursor.execute(sql)
            if cursor.description is None:
                return []
            columns = [str(d[0]).lower() for d in cursor.description]
            return [dict(zip(columns, map(_plain, row), strict=True)) for row in cursor.fetchmany(MAX_ROWS)]
        except pyodbc.Error as exc:
            if fired.is_set():
                raise _WatchdogTimeout(
                    f"cancelled by the client after {inst.cfg.query_timeout_s + WATCHDOG_GRACE_S:g} s"
                ) from exc
            raise
        finally:
            watchdog.cancel()
            with contextlib.suppress(pyodbc.Error):  # a cancelled statement's cursor may be gone already
                cursor.close()

    # --- connections ----------------------------------------------------------------------------

    def _instance(self, cfg: SqlInstanceConfig, pack: QueryPack) -> _Instance:
        inst = _Instance(
            cfg=cfg,
            pack=pack,
            breaker=CircuitBreaker(f"sql:{cfg.name}", cfg.breaker_failures, cfg.breaker_reset_s),
            pool=BoundedPool(f"sql:{cfg.name}", lambda: self._connect(inst), cfg.max_connections, _close),
            connection_string=self._connection_string(cfg),
            target=_target(cfg),
        )
        return inst

    def _login_timeout(self, cfg: SqlInstanceConfig) -> int:
        return math.ceil(self._login_timeout_s or max(3.0, cfg.query_timeout_s))

    def _acquire_timeout(self, inst: _Instance) -> float:
        """Long enough for the calls ahead of this one to finish or time out."""
        per_call = inst.cfg.query_timeout_s + WATCHDOG_GRACE_S
        return self._login_timeout(inst.cfg) + 3 * per_call

    def _connection_string(self, cfg: SqlInstanceConfig) -> str:
        if cfg.connection_string:
            parts = [cfg.connection_string.strip().rstrip(";")]
        else:
            assert cfg.driver and cfg.host  # SqlInstanceConfig guarantees one or the other
            server = cfg.host
            parts = [f"DRIVER={{{cfg.driver}}}"]
            if cfg.engine == "mssql":
                parts.append(f"SERVER={_odbc_value(server + (f',{cfg.port}' if cfg.port else ''))}")
            else:
                parts.append(f"SERVER={_odbc_value(server)}")
                if cfg.port:
                    parts.append(f"PORT={cfg.port}")
            if cfg.database:
                parts.append(f"DATABASE={_odbc_value(cfg.database)}")
            if cfg.username:
                parts.append(f"UID={_odbc_value(cfg.username)}")
        present = _keys(";".join(parts)) | {k.upper() for k in cfg.odbc_options}
        for key, value in self._engine_keywords(cfg).items():
            if key.upper() not in present:
                parts.append(f"{key}={_odbc_value(value)}")
        parts += [f"{k}={_odbc_value(v)}" for k, v in cfg.odbc_options.items()]
        if cfg.password is not None:
            parts.append("PWD=" + "{" + cfg.password.get_secret_value().replace("}", "}}") + "}")
        return ";".join(parts)

    def _engine_keywords(self, cfg: SqlInstanceConfig) -> dict[str, str]:
        """Driver keywords that bound time or name the copilot, where the driver has them."""
        driver = f"{cfg.driver or ''} {cfg.connection_string or ''}".lower()
        login = str(self._login_timeout(cfg))
        read = str(math.ceil(cfg.query_timeout_s + 2 * WATCHDOG_GRACE_S))  # after the watchdog
        if cfg.engine == "mssql":
            return {"APP": self.application_name}
        if cfg.engine == "mysql" and ("maria" in driver or "maodbc" in driver):
            # MariaDB Connector/ODBC ignores the login timeout during the handshake: bound it here
            return {"CONN_TIMEOUT": login, "READ_TIMEOUT": read, "WRITE_TIMEOUT": read}
        if cfg.engine == "mysql":  # MySQL Connector/ODBC
            return {"READTIMEOUT": read, "WRITETIMEOUT": read}
        return {}

    def _connect(self, inst: _Instance) -> pyodbc.Connection:
        cfg = inst.cfg
        conn = pyodbc.connect(inst.connection_string, autocommit=True, timeout=self._login_timeout(cfg))
        with inst.lock:
            inst.stats.connections_opened += 1
        try:
            try:
                conn.timeout = math.ceil(cfg.query_timeout_s)
            except pyodbc.Error:  # psqlodbc refuses it; the server-side limit and the watchdog remain
                log.debug("sql %s: the driver has no query timeout attribute", cfg.name)
            try:
                conn.set_attr(SQL_ATTR_ACCESS_MODE, SQL_MODE_READ_ONLY)
            except pyodbc.Error:
                log.debug(
                    "sql %s: the driver cannot set the connection read-only; the pack's setup does", cfg.name
                )
            values = {
                "timeout_ms": math.ceil(cfg.query_timeout_s * 1000),
                "timeout_s": cfg.query_timeout_s,
                "timeout_s_int": math.ceil(cfg.query_timeout_s),
                "application_name": self.application_name,
            }
            for statement in inst.pack.session_setup:
                sql = statement.format(**values)
                try:
                    self._execute(inst, conn, sql, setup=True)
                except pyodbc.Error as exc:
                    if classify(exc).kind != "missing":
                        raise
                    log.debug("sql %s: setup skipped, the server does not know it: %s", cfg.name, sql)
        except BaseException:
            _close(conn)
            raise
        return conn

    # --- errors ---------------------------------------------------------------------------------

    def _scrub(self, inst: _Instance, text: str) -> str:
        return scrub_secrets(text, inst.cfg)

    def _source_error(self, inst: _Instance, query: PackQuery, exc: BaseException) -> SourceError:
        f = classify(exc, lambda s: self._scrub(inst, s))
        name, what = inst.cfg.name, query.dataset
        if f.kind in ("denied", "missing"):
            needs = f"; needs {query.requires}" if query.requires else ""
            return DatasetUnavailable(f"{name}: {what}: {f.message}{needs}", f.kind, query)
        if f.kind == "timeout":
            return SourceError(
                f"{name}: {what} query timed out after {inst.cfg.query_timeout_s:g} s ({f.message})"
            )
        if f.kind == "driver":
            return SourceError(f"{name}: the ODBC driver cannot be loaded: {f.message}")
        if f.kind == "connection":
            return SourceError(f"{name} unreachable at {inst.target}: {f.message}")
        if f.kind in ("login", "database"):
            return SourceError(f"{name} refused the login at {inst.target}: {f.message}")
        return SourceError(f"{name}: {what} query failed: {f.message}")

    def _get(self, instance: str) -> _Instance:
        try:
            return self._instances[instance]
        except KeyError:
            known = ", ".join(sorted(self._instances)) or "none configured"
            raise SourceError(f"no SQL instance named {instance!r} (known: {known})") from None

    # --- doctor ---------------------------------------------------------------------------------

    def doctor(self) -> list[SourceCheck]:
        """One row per instance: reachable, login accepted, each dataset readable, latency, circuit."""
        return [self._check(inst) for inst in self._instances.values()]

    def _check(self, inst: _Instance) -> SourceCheck:
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
            with inst.pool.connection(self._acquire_timeout(inst), lambda exc: True) as (conn, _fresh):
                connected = row.reachable = row.authenticated = True
                started = time.monotonic()
                probe = self._execute(inst, conn, inst.pack.probe)
                row.latency_ms = round(1000 * (time.monotonic() - started), 1)
                details.append(f"latency {row.latency_ms:g} ms")
                missing = str((probe[0].get("missing_privileges") if probe else None) or "").strip()
                if missing:
                    row.permissions_ok = False
                    fixes.append(f"grant {missing} to {_login(cfg)}")
                counts = []
                for dataset in MODELS:
                    count, ok, fix = self._check_dataset(inst, conn, dataset)
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
        except (pyodbc.Error, _WatchdogTimeout) as exc:
            f = classify(exc, lambda s: self._scrub(inst, s))
            details.append(f.message)
            if connected:
                fixes.append(f"the server answered the login but not the checks ({f.kind}): {f.message}")
            else:
                _login_failure(row, f, cfg, fixes)
        details.append(inst.breaker.describe())
        row.detail = self._scrub(inst, "; ".join(details))
        row.fix = self._scrub(inst, "; ".join(fixes))
        return row

    def _check_dataset(
        self, inst: _Instance, conn: pyodbc.Connection, dataset: Dataset
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
                rows = q.to_rows(self._execute(inst, conn, q.sql))
                model = MODELS[dataset]
                for r in rows:
                    model.model_validate(r)
            except pyodbc.Error as exc:
                f = classify(exc, lambda s: self._scrub(inst, s))
                if f.kind == "timeout":
                    limit = inst.cfg.query_timeout_s
                    hint = (
                        f"{dataset} took longer than query_timeout_s ({limit:g} s): check the server's load"
                    )
                    return f"timed out after {limit:g} s", True, [*fixes, hint]
                if f.kind not in ("denied", "missing"):
                    raise
                problems.append((q, f.kind, f.message))
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
            fixes.append(
                f"{dataset} needs {q.requires}: {message}" if q.requires else f"{dataset}: {message}"
            )
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


def _plain(value: Any) -> Any:
    """ODBC values as plain Python: Decimal -> float, bytes -> hex."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes | bytearray):
        return value.hex()
    return value


def _close(conn: pyodbc.Connection) -> None:
    try:
        conn.close()
    except pyodbc.Error as exc:
        log.debug("closing an ODBC connection failed: %s", exc)


def _target(cfg: SqlInstanceConfig) -> str:
    """host:port for messages, never with credentials."""
    host, port = cfg.host, cfg.port
    if cfg.connection_string:
        kv = dict(
            (m.group(1).strip().upper(), m.group(2).strip().strip("{}"))
            for m in re.finditer(r"(?:^|;)\s*([^=;]+?)\s*=\s*(\{[^}]*\}|[^;]*)", cfg.connection_string)
        )
        host = host or kv.get("SERVER") or kv.get("HOST") or kv.get("ADDRESS") or kv.get("DSN")
        port = port or (int(kv["PORT"]) if kv.get("PORT", "").isdigit() else None)
    return f"{host or '?'}" + (f":{port}" if port else "")


_PWD_PATTERN = re.compile(r"(?i)\b(pwd|password)\s*=\s*(\{(?:[^}]|\}\})*\}|[^;]*)")


def scrub_secrets(text: str, cfg: SqlInstanceConfig) -> str:
    """The text without the instance's password or any PWD=... it might quote."""
    text = _PWD_PATTERN.sub(lambda m: f"{m.group(1)}=***", text)
    if cfg.password is not None and (secret := cfg.password.get_secret_value()):
        text = text.replace(secret, "***")
    return text
