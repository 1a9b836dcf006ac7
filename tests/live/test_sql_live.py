"""OdbcSql against the real PostgreSQL 15 and MariaDB 10.11 of this machine, through their ODBC drivers
(psqlodbc "PostgreSQL Unicode", MariaDB Connector/ODBC "MariaDB Unicode"), reading with the read-only
login opscopilot_ro that scripts/services.d creates. Real blocking chains, real timeouts, a real closed
port. Also, without servers: the ad-hoc SQL guard, the circuit breaker and the pool.
"""

from __future__ import annotations

import functools
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pyodbc
import pytest
from pydantic import SecretStr

from tests.live import unavailable
from tools.estate import SqlInstanceConfig
from tools.resilience import BoundedPool, CircuitBreaker, CircuitOpen, PoolTimeout
from tools.sources import SourceError, Sources, ToolContext
from tools.sql.guard import check_adhoc_sql
from tools.sql.live import OdbcSql, classify, scrub_secrets
from tools.sql.packs.base import PackQuery, QueryPack
from tools.sql.views import DATABASE_TOOLS, NEEDS, blocking_chains
from tools.world import FileRow, LogReuseRow, QueryStatRow, ReplicaRow, ServerRow, SessionRow, WaitRow

live = pytest.mark.live

HOST = "127.0.0.1"
PG_PORT, MARIA_PORT = 5432, 3306
RO_USER = "opscopilot_ro"
RO_PASSWORD = os.environ.get("TEST_RO_LOGIN_PASSWORD", "opscopilot-ro-dev")
PG, MARIA = "pg-live-01", "maria-live-01"
MARIA_ROOT = f"DRIVER={{MariaDB Unicode}};SERVER={HOST};PORT={MARIA_PORT};DATABASE=test;UID=root;PWD="


def pg_config(**overrides: Any) -> SqlInstanceConfig:
    fields: dict[str, Any] = {
        "name": PG,
        "engine": "postgresql",
        "driver": "PostgreSQL Unicode",
        "host": HOST,
        "port": PG_PORT,
        "database": "test",
        "username": RO_USER,
        "password": SecretStr(RO_PASSWORD),
    }
    return SqlInstanceConfig(**(fields | overrides))


def maria_config(**overrides: Any) -> SqlInstanceConfig:
    fields: dict[str, Any] = {
        "name": MARIA,
        "engine": "mysql",
        "driver": "MariaDB Unicode",
        "host": HOST,
        "port": MARIA_PORT,
        "username": RO_USER,
        "password": SecretStr(RO_PASSWORD),
    }
    return SqlInstanceConfig(**(fields | overrides))


