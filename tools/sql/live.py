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
  the rows. The next one is tried when the server says an object, column, function or privilege
  is missing, or when `to_rows` raises SourceError (e.g. "performance_schema is off"); after a `variant`
  (a better but costlier alternative, e.g. top queries with the Query Store baseline) on ANY failure, a
  timeout included, and that failure does not count against the circuit breaker. The one that worked
  is remembered per instance (not after a variant's timeout: it is tried again next time). When none
  works: an `optional` dataset is empty (with a note in `notes(instance)`), otherwise SourceError naming
  what the queries `require`.
- Cumulative counters need an earlier sample: `wait_samples` keeps the previous wait sample per instance
  and, when there is none younger than `wait_sample_max_age_s`, takes two samples `wait_sample_s`
  apart; `server` returns the previous server sample with the new one.
- `probe` is the doctor's first statement; a column `missing_privileges` with text names what the login
  lacks although every query runs (e.g. pg_read_all_stats: other logins' statements stay hidden).

Read-only: only pack SQL (and `run_query` with a PackQuery) runs, in autocommit, on a connection set
read-only where the driver allows it and by the pack's session setup. Time limits: login timeout, the
driver's query timeout (`connection.timeout`) where the driver supports it, the server-side limit from
the pack's setup, and a watchdog that cancels a statement one second after query_timeout_s.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from decimal import Decimal
from typing import Any, TypeVar

import pyodbc
from pydantic import BaseModel, ValidationError

from tools.estate import SqlInstanceConfig
from tools.resilience import BoundedPool, CircuitBreaker, CircuitOpen, PoolTimeout, guarded_call
from tools.sources import SourceCheck, SourceError
from tools.sql.connect import (
    WATCHDOG_GRACE_S,
    app_name,
    close_connection,
    connection_string,
    login_timeout,
    target,
)
from tools.sql.doctor import MODELS, check_instance
from tools.sql.instance import OdbcInstance, SqlStats, default_pack
from tools.sql.odbc_errors import (
    BREAKER_KINDS,
    DatasetUnavailable,
    ErrorKind,
    OdbcFailure,
    WatchdogTimeout,
    classify,
    scrub_secrets,
    source_error,
)
from tools.sql.packs.base import Dataset, PackQuery, QueryPack
from tools.world import (
    DeadlockRow,
    Engine,
    FileRow,
    LogReuseRow,
    QueryStatRow,
    ReplicaRow,
    ServerRow,
    SessionRow,
    WaitRow,
    WaitSamples,
)

__all__ = [  # the split-out names stay importable from here
    "BREAKER_KINDS",
    "MAX_ROWS",
    "MODELS",
    "WATCHDOG_GRACE_S",
    "DatasetUnavailable",
    "ErrorKind",
    "OdbcFailure",
    "OdbcSql",
    "SqlStats",
    "classify",
    "default_pack",
    "scrub_secrets",
]

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)
MAX_ROWS = 10_000
SQL_ATTR_ACCESS_MODE, SQL_MODE_READ_ONLY = 101, 1


class OdbcSql:
    """SqlSource over ODBC for every configured instance (see the module docstring)."""

    def __init__(
        self,
        instances: list[SqlInstanceConfig],
        packs: dict[str, QueryPack] | None = None,
        *,
        application_name: str = "opscopilot",
        login_timeout_s: float | None = None,
        wait_sample_s: float = 2.0,
        wait_sample_max_age_s: float = 3600.0,
    ) -> None:
        # the pools below are the only pools: driver-manager pooling would keep connections we closed
        pyodbc.pooling = False
        self.application_name = app_name(application_name)
        self._login_timeout_s = login_timeout_s
        self.wait_sample_s = wait_sample_s  # 0: no second sample (totals since start, with a note)
        self.wait_sample_max_age_s = wait_sample_max_age_s
        self._instances: dict[str, OdbcInstance] = {}
        for cfg in instances:
            if cfg.name in self._instances:
                raise ValueError(f"sql: duplicate instance name {cfg.name!r}")
            pack = (packs or {}).get(cfg.engine) or default_pack(cfg.engine)
            self._instances[cfg.name] = self._instance(cfg, pack)

    # --- SqlSource ------------------------------------------------------------------------------

    def instances(self) -> dict[str, Engine]:
        return {name: inst.cfg.engine for name, inst in self._instances.items()}

    def datasets(self, instance: str) -> set[str]:
        return {q.dataset for q in self._get(instance).pack.queries}

    def sessions(self, instance: str) -> list[SessionRow]:
        return self._dataset(instance, "sessions", SessionRow)

    def waits(self, instance: str) -> list[WaitRow]:
        return self._dataset(instance, "waits", WaitRow)

    def wait_samples(self, instance: str) -> WaitSamples:
        """The waits now and an earlier sample: the one kept from the previous call when it is younger
        than wait_sample_max_age_s, else one taken now, `wait_sample_s` before the current one."""
        inst = self._get(instance)
        if not inst.pack.cumulative_waits:
            return WaitSamples(current=self.waits(instance))
        with inst.lock:
            kept = inst.kept.get("waits")
        if kept is None or time.monotonic() - kept[0] > self.wait_sample_max_age_s:
            if self.wait_sample_s <= 0:
                current = self.waits(instance)
                with inst.lock:
                    inst.kept["waits"] = (time.monotonic(), current)
                return WaitSamples(current=current)
            kept = (time.monotonic(), self.waits(instance))
        pause = self.wait_sample_s - (time.monotonic() - kept[0])
        if pause > 0:
            time.sleep(pause)
        current = self.waits(instance)
        taken = time.monotonic()
        with inst.lock:
            inst.kept["waits"] = (taken, current)
        return WaitSamples(current=current, earlier=kept[1], interval_s=round(taken - kept[0], 3))

    def top_queries(self, instance: str) -> list[QueryStatRow]:
        return self._dataset(instance, "top_queries", QueryStatRow)

    def files(self, instance: str) -> list[FileRow]:
        return self._dataset(instance, "files", FileRow)

    def server(self, instance: str) -> list[ServerRow]:
        """The instance-wide sample, then the previous one when this process took one (counter deltas)."""
        inst = self._get(instance)
        rows = self._dataset(instance, "server", ServerRow)[:1]
        with inst.lock:
            kept = inst.kept.get("server")
            if rows:
                inst.kept["server"] = (time.monotonic(), rows)
        return rows + (kept[1][:1] if kept and rows else [])

    def log_reuse(self, instance: str) -> list[LogReuseRow]:
        return self._dataset(instance, "log_reuse", LogReuseRow)

    def replicas(self, instance: str) -> list[ReplicaRow]:
        return self._dataset(instance, "replicas", ReplicaRow)

    def deadlocks(self, instance: str) -> list[DeadlockRow]:
        return self._dataset(instance, "deadlocks", DeadlockRow)

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
            raw = self._guarded(inst, query.sql, counts=not query.variant)
        except (CircuitOpen, PoolTimeout) as exc:
            raise SourceError(f"{inst.cfg.name} skipped: {exc}") from None
        except (pyodbc.Error, WatchdogTimeout) as exc:
            with inst.lock:
                inst.stats.failures += 1
            error = source_error(inst.cfg, inst.target, query, exc)
            if query.variant and not isinstance(error, DatasetUnavailable):
                kind = classify(exc).kind
                raise DatasetUnavailable(
                    str(error), "timeout" if kind == "timeout" else "error", query
                ) from None
            raise error from None
        finally:
            took = time.monotonic() - started
            with inst.lock:
                inst.stats.seconds += took
                if took > inst.stats.slowest_s:
                    inst.stats.slowest_s, inst.stats.slowest = took, query.dataset
        try:
            return query.to_rows(raw)
        except SourceError as exc:  # the pack says the feature is off (e.g. performance_schema)
            raise DatasetUnavailable(f"{inst.cfg.name}: {query.dataset}: {exc}", "missing", query) from None

    def _guarded(self, inst: OdbcInstance, sql: str, counts: bool = True) -> list[dict[str, Any]]:
        """Breaker, pool, statement. A pooled connection that turns out dead (the server restarted, a
        firewall dropped it) is replaced once, together with every other idle one. With `counts` False
        (a variant query) a failure does not count against the breaker."""
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
                    failure_kind=lambda exc: BREAKER_KINDS.get(classify(exc).kind) if counts else None,
                    # an ordinary SQL error of a variant is an answer: its connection stays usable
                    broken=lambda exc: (
                        classify(exc).kind
                        in (("timeout", "connection", "error") if counts else ("timeout", "connection"))
                    ),
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
            if queries[i].variant and dataset == "top_queries" and not inst.cfg.use_query_store:
                continue  # the instance asks not to read Query Store
            try:
                rows = self.run_query(instance, queries[i])
            except DatasetUnavailable as exc:
                misses.append(exc)
                continue
            if not any(m.kind == "timeout" for m in misses):  # a variant's timeout: try it again next time
                inst.choice[dataset] = i
            with inst.lock:  # an earlier note on this dataset no longer holds
                inst.notes = [n for n in inst.notes if not n.startswith(f"{dataset}:")]
                for m in misses:
                    if m.query.variant:
                        why = str(m).removeprefix(f"{instance}: ")
                        note = f"{dataset}: fell back from a variant ({m.kind}): {why}"
                        inst.notes.append(note)
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
        self, inst: OdbcInstance, dataset: Dataset, model: type[M], rows: list[dict[str, Any]]
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
        self, inst: OdbcInstance, conn: pyodbc.Connection, sql: str, *, setup: bool = False
    ) -> list[dict[str, Any]]:
        """One statement on one connection, bounded by the client-side watchdog."""
        cursor = conn.cursor()
        fired, finished = threading.Event(), threading.Event()
        guard = threading.Lock()  # cancel() and close() never overlap: the driver frees the handle on close

        def cancel() -> None:
            with guard:
                if finished.is_set():  # the statement ended as the timer fired: nothing to cancel
                    return
                fired.set()
                try:
                    cursor.cancel()
                except pyodbc.Error as exc:
                    message = classify(exc).message
                    log.warning("sql %s: cancelling a statement failed: %s", inst.cfg.name, message)

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
                raise WatchdogTimeout(
                    f"cancelled by the client after {inst.cfg.query_timeout_s + WATCHDOG_GRACE_S:g} s"
                ) from exc
            raise
        finally:
            watchdog.cancel()
            with guard:  # waits for a cancel() already running (Timer.cancel cannot stop it)
                finished.set()
            with contextlib.suppress(pyodbc.Error):  # a cancelled statement's cursor may be gone already
                cursor.close()

    # --- connections ----------------------------------------------------------------------------

    def _instance(self, cfg: SqlInstanceConfig, pack: QueryPack) -> OdbcInstance:
        inst = OdbcInstance(
            cfg=cfg,
            pack=pack,
            breaker=CircuitBreaker(f"sql:{cfg.name}", cfg.breaker_failures, cfg.breaker_reset_s),
            pool=BoundedPool(
                f"sql:{cfg.name}", lambda: self._connect(inst), cfg.max_connections, close_connection
            ),
            connection_string=connection_string(cfg, self.application_name, self._login_timeout_s),
            target=target(cfg),
        )
        return inst

    def _login_timeout(self, cfg: SqlInstanceConfig) -> int:
        return login_timeout(cfg, self._login_timeout_s)

    def _acquire_timeout(self, inst: OdbcInstance) -> float:
        """Long enough for the calls ahead of this one to finish or time out."""
        per_call = inst.cfg.query_timeout_s + WATCHDOG_GRACE_S
        return self._login_timeout(inst.cfg) + 3 * per_call

    def _connect(self, inst: OdbcInstance) -> pyodbc.Connection:
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
            close_connection(conn)
            raise
        return conn

    # --- errors ---------------------------------------------------------------------------------

    def _get(self, instance: str) -> OdbcInstance:
        try:
            return self._instances[instance]
        except KeyError:
            known = ", ".join(sorted(self._instances)) or "none configured"
            raise SourceError(f"no SQL instance named {instance!r} (known: {known})") from None

    # --- doctor ---------------------------------------------------------------------------------

    def doctor(self) -> list[SourceCheck]:
        """One row per instance: reachable, login accepted, each dataset readable, latency, circuit."""
        return [check_instance(i, self._execute, self._acquire_timeout(i)) for i in self._instances.values()]


def _plain(value: Any) -> Any:
    """ODBC values as plain Python: Decimal -> float, bytes -> hex."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes | bytearray):
        return value.hex()
    return value