def closed_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def context(source: OdbcSql) -> ToolContext:
    now = datetime.now(UTC)
    return ToolContext(
        sources=Sources(sql=source, label="live"),
        now=now,
        start=now - timedelta(hours=1),
        end=now,
        history_start=now - timedelta(days=7),
    )


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    """Poll every 0.25 s: InnoDB refreshes its information_schema.INNODB_* snapshot only when it was
    not read for 100 ms, so faster polling keeps reading a stale snapshot."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.25)
    pytest.fail(f"timed out after {timeout_s:g} s waiting for {what}")


# --- server fixtures ------------------------------------------------------------------------------


def pg_connect(app: str, autocommit: bool = True) -> psycopg.Connection[Any]:
    return psycopg.connect(
        host=HOST, port=PG_PORT, dbname="test", user="postgres", application_name=app,
        autocommit=autocommit, connect_timeout=3,
    )  # fmt: skip


@pytest.fixture(scope="module")
def pg_admin() -> Iterator[psycopg.Connection[Any]]:
    try:
        conn = pg_connect("opscopilot-live-admin")
    except psycopg.OperationalError as exc:
        unavailable(f"PostgreSQL at {HOST}:{PG_PORT}: {exc}")
    with conn:
        row = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (RO_USER,)).fetchone()
        if row is None:
            pytest.fail(f"login {RO_USER} is missing: run `bash scripts/services`")
        yield conn


@pytest.fixture
def pg_table(pg_admin: psycopg.Connection[Any]) -> Iterator[str]:
    name = f"opscopilot_live_{uuid.uuid4().hex[:8]}"
    pg_admin.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, v int NOT NULL)")
    pg_admin.execute(f"INSERT INTO {name} SELECT g, 0 FROM generate_series(1, 20) g")
    yield name
    pg_admin.execute("SET lock_timeout = '5s'")
    pg_admin.execute(f"DROP TABLE IF EXISTS {name}")


def maria_connect(autocommit: bool = True) -> pyodbc.Connection:
    return pyodbc.connect(MARIA_ROOT, autocommit=autocommit, timeout=3)


@pytest.fixture(scope="module")
def maria_admin() -> Iterator[pyodbc.Connection]:
    try:
        conn = maria_connect()
    except pyodbc.Error as exc:
        unavailable(f"MariaDB at {HOST}:{MARIA_PORT} through ODBC: {exc}")
    try:
        if not conn.execute("SELECT 1 FROM mysql.user WHERE user = ?", RO_USER).fetchall():
            pytest.fail(f"login {RO_USER} is missing: run `bash scripts/services`")
        yield conn
    finally:
        conn.close()


@pytest.fixture
def maria_table(maria_admin: pyodbc.Connection) -> Iterator[str]:
    name = f"opscopilot_live_{uuid.uuid4().hex[:8]}"
    maria_admin.execute(f"CREATE TABLE test.{name} (id INT PRIMARY KEY, v INT NOT NULL) ENGINE=InnoDB")
    maria_admin.execute(f"INSERT INTO test.{name} SELECT seq, 0 FROM seq_1_to_20")
    yield name
    maria_admin.execute("SET SESSION lock_wait_timeout = 5")
    maria_admin.execute(f"DROP TABLE IF EXISTS test.{name}")


@pytest.fixture
def source() -> Iterator[OdbcSql]:
    with OdbcSql([pg_config(), maria_config()]) as src:
        yield src


def run_quietly(execute: Callable[[], object], errors: list[BaseException]) -> threading.Thread:
    def run() -> None:
        try:
            execute()
        except Exception as exc:  # reported by the test, which owns the thread
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def release(blocker: Any, waiters: list[Any], threads: list[threading.Thread]) -> None:
    """End the blocking transaction, let the waiting statements finish, close every connection."""
    blocker.rollback()
    for t in threads:
        t.join(timeout=10)
    for c in (blocker, *waiters):
        c.close()


# --- blocking chains --------------------------------------------------------------------------------


@live
def test_pg_blocking_chain_names_head_blocker_its_client_and_the_waiters(
    pg_admin: psycopg.Connection[Any], pg_table: str, source: OdbcSql
) -> None:
    blocker = pg_connect("opscopilot-live-blocker", autocommit=False)
    waiters = [pg_connect("opscopilot-live-waiter") for _ in range(2)]
    threads: list[threading.Thread] = []
    errors: list[BaseException] = []
    try:
        blocker.execute(f"UPDATE {pg_table} SET v = v + 1 WHERE id = 1")  # then idle in transaction
        for w in waiters:
            w.execute("SET statement_timeout = '30s'")
            sql = f"UPDATE {pg_table} SET v = v + 2 WHERE id = 1"
            threads.append(run_quietly(functools.partial(w.execute, sql), errors))
        waiting = {w.info.backend_pid for w in waiters}

        def all_waiting() -> bool:
            rows = pg_admin.execute(
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid = ANY(%s)",
                (list(waiting),),
            ).fetchall()
            return {r[0] for r in rows} == waiting

        wait_until(all_waiting, "both UPDATEs to wait on the row lock")

        result = blocking_chains(context(source), PG)

        assert result.evidence[0].error is None
        chain = next(f for f in result.findings if f.kind == "blocking_chain")
        head_pid = blocker.info.backend_pid
        assert chain.data["head_session_id"] == head_pid
        assert f"head blocker session {head_pid}" in chain.title
        head = chain.data["head"]
        assert head["program_name"] == "opscopilot-live-blocker"
        assert head["host_name"] == HOST
        assert head["login_name"] == "postgres"
        assert head["idle_in_transaction"] is True
        assert set(chain.data["blocked_session_ids"]) == waiting
        assert any(b["blocked_by"] == head_pid for b in chain.data["blocked"])
        assert all(b["wait_type"].startswith("Lock:") for b in chain.data["blocked"])
        assert chain.remediation is not None and chain.remediation.action == "kill_session"
        assert str(head_pid) in chain.remediation.target
    finally:
        release(blocker, waiters, threads)
    assert not errors


@live
def test_mariadb_blocking_chain_names_head_thread_its_client_and_the_waiters(
    maria_admin: pyodbc.Connection, maria_table: str, source: OdbcSql
) -> None:
    blocker = maria_connect(autocommit=False)
    waiters = [maria_connect() for _ in range(2)]
    threads: list[threading.Thread] = []
    errors: list[BaseException] = []
    try:
        blocker.execute(f"UPDATE test.{maria_table} SET v = v + 1 WHERE id = 1")  # transaction left open
        head_id = blocker.execute("SELECT CONNECTION_ID()").fetchone()[0]
        waiting = set()
        for w in waiters:
            w.execute("SET SESSION innodb_lock_wait_timeout = 30")
            waiting.add(w.execute("SELECT CONNECTION_ID()").fetchone()[0])
            sql = f"UPDATE test.{maria_table} SET v = v + 2 WHERE id = 1"
            threads.append(run_quietly(functools.partial(w.execute, sql), errors))

        def all_waiting() -> bool:
            rows = maria_admin.execute(
                "SELECT trx_mysql_thread_id FROM information_schema.INNODB_TRX WHERE trx_state = 'LOCK WAIT'"
            ).fetchall()
            return {r[0] for r in rows} == waiting

        wait_until(all_waiting, f"threads {sorted(waiting)} to wait on the row lock")

        result = blocking_chains(context(source), MARIA)

        assert result.evidence[0].error is None
        chain = next(f for f in result.findings if f.kind == "blocking_chain")
        assert chain.data["head_session_id"] == head_id
        head = chain.data["head"]
        assert head["host_name"] == HOST
        assert head["login_name"] == "root"
        assert head["idle_in_transaction"] is True
        assert head["state"] == "sleeping with 1 open transaction"
        assert set(chain.data["blocked_session_ids"]) == waiting
        assert any(b["blocked_by"] == head_id for b in chain.data["blocked"])
        assert all(b["wait_type"] == "innodb row lock" for b in chain.data["blocked"])
        assert all(maria_table in (b["wait_resource"] or "") for b in chain.data["blocked"])
        assert chain.remediation is not None and str(head_id) in chain.remediation.target
    finally:
        release(blocker, waiters, threads)
    assert not errors


# --- timeouts -----------------------------------------------------------------------------------


def timed(fn: Callable[[], object]) -> tuple[float, BaseException | None]:
    started = time.monotonic()
    try:
        fn()
    except Exception as exc:
        return time.monotonic() - started, exc
    return time.monotonic() - started, None


@live
@pytest.mark.parametrize(
    ("config", "sleep_sql"),
    [(pg_config, "SELECT pg_sleep(10)"), (maria_config, "SELECT SLEEP(10) AS slept")],
    ids=["postgresql", "mariadb"],
)
def test_a_slow_query_is_stopped_after_the_3_s_timeout(
    request: pytest.FixtureRequest, config: Callable[[], SqlInstanceConfig], sleep_sql: str
) -> None:
    cfg = config()
    request.getfixturevalue("pg_admin" if cfg.engine == "postgresql" else "maria_admin")  # server up
    with OdbcSql([cfg]) as src:
        # connect first: time the query only
        src.run_query(cfg.name, PackQuery("sessions", "SELECT 1 AS one"))
        elapsed, exc = timed(lambda: src.run_query(cfg.name, PackQuery("sessions", sleep_sql)))

        assert isinstance(exc, SourceError)
        assert "timed out after 3 s" in str(exc)
        assert 2.8 <= elapsed < 3.8, elapsed  # the server-side limit, not the 10 s sleep
        assert src.circuit(cfg.name).state == "closed"  # one timeout is not an outage
        assert src.run_query(cfg.name, PackQuery("sessions", "SELECT 1 AS one")) == [{"one": 1}]


@live
def test_the_client_watchdog_cancels_when_no_server_side_limit_is_set(pg_admin: Any) -> None:
    cfg = pg_config(query_timeout_s=1.0)
    bare = QueryPack(engine="postgresql", queries=(), session_setup=())  # no statement_timeout
    with OdbcSql([cfg], packs={"postgresql": bare}) as src:
        elapsed, exc = timed(lambda: src.run_query(PG, PackQuery("sessions", "SELECT pg_sleep(10)")))

    assert isinstance(exc, SourceError) and "timed out" in str(exc)
    assert 1.8 <= elapsed < 3.0, elapsed  # query_timeout_s + 1 s of grace


# --- read-only ----------------------------------------------------------------------------------


@live
@pytest.mark.parametrize(
    ("config", "write"),
    [
        (lambda: pg_config(username="postgres"), "CREATE TABLE opscopilot_must_not_exist (x int)"),
        (
            lambda: maria_config(username="root", password=None),
            "CREATE TABLE test.opscopilot_must_not_exist (x INT)",
        ),
    ],
    ids=["postgresql", "mariadb"],
)
def test_the_session_is_read_only_even_for_an_over_privileged_login(
    request: pytest.FixtureRequest, config: Callable[[], SqlInstanceConfig], write: str
) -> None:
    cfg = config()
    request.getfixturevalue("pg_admin" if cfg.engine == "postgresql" else "maria_admin")  # server up
    with (
        OdbcSql([cfg]) as src,
        pytest.raises(SourceError, match=r"read-only transaction|READ ONLY transaction"),
    ):
        src.run_query(cfg.name, PackQuery("sessions", write))


# --- circuit breaker ----------------------------------------------------------------------------


@live
def test_the_circuit_opens_after_3_refused_connections_then_fails_fast_then_half_opens() -> None:
    cfg = pg_config(port=closed_port(), breaker_reset_s=1.0)
    with OdbcSql([cfg]) as src:
        for _ in range(3):
            with pytest.raises(SourceError, match=r"unreachable at 127\.0\.0\.1"):
                src.sessions(PG)
        assert src.circuit(PG).state == "open"

        elapsed, exc = timed(lambda: src.sessions(PG))
        assert isinstance(exc, SourceError)
        assert str(exc).startswith(f"{PG} skipped: circuit open after 3 connection failures (retry in ")
        assert elapsed < 0.05
        assert src.stats(PG).failures == 3  # the server was not tried again

        time.sleep(1.1)
        assert src.circuit(PG).state == "half-open"
        with pytest.raises(SourceError, match="unreachable"):  # the one trial call goes through
            src.sessions(PG)
        assert src.stats(PG).failures == 4
        assert src.circuit(PG).state == "open"


@live
def test_the_circuit_opens_after_3_timeouts_and_closes_after_a_good_trial_call(pg_admin: Any) -> None:
    cfg = pg_config(query_timeout_s=0.5, breaker_reset_s=1.0)
    slow = PackQuery("sessions", "SELECT pg_sleep(5)")
    with OdbcSql([cfg]) as src:
        for _ in range(3):
            with pytest.raises(SourceError, match="timed out"):
                src.run_query(PG, slow)
        with pytest.raises(SourceError, match=f"^{PG} skipped: circuit open after 3 timeouts"):
            src.run_query(PG, slow)

        time.sleep(1.1)
        assert src.circuit(PG).state == "half-open"
        assert src.run_query(PG, PackQuery("sessions", "SELECT 1 AS one")) == [{"one": 1}]
        assert src.circuit(PG).state == "closed"
        assert src.circuit(PG).describe() == "circuit closed"


# --- pool -----------------------------------------------------------------------------------------


@live
def test_a_pooled_connection_killed_on_the_server_is_replaced_without_failing_the_call(
    pg_admin: psycopg.Connection[Any], maria_admin: pyodbc.Connection
) -> None:
    own_id = PackQuery("sessions", "SELECT CONNECTION_ID() AS id")
    with OdbcSql(
        [pg_config(), maria_config()], application_name=f"opscopilot-kill-{uuid.uuid4().hex[:8]}"
    ) as src:
        src.files(PG)  # leaves one idle pooled connection per instance
        thread = src.run_query(MARIA, own_id)[0]["id"]
        pg_admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (src.application_name,),
        )
        maria_admin.execute(f"KILL {int(thread)}")

        for instance in (PG, MARIA):
            assert src.files(instance)
            stats = src.stats(instance)
            assert stats.connections_opened == 2 and stats.failures == 0
            assert src.circuit(instance).describe() == "circuit closed"


@live
def test_at_most_2_connections_per_instance_under_6_concurrent_calls(
    pg_admin: psycopg.Connection[Any],
) -> None:
    app = f"opscopilot-pool-{uuid.uuid4().hex[:8]}"
    seen: list[int] = []
    stop = threading.Event()

    def watch() -> None:
        with pg_connect("opscopilot-live-watch") as conn:
            while not stop.is_set():
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (app,)
                )
                seen.append(int(row.fetchone()[0]))  # type: ignore[index]
                time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    with OdbcSql([pg_config()], application_name=app) as src:
        watcher.start()
        slow = PackQuery("sessions", "SELECT pg_sleep(0.4) AS slept")
        with ThreadPoolExecutor(6) as pool:
            results = list(pool.map(lambda _: src.run_query(PG, slow), range(6)))
        stop.set()
        watcher.join(timeout=5)
        stats = src.stats(PG)

    assert len(results) == 6
    assert max(seen) == 2, seen  # server-side count: both pool connections used, never a third
    assert stats.connections_opened == 2
    assert stats.queries == 6


# --- datasets -------------------------------------------------------------------------------------


def assert_models(rows: list[Any], model: type[Any]) -> None:
    for r in rows:
        assert isinstance(r, model)
        model.model_validate(r.model_dump())


def read_everything(src: OdbcSql, instance: str) -> dict[str, list[Any]]:
    data: dict[str, list[Any]] = {
        "sessions": src.sessions(instance),
        "waits": src.waits(instance),
        "top_queries": src.top_queries(instance),
        "files": src.files(instance),
        "server": src.server(instance),
        "log_reuse": src.log_reuse(instance),
        "replicas": src.replicas(instance),
    }
    for ds, model in (
        ("sessions", SessionRow),
        ("waits", WaitRow),
        ("top_queries", QueryStatRow),
        ("files", FileRow),
        ("server", ServerRow),
        ("log_reuse", LogReuseRow),
        ("replicas", ReplicaRow),
    ):
        assert_models(data[ds], model)
    investigation(src, instance)
    return data


def investigation(src: OdbcSql, instance: str) -> list[Any]:
    """Every database tool the playbook plans, in one investigation (one ToolContext: shared reads)."""
    ctx = context(src)
    results = [t(ctx, instance) for t in DATABASE_TOOLS if set(NEEDS[t.spec.name]) <= src.datasets(instance)]
    for result in results:
        assert result.evidence[0].error is None, result.evidence[0].error
    return [f for r in results for f in r.findings]


@live
def test_every_postgresql_dataset_validates_and_top_queries_sees_the_workload(
    pg_admin: psycopg.Connection[Any], pg_table: str, source: OdbcSql
) -> None:
    # slow enough to rank among the top 50 statements by total time on a server other tests share
    # (their statements accumulate there: dozens already take seconds in total)
    for i in range(3):
        pg_admin.execute(f"SELECT pg_sleep(1.5), count(*) FROM {pg_table} WHERE v >= %s", (i,)).fetchall()
    pg_admin.execute(f"UPDATE {pg_table} SET v = v + 1 WHERE id <= 10")

    data = read_everything(source, PG)

    assert any(s.program_name == "opscopilot-live-admin" for s in data["sessions"])
    admin = next(s for s in data["sessions"] if s.program_name == "opscopilot-live-admin")
    assert admin.login_time and admin.login_time.endswith("Z")  # backend_start, in UTC
    # waits count only active client sessions: the idle admin's Client:ClientRead is not a wait
    assert not any(w.wait_type == "Client:ClientRead" for w in data["waits"])
    (server,) = data["server"][:1]
    assert server.platform == "PostgreSQL" and server.max_connections and server.xid_age is not None
    workload = [q for q in data["top_queries"] if pg_table in (q.sql_text or "")]
    assert workload and all(q.execution_count and q.total_elapsed_ms is not None for q in workload)
    assert all(q.baseline_avg_elapsed_ms is None for q in data["top_queries"])
    assert not any("opscopilot" in (q.sql_text or "") and "pg_stat_activity" in (q.sql_text or "")
                   for q in data["top_queries"])  # fmt: skip
    files = {(f.database_name, f.type) for f in data["files"]}
    assert ("test", "data") in files and ("all databases", "log") in files
    assert source.notes(PG) == []


@live
def test_every_mariadb_dataset_validates_and_digests_see_the_workload(
    maria_admin: pyodbc.Connection, maria_table: str, source: OdbcSql
) -> None:
    # Connector/ODBC sends SELECTs and statements with parameters as server-side prepared statements,
    # which MariaDB does not digest; other statements go over the text protocol and are digested.
    # SLEEP makes them rank among the top 50 digests by total time.
    for i in range(3):
        maria_admin.execute(f"UPDATE test.{maria_table} SET v = v + SLEEP(1.5) WHERE id = {i + 1}")

    data = read_everything(source, MARIA)

    assert any(s.login_name == "root" for s in data["sessions"])
    assert all(s.login_time for s in data["sessions"])  # the start of the session's current command
    assert data["waits"] and all(w.wait_type.startswith("wait/") for w in data["waits"])
    assert any(w.wait_type == "wait/lock/innodb/row_lock" for w in data["waits"])  # InnoDB's counter
    server = data["server"][0]
    assert (
        server.platform == "MariaDB"
        and server.history_list_length is not None
        and server.deadlocks is not None
    )
    assert [r.reason for r in data["log_reuse"]] == ["binary logging is off"]
    workload = [q for q in data["top_queries"] if maria_table in (q.sql_text or "")]
    assert workload and all(q.execution_count and q.last_execution_time for q in workload)
    assert not any("performance_schema" in (q.sql_text or "") for q in data["top_queries"])
    by_db = {f.database_name: f for f in data["files"] if f.type == "data"}
    assert "test" in by_db and by_db["test"].size_mb > 0
    redo = [f for f in data["files"] if f.type == "log"]
    assert len(redo) == 1 and redo[0].used_mb is not None and redo[0].max_size_mb == redo[0].size_mb
    assert redo[0].file_name == "ib_logfile0 (checkpoint age)"  # capacity: Innodb_checkpoint_max_age
    assert source.notes(MARIA) == []


@live
def test_one_investigation_costs_one_connection_and_at_most_12_queries(
    pg_admin: Any, maria_admin: Any
) -> None:
    # PostgreSQL: 7 datasets once each (waits are a snapshot). MariaDB: two wait samples, and on the first
    # investigation SHOW BINARY LOGS fails (binary logging is off here) and its fallback answers: 10.
    # The tools share what they read (sessions, server): 12 tools, one query per dataset.
    with OdbcSql([pg_config(), maria_config()], wait_sample_s=0.5) as src:
        for instance, queries, setup in ((PG, 7, 5), (MARIA, 10, 4)):
            investigation(src, instance)
            stats = src.stats(instance)
            assert stats.connections_opened == 1
            assert stats.queries == queries, stats
            assert stats.setup_statements == setup
            assert stats.seconds < 3.0
        investigation(src, MARIA)  # the fallback is remembered, the earlier wait sample kept: 8 more
        assert src.stats(MARIA).queries == 10 + 8


# --- doctor ---------------------------------------------------------------------------------------


@live
def test_doctor_is_ok_for_good_configs(pg_admin: Any, maria_admin: Any, source: OdbcSql) -> None:
    rows = source.doctor()

    assert [r.source for r in rows] == [f"sql:{PG}", f"sql:{MARIA}"]
    for r in rows:
        assert r.ok and r.permissions_ok is True and r.authenticated is True, r
        assert r.latency_ms is not None and r.latency_ms > 0
        assert r.circuit == "closed"
        assert r.fix == ""
        assert "sessions" in r.detail and "files" in r.detail
    assert rows[0].target == f"{HOST}:{PG_PORT}"


@live
def test_doctor_says_what_to_fix_for_a_wrong_password_and_an_unreachable_host(maria_admin: Any) -> None:
    secret = "wrong-Pa55;word}"
    bad_password = maria_config(name="maria-badpw", password=SecretStr(secret))
    unreachable = pg_config(name="pg-down", port=closed_port())
    with OdbcSql([bad_password, unreachable]) as src:
        login, down = src.doctor()
        with pytest.raises(SourceError) as raised:
            src.sessions("maria-badpw")

    assert login.reachable and login.authenticated is False and not login.ok
    assert "check username/password" in login.fix and RO_USER in login.fix
    assert down.reachable is False and not down.ok
    assert down.fix.startswith("check host/port; the server refused the connection")
    for text in (login.model_dump_json(), down.model_dump_json(), str(raised.value)):
        assert secret not in text and "wrong-Pa55" not in text


@live
def test_doctor_names_the_missing_grant(
    pg_admin: psycopg.Connection[Any], maria_admin: pyodbc.Connection
) -> None:
    role = f"opscopilot_live_{uuid.uuid4().hex[:6]}"
    pg_admin.execute(f"CREATE ROLE {role} LOGIN")
    maria_admin.execute(f"CREATE USER '{role}'@'127.0.0.1' IDENTIFIED BY '{RO_PASSWORD}'")
    maria_admin.execute(f"GRANT SELECT ON performance_schema.* TO '{role}'@'127.0.0.1'")  # but no PROCESS
    try:
        with OdbcSql([pg_config(username=role), maria_config(username=role)]) as src:
            pg_row, maria_row = src.doctor()
            with pytest.raises(SourceError, match=r"cannot read sessions .*needs PROCESS ON"):
                src.sessions(MARIA)
    finally:
        pg_admin.execute(f"DROP ROLE IF EXISTS {role}")
        maria_admin.execute(f"DROP USER IF EXISTS '{role}'@'127.0.0.1'")

    assert pg_row.reachable and pg_row.authenticated and pg_row.permissions_ok is False
    assert f"grant pg_read_all_stats to {role}" in pg_row.fix
    assert f"grant pg_monitor to {role}" in pg_row.fix  # the WAL size: files fall back to sizes only
    assert maria_row.permissions_ok is False
    assert f"grant PROCESS ON *.* to {role}" in maria_row.fix


# --- without servers: secrets, error classes, guard, breaker, pool -----------------------------------


def test_passwords_are_scrubbed_from_any_text() -> None:
    cfg = pg_config(password=SecretStr("s3cr3t;x}"))
    text = "failed: DRIVER={x};SERVER=h;PWD={s3cr3t;x}}};UID=u and later s3cr3t;x} again; password=abc"
    clean = scrub_secrets(text, cfg)
    assert "s3cr3t" not in clean and "abc" not in clean
    assert "PWD=***" in clean and "password=***" in clean


PG_EXEC, MA = "Error while executing the query (1) (SQLExecDirectW)", "[ma-3.1.15][10.11.19-MariaDB]"
ODBC_ERRORS = [  # (SQLSTATE, the driver's text, kind), as psqlodbc and MariaDB Connector/ODBC report them
    ("57014", f"[57014] ERROR: canceling statement due to statement timeout;\n{PG_EXEC}", "timeout"),
    ("HY018", f"[HY018] {MA}Query execution was interrupted (max_statement_time exceeded) (1969) "
     "(SQLExecDirectW)", "timeout"),
    ("08001", '[08001] connection to server at "127.0.0.1", port 5999 failed: Connection refused (101) '
     "(SQLDriverConnect)", "connection"),
    ("HY000", "[HY000] [ma-3.1.15]Can't connect to server on '127.0.0.1' (115) (2002) (SQLDriverConnect)",
     "connection"),
    ("28000", "[28000] [ma-3.1.15]Access denied for user 'x'@'127.0.0.1' (using password: YES) (1045) "
     "(SQLDriverConnect)", "login"),
    ("08001", '[08001] connection to server failed: FATAL:  password authentication failed for user "x" '
     "(101) (SQLDriverConnect)", "login"),
    ("42000", "[42000] [ma-3.1.15]Access denied for user 'x'@'127.0.0.1' to database 'test' (1044) "
     "(SQLDriverConnect)", "database"),
    ("01000", "[01000] [unixODBC][Driver Manager]Can't open lib 'Nope' : file not found (0) "
     "(SQLDriverConnect)", "driver"),
    ("42501", f"[42501] ERROR: permission denied for function pg_ls_waldir;\n{PG_EXEC}", "denied"),
    ("HY000", f"[HY000] {MA}Access denied; you need (at least one of) the PROCESS privilege(s) for this "
     "operation (1227) (SQLExecDirectW)", "denied"),
    ("42P01", f'[42P01] ERROR: relation "pg_stat_statements" does not exist;\n{PG_EXEC}', "missing"),
    ("HY000", f"[HY000] {MA}Unknown system variable 'max_execution_time' (1193) (SQLExecDirectW)", "missing"),
    ("42000", f"[42000] {MA}You have an error in your SQL syntax (1064) (SQLExecDirectW)", "error"),
]  # fmt: skip


@pytest.mark.parametrize(("sqlstate", "text", "kind"), ODBC_ERRORS)
def test_odbc_errors_are_classified_by_sqlstate_and_native_code(sqlstate: str, text: str, kind: str) -> None:
    failure = classify(pyodbc.Error(sqlstate, text))
    assert failure.kind == kind
    assert "(SQL" not in failure.message and not failure.message.startswith("[")


@pytest.mark.parametrize(
    ("engine", "sql"),
    [
        ("mssql", "SELECT r.session_id, t.text FROM sys.dm_exec_requests r "
                  "CROSS APPLY sys.dm_exec_sql_text(r.sql_handle) t WHERE r.blocking_session_id <> 0"),
        ("mssql", "SELECT wait_type, SUM(wait_time_ms) FROM sys.dm_os_wait_stats GROUP BY wait_type"),
        ("mssql", "SELECT database_id, name, size FROM tempdb.sys.master_files"),
        ("postgresql", "SELECT pid, now() - xact_start, pg_blocking_pids(pid) FROM pg_stat_activity "
                       "WHERE state = 'idle in transaction'"),
        ("postgresql", "SELECT l.pid, a.query FROM pg_locks l JOIN pg_catalog.pg_stat_activity a USING (pid) "
                       "WHERE NOT l.granted"),
        ("postgresql", "WITH s AS (SELECT queryid, calls FROM public.pg_stat_statements) "
                       "SELECT max(calls) FROM s"),
        ("postgresql", "SELECT datname, coalesce(blks_read, 0) FROM pg_stat_database "
                       "UNION ALL SELECT 'x', 1 FROM pg_locks"),
        ("mysql", "SELECT EVENT_NAME, SUM_TIMER_WAIT "
                  "FROM performance_schema.events_waits_summary_global_by_event_name"),
        ("mysql", "SELECT p.ID, t.trx_started FROM information_schema.PROCESSLIST p "
                  "JOIN information_schema.INNODB_TRX t ON t.trx_mysql_thread_id = p.ID"),
    ],
)  # fmt: skip
def test_guard_allows_one_select_over_system_views(engine: Any, sql: str) -> None:
    checked = check_adhoc_sql(sql, engine)
    assert checked.upper().startswith(("SELECT", "WITH"))


@pytest.mark.parametrize(
    ("engine", "sql", "reason"),
    [
        ("postgresql", "SELECT * FROM pg_stat_activity; DROP TABLE orders", "only one statement"),
        ("postgresql", "SELECT 1 FROM pg_locks /* ; DROP TABLE orders */", "comments are not allowed"),
        ("mysql", "SELECT * FROM performance_schema.threads /*!50000 , mysql.user */", "comments are not"),
        ("postgresql", "SELECT * FROM pg_locks -- hidden", "comments are not allowed"),
        ("postgresql", "DELETE FROM pg_stat_activity", "only SELECT is allowed, got DELETE"),
        ("postgresql", "WITH d AS (DELETE FROM orders RETURNING *) SELECT * FROM d", "DELETE is not allowed"),
        ("postgresql", "SELECT * INTO activity_copy FROM pg_stat_activity", "SELECT ... INTO is not"),
        ("mssql", "SELECT * INTO #sessions FROM sys.dm_exec_sessions", "SELECT ... INTO is not allowed"),
        ("postgresql", "SELECT * FROM pg_stat_activity FOR UPDATE", "locking clause"),
        ("postgresql", "SELECT pg_sleep(10)", "function pg_sleep is not allowed"),
        ("postgresql", "SELECT pg_terminate_backend(pid) FROM pg_stat_activity", "pg_terminate_backend"),
        ("postgresql", "SELECT set_config('transaction_read_only', 'off', false)", "function set_config"),
        ("mysql", "SELECT SLEEP(10) FROM information_schema.PROCESSLIST", "function sleep is not allowed"),
        ("mysql", "SELECT LOAD_FILE('/etc/passwd') FROM performance_schema.threads", "function load_file"),
        ("mssql", "SELECT * FROM OPENROWSET('SQLNCLI', 'server=x', 'SELECT 1')", "function openrowset"),
        ("postgresql", "SELECT * FROM orders", "table orders is not allowed"),
        ("postgresql", "SELECT (SELECT count(*) FROM payroll) FROM pg_stat_activity", "table payroll is not"),
        ("postgresql", "SELECT * FROM pg_authid", "table pg_authid is not allowed"),
        ("mysql", "SELECT * FROM mysql.user", "table mysql.user is not allowed"),
        ("mysql", "SELECT * FROM PROCESSLIST", "table PROCESSLIST is not allowed"),
        ("mssql", "SELECT * FROM sys.sql_logins", "table sys.sql_logins is not allowed"),
        ("mssql", "EXEC sp_who2", "only SELECT is allowed"),
        ("postgresql", "   ", "no SQL statement"),
        ("postgresql", "SELEC * FROM pg_locks", "could not parse"),
    ],
)  # fmt: skip
def test_guard_refuses_and_names_what_is_not_allowed(engine: Any, sql: str, reason: str) -> None:
    with pytest.raises(ValueError) as raised:
        check_adhoc_sql(sql, engine)
    assert reason in str(raised.value)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_n_failures_allows_one_trial_when_half_open_and_describes_itself() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("sql:x", failures=3, reset_s=30, clock=clock)
    breaker.record_failure("timeout")
    breaker.record_success()  # consecutive failures only
    for _ in range(3):
        breaker.before_call()
        breaker.record_failure("timeout")
    assert breaker.state == "open"
    clock.now += 3
    assert breaker.describe() == "circuit open after 3 timeouts (retry in 27 s)"
    with pytest.raises(CircuitOpen, match="circuit open after 3 timeouts"):
        breaker.before_call()

    clock.now += 27
    assert breaker.state == "half-open"
    breaker.before_call()  # the trial
    with pytest.raises(CircuitOpen, match="trial call is in progress"):
        breaker.before_call()
    breaker.record_failure("connection failure")
    assert breaker.state == "open"
    assert breaker.describe().startswith("circuit open after 4 failures")

    clock.now += 30
    breaker.before_call()
    breaker.record_success()
    assert breaker.state == "closed" and breaker.describe() == "circuit closed"


def test_pool_is_bounded_blocks_then_times_out_and_discards_broken_connections() -> None:
    made: list[int] = []
    closed: list[int] = []

    def make() -> int:
        made.append(len(made))
        return made[-1]

    pool: BoundedPool[int] = BoundedPool("t", make, 2, closed.append)
    a, fresh_a = pool.acquire(1)
    b, _ = pool.acquire(1)
    assert fresh_a and pool.in_use == 2
    with pytest.raises(PoolTimeout, match="all 2 connections busy"):
        pool.acquire(0.05)
    pool.release(a)
    again, fresh = pool.acquire(1)
    assert again == a and not fresh  # reused
    pool.release(again, broken=True)
    pool.release(b)
    assert closed == [a] and pool.opened == 2 and pool.idle == 1
    with pytest.raises(RuntimeError), pool.connection(1, broken=lambda exc: True) as (conn, _):
        raise RuntimeError("driver fell over")
    assert closed == [a, conn] and pool.in_use == 0
