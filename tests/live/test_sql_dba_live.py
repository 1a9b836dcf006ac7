"""The DBA's first questions against real servers: a PRIVATE PostgreSQL 15 and MariaDB 10.11 started from
temporary directories on free ports (tests/live/private_servers.py) - low max_connections, prepared
transactions and a replication slot holding WAL must never be done to the shared servers - read through
OdbcSql and the real ODBC drivers with the read-only login of docs/readonly-logins.md. Each test
produces its situation and asserts the finding the view tool makes of it.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Self

import psycopg
import pyodbc
import pytest
from pydantic import SecretStr

from tests.live import unavailable
from tests.live.private_servers import (
    HOST,
    RO_PASSWORD,
    RO_USER,
    PrivateMariaDB,
    PrivatePostgres,
    Unavailable,
    private_mariadb,
    private_postgres,
)
from tests.live.test_sql_live import wait_until
from tools.base import Finding, Severity
from tools.estate import SqlInstanceConfig
from tools.sources import Sources, ToolContext
from tools.sql import views
from tools.sql.live import OdbcSql

pytestmark = pytest.mark.live
PG, MARIA = "pg-private", "maria-private"
SAMPLE_S = 0.5


@pytest.fixture(scope="module")
def pg_server() -> Iterator[PrivatePostgres]:
    try:
        with private_postgres(
            max_connections=20, max_prepared_transactions=5, deadlock_timeout="200ms"
        ) as server:
            server.psql(
                "CREATE TABLE dbdiag_t (id int PRIMARY KEY, v int NOT NULL);"
                " INSERT INTO dbdiag_t SELECT g, 0 FROM generate_series(1, 20) g"
            )
            yield server
    except Unavailable as exc:
        unavailable(f"private PostgreSQL: {exc}")


@pytest.fixture(scope="module")
def maria_server() -> Iterator[PrivateMariaDB]:
    try:
        with private_mariadb(max_connections=20) as server:
            rows = ", ".join(f"({i}, 0)" for i in range(1, 21))
            server.sql(
                f"CREATE TABLE dbdiag.t (id INT PRIMARY KEY, v INT NOT NULL) ENGINE=InnoDB;"
                f" INSERT INTO dbdiag.t VALUES {rows}"
            )
            yield server
    except Unavailable as exc:
        unavailable(f"private MariaDB: {exc}")


def pg_source(server: PrivatePostgres) -> OdbcSql:
    cfg = SqlInstanceConfig(
        name=PG,
        engine="postgresql",
        driver="PostgreSQL Unicode",
        host=HOST,
        port=server.port,
        database="postgres",
        username=RO_USER,
        password=SecretStr(RO_PASSWORD),
    )
    return OdbcSql([cfg], wait_sample_s=SAMPLE_S)


def maria_source(server: PrivateMariaDB) -> OdbcSql:
    cfg = SqlInstanceConfig(
        name=MARIA,
        engine="mysql",
        driver="MariaDB Unicode",
        host=HOST,
        port=server.port,
        username=RO_USER,
        password=SecretStr(RO_PASSWORD),
    )
    return OdbcSql([cfg], wait_sample_s=SAMPLE_S)


def investigate(src: OdbcSql, tool: Any, instance: str) -> list[Finding]:
    """One tool in a fresh investigation (its own ToolContext, so nothing is shared with an earlier one)."""
    now = datetime.now(UTC)
    ctx = ToolContext(
        sources=Sources(sql=src, label="live"),
        now=now,
        start=now - timedelta(hours=1),
        end=now,
        history_start=now - timedelta(days=7),
    )
    result = tool(ctx, instance)
    assert all(e.error is None for e in result.evidence), [e.error for e in result.evidence]
    return list(result.findings)


def one(findings: list[Finding], kind: str) -> Finding:
    found = [f for f in findings if f.kind == kind]
    assert found, f"no {kind} among {[(f.kind, f.title) for f in findings]}"
    return found[0]


def background(fn: Callable[[], object], errors: list[BaseException]) -> threading.Thread:
    def run() -> None:
        try:
            fn()
        except Exception as exc:  # most are the expected end of a wait (rollback, deadlock victim)
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    THREADS.append(thread)
    return thread


# --- PostgreSQL ---------------------------------------------------------------------------------------


def pg_conn(server: PrivatePostgres, app: str, autocommit: bool = True) -> psycopg.Connection[Any]:
    return psycopg.connect(
        host=HOST,
        port=server.port,
        dbname="postgres",
        user="postgres",
        application_name=app,
        autocommit=autocommit,
        connect_timeout=5,
    )


def pg_waiting(server: PrivatePostgres, apps: set[str]) -> bool:
    names = ",".join(f"'{a}'" for a in apps)
    return server.psql(
        f"SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
        f"AND application_name IN ({names})"
    ) == str(len(apps))


THREADS: list[threading.Thread] = []  # the current test's background statements


@contextlib.contextmanager
def pg_sessions(server: PrivatePostgres) -> Iterator[list[psycopg.Connection[Any]]]:
    """Connections the test opens; at the end their backends are terminated on the server first, so a
    statement still running in a background thread ends before its connection is closed."""
    opened: list[psycopg.Connection[Any]] = []
    try:
        yield opened
    finally:
        pids = [c.info.backend_pid for c in opened if not c.closed]
        if pids:
            server.psql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                f" WHERE pid IN ({','.join(map(str, pids))})"
            )
        for t in THREADS:
            t.join(timeout=10)
        THREADS.clear()
        for c in opened:
            with contextlib.suppress(Exception):
                c.close()


def test_pg_idle_connections_and_a_lock_wait_locks_lead_the_wait_profile(pg_server: PrivatePostgres) -> None:
    errors: list[BaseException] = []
    with pg_sessions(pg_server) as opened, pg_source(pg_server) as src:
        opened += [pg_conn(pg_server, f"dbdiag-idle-{i}") for i in range(8)]  # idle: Client:ClientRead
        holder = pg_conn(pg_server, "dbdiag-holder", autocommit=False)
        opened.append(holder)
        holder.execute("UPDATE dbdiag_t SET v = v + 1 WHERE id = 1")
        threads = []
        for i in range(2):
            waiter = pg_conn(pg_server, f"dbdiag-waiter-{i}")
            opened.append(waiter)
            threads.append(
                background(
                    functools.partial(waiter.execute, "UPDATE dbdiag_t SET v = 2 WHERE id = 1"), errors
                )
            )
        wait_until(
            lambda: pg_waiting(pg_server, {"dbdiag-waiter-0", "dbdiag-waiter-1"}), "both UPDATEs to wait"
        )
        time.sleep(1.0)

        (profile,) = investigate(src, views.wait_profile, PG)
        holder.rollback()

    p = profile.data
    assert p["dominant_cause"] == "locks", profile.title
    assert p["basis"] == "snapshot" and "active sessions only" in profile.detail
    assert not any(w["wait_type"] == "Client:ClientRead" for w in p["waits"])  # 8 idle sessions left out
    # the first waiter waits on the holder's transaction id, the second on the row's tuple lock
    locks = [w for w in p["waits"] if w["wait_type"].startswith("Lock:")]
    assert sum(w["waiting_tasks_count"] for w in locks) == 2
    assert all(w["wait_time_ms"] >= 900 for w in locks)  # from pg_locks.waitstart, not the sessions' ages


def test_pg_two_blockers_of_one_waiter_are_both_named(pg_server: PrivatePostgres) -> None:
    errors: list[BaseException] = []
    with pg_sessions(pg_server) as opened, pg_source(pg_server) as src:
        holders = [pg_conn(pg_server, f"dbdiag-share-{i}", autocommit=False) for i in range(2)]
        opened += holders
        for h in holders:
            h.execute("LOCK TABLE dbdiag_t IN SHARE MODE")
        waiter = pg_conn(pg_server, "dbdiag-writer")
        opened.append(waiter)
        background(lambda: waiter.execute("UPDATE dbdiag_t SET v = 3 WHERE id = 2"), errors)
        wait_until(lambda: pg_waiting(pg_server, {"dbdiag-writer"}), "the UPDATE to wait on both SHARE locks")

        pids = {h.info.backend_pid for h in holders}
        writer_pid = waiter.info.backend_pid
        findings = investigate(src, views.blocking_chains, PG)

    chains = [f for f in findings if f.kind == "blocking_chain"]
    assert {c.data["head_session_id"] for c in chains} == pids
    (blocked,) = chains[0].data["blocked"]
    assert blocked["session_id"] == writer_pid
    assert set(blocked["blockers"]) == {str(p) for p in pids} and blocked["lock_mode"] == "RowExclusiveLock"
    assert "they stay blocked until every holder ends" in chains[0].detail


def test_pg_prepared_transaction_is_named_as_the_head_and_never_killed(pg_server: PrivatePostgres) -> None:
    errors: list[BaseException] = []
    gid = "dbdiag-gx-1"
    with pg_sessions(pg_server) as opened, pg_source(pg_server) as src:
        preparer = pg_conn(pg_server, "dbdiag-preparer", autocommit=False)
        preparer.execute("UPDATE dbdiag_t SET v = v + 1 WHERE id = 3")
        preparer.execute(f"PREPARE TRANSACTION '{gid}'")
        preparer.close()
        try:
            waiter = pg_conn(pg_server, "dbdiag-after-prepared")
            opened.append(waiter)
            background(lambda: waiter.execute("UPDATE dbdiag_t SET v = 4 WHERE id = 3"), errors)
            wait_until(
                lambda: pg_waiting(pg_server, {"dbdiag-after-prepared"}),
                "the UPDATE to wait on the prepared xact",
            )

            findings = investigate(src, views.blocking_chains, PG)
            holders = investigate(src, views.version_store_holders, PG)
        finally:
            pg_server.psql(f"ROLLBACK PREPARED '{gid}'")

    chain = one(findings, "blocking_chain")
    assert (
        chain.title
        == f"Blocking chain on {PG}: the head blocker is prepared transaction '{gid}', blocking 1 session"
    )
    assert chain.remediation is None and "ROLLBACK PREPARED" in chain.detail
    assert chain.data["head_holder"]["since"]  # its prepare time
    assert (
        one(holders, "version_store_held").title.endswith(f"prepared transaction '{gid}'")
        or gid in holders[0].detail
    )


def test_pg_deadlocks_are_counted_since_the_last_sample(pg_server: PrivatePostgres) -> None:
    errors: list[BaseException] = []
    with pg_sessions(pg_server) as opened, pg_source(pg_server) as src:
        investigate(src, views.deadlocks, PG)  # the earlier sample the next investigation compares with
        a, b = pg_conn(pg_server, "dbdiag-dl-a", False), pg_conn(pg_server, "dbdiag-dl-b", False)
        opened += [a, b]
        a.execute("UPDATE dbdiag_t SET v = 1 WHERE id = 10")
        b.execute("UPDATE dbdiag_t SET v = 1 WHERE id = 11")
        t = background(lambda: a.execute("UPDATE dbdiag_t SET v = 1 WHERE id = 11"), errors)
        time.sleep(0.3)
        with contextlib.suppress(psycopg.errors.DeadlockDetected):
            b.execute("UPDATE dbdiag_t SET v = 1 WHERE id = 10")
        t.join(timeout=10)
        a.rollback()
        b.rollback()
        # backends flush their statistics (the deadlock counter) at transaction end at most once a second,
        # else when they have been idle for 10 s
        wait_until(
            lambda: pg_server.psql("SELECT sum(deadlocks) FROM pg_stat_database") != "0", "the counter", 30
        )

        (f,) = investigate(src, views.deadlocks, PG)

    assert any(isinstance(e, psycopg.errors.DeadlockDetected) for e in errors) or f.data["since_last"] >= 1
    assert f.severity is Severity.WARNING and f.title == f"Deadlocks on {PG}: 1 since the last sample"
    assert "only to its server log" in f.detail


def test_pg_replication_slot_holding_wal(pg_server: PrivatePostgres) -> None:
    pg_server.psql("SELECT pg_create_physical_replication_slot('dbdiag_standby', true)")
    try:
        pg_server.psql(
            "CREATE TABLE dbdiag_wal AS SELECT g AS id, repeat('x', 100) AS pad"
            " FROM generate_series(1, 600000) g;"
            " DROP TABLE dbdiag_wal; SELECT pg_switch_wal()"
        )
        with pg_source(pg_server) as src:
            findings = investigate(src, views.log_reuse, PG)
    finally:
        pg_server.psql("SELECT pg_drop_replication_slot('dbdiag_standby')")
    f = one(findings, "log_reuse_blocked")
    assert (
        f.severity is Severity.WARNING and "WAL on pg-private cannot be reused by dbdiag_standby" in f.title
    )
    assert f.data["active"] is False and f.data["used_mb"] >= 64 and "consumer is gone" in f.detail


def test_pg_connections_near_max_connections(pg_server: PrivatePostgres) -> None:
    with pg_sessions(pg_server) as opened, pg_source(pg_server) as src:
        opened += [pg_conn(pg_server, f"dbdiag-pool-{i}") for i in range(14)]  # + the copilot's = 15 of 17
        (f,) = investigate(src, views.connection_saturation, PG)
    assert f.kind == "connection_saturation" and f.severity is Severity.WARNING
    assert f.title == "Connections on pg-private near the maximum: 15 of 17 (88%)"
    assert "Idle connections by application" in f.detail


# --- MariaDB ------------------------------------------------------------------------------------------------


def maria_conn(server: PrivateMariaDB, autocommit: bool = True) -> pyodbc.Connection:
    return pyodbc.connect(
        f"DRIVER={{MariaDB Unicode}};SERVER={HOST};PORT={server.port};DATABASE=dbdiag;UID=root;PWD=",
        autocommit=autocommit,
        timeout=5,
    )


def maria_lock_waiters(server: PrivateMariaDB) -> int:
    return int(server.sql("SELECT COUNT(*) FROM information_schema.INNODB_TRX WHERE trx_state = 'LOCK WAIT'"))


def maria_waiting(server: PrivateMariaDB, conn: pyodbc.Connection) -> Callable[[], bool]:
    thread = int(conn.execute("SELECT CONNECTION_ID()").fetchone()[0])
    sql = (
        "SELECT COUNT(*) FROM information_schema.INNODB_TRX"
        f" WHERE trx_state = 'LOCK WAIT' AND trx_mysql_thread_id = {thread}"
    )
    return lambda: server.sql(sql) == "1"


@contextlib.contextmanager
def maria_sessions(server: PrivateMariaDB) -> Iterator[_Tracked]:
    """As pg_sessions: KILL on the server first (Connector/ODBC aborts the process when a handle is closed
    while another thread runs a statement on it), then join the background statements, then close."""
    opened: list[pyodbc.Connection] = []
    ids: list[int] = []

    def track(conn: pyodbc.Connection) -> pyodbc.Connection:
        ids.append(int(conn.execute("SELECT CONNECTION_ID()").fetchone()[0]))
        return conn

    opened_track = _Tracked(opened, track)
    try:
        yield opened_track
    finally:
        for i in ids:
            with contextlib.suppress(Exception):
                server.sql(f"KILL {i}")
        for t in THREADS:
            t.join(timeout=10)
        THREADS.clear()
        for c in opened:
            with contextlib.suppress(pyodbc.Error):
                c.close()


class _Tracked:
    """The opened connections as the tests add them (`append`, `+=`): each goes into the backing list
    with its server-side id recorded."""

    def __init__(
        self, backing: list[pyodbc.Connection], track: Callable[[pyodbc.Connection], pyodbc.Connection]
    ):
        self._backing, self._track = backing, track

    def append(self, conn: pyodbc.Connection) -> None:
        self._backing.append(self._track(conn))

    def __iadd__(self, conns: Iterable[pyodbc.Connection]) -> Self:
        for c in conns:
            self.append(c)
        return self


def test_mariadb_idle_connections_and_a_row_lock_wait_locks_lead_the_wait_profile(
    maria_server: PrivateMariaDB,
) -> None:
    errors: list[BaseException] = []
    with maria_sessions(maria_server) as opened, maria_source(maria_server) as src:
        opened += [maria_conn(maria_server) for _ in range(8)]  # idle: no waits
        holder = maria_conn(maria_server, autocommit=False)
        opened.append(holder)
        holder.execute("UPDATE t SET v = v + 1 WHERE id = 1")
        for _ in range(2):
            w = maria_conn(maria_server)
            opened.append(w)
            w.execute("SET SESSION innodb_lock_wait_timeout = 30")
            background(functools.partial(w.execute, "UPDATE t SET v = 2 WHERE id = 1"), errors)
        wait_until(lambda: maria_lock_waiters(maria_server) == 2, "both UPDATEs to wait on the row lock")

        (profile,) = investigate(src, views.wait_profile, MARIA)
        chains = investigate(src, views.blocking_chains, MARIA)
        holder.rollback()

    p = profile.data
    assert p["basis"] == "delta" and p["dominant_cause"] == "locks", profile.title
    row_lock = next(w for w in p["waits"] if w["wait_type"] == "wait/lock/innodb/row_lock")
    assert row_lock["label"] == "InnoDB row lock waits"
    assert row_lock["wait_time_ms"] >= 0.8 * 2 * SAMPLE_S * 1000  # two waiters for the whole sample
    chain = one(chains, "blocking_chain")
    assert all(b["wait_type"] == "innodb row lock" and b["lock_mode"] == "X" for b in chain.data["blocked"])


def test_mariadb_two_blockers_of_one_waiter_are_both_named(maria_server: PrivateMariaDB) -> None:
    errors: list[BaseException] = []
    with maria_sessions(maria_server) as opened, maria_source(maria_server) as src:
        readers = [maria_conn(maria_server, autocommit=False) for _ in range(2)]
        opened += readers
        for r in readers:
            r.execute("SELECT v FROM t WHERE id = 2 LOCK IN SHARE MODE").fetchall()
        ids = {r.execute("SELECT CONNECTION_ID()").fetchone()[0] for r in readers}
        writer = maria_conn(maria_server)
        opened.append(writer)
        waiting = maria_waiting(maria_server, writer)
        background(lambda: writer.execute("UPDATE t SET v = 5 WHERE id = 2"), errors)
        wait_until(waiting, "the UPDATE to wait on two shared locks")

        findings = investigate(src, views.blocking_chains, MARIA)
        for r in readers:
            r.rollback()

    chains = [f for f in findings if f.kind == "blocking_chain"]
    assert {c.data["head_session_id"] for c in chains} == ids
    (blocked,) = chains[0].data["blocked"]
    assert set(blocked["blockers"]) == {str(i) for i in ids} and blocked["held_mode"] == "S"


def test_mariadb_prepared_xa_transaction_is_named_and_never_killed(maria_server: PrivateMariaDB) -> None:
    errors: list[BaseException] = []
    xid = "dbdiag_xa_1"
    with maria_sessions(maria_server) as opened, maria_source(maria_server) as src:
        preparer = maria_conn(maria_server)
        for statement in (
            f"XA START '{xid}'",
            "UPDATE t SET v = 9 WHERE id = 4",
            f"XA END '{xid}'",
            f"XA PREPARE '{xid}'",
        ):
            preparer.execute(statement)
        preparer.close()  # the prepared transaction outlives its connection (thread id 0)
        try:
            waiter = maria_conn(maria_server)
            opened.append(waiter)
            waiting = maria_waiting(maria_server, waiter)
            background(lambda: waiter.execute("UPDATE t SET v = 10 WHERE id = 4"), errors)
            wait_until(waiting, "the UPDATE to wait on the XA transaction")
            findings = investigate(src, views.blocking_chains, MARIA)
        finally:
            maria_server.sql(f"XA ROLLBACK '{xid}'")
    chain = one(findings, "blocking_chain")
    assert "the head blocker is prepared transaction 'XA trx " in chain.title and chain.remediation is None
    assert "XA ROLLBACK" in chain.detail


def test_mariadb_deadlock_count_and_latest_graph(maria_server: PrivateMariaDB) -> None:
    errors: list[BaseException] = []
    with maria_sessions(maria_server) as opened, maria_source(maria_server) as src:
        investigate(src, views.deadlocks, MARIA)  # the earlier sample
        a, b = maria_conn(maria_server, False), maria_conn(maria_server, False)
        opened += [a, b]
        a.execute("UPDATE t SET v = 1 WHERE id = 10")
        b.execute("UPDATE t SET v = 1 WHERE id = 11")
        t = background(lambda: a.execute("UPDATE t SET v = 1 WHERE id = 11"), errors)
        time.sleep(0.3)
        with contextlib.suppress(pyodbc.Error):
            b.execute("UPDATE t SET v = 1 WHERE id = 10")
        t.join(timeout=10)
        a.rollback()
        b.rollback()
        (f,) = investigate(src, views.deadlocks, MARIA)
    assert f.severity is Severity.WARNING and f.title == f"Deadlocks on {MARIA}: 1 since the last sample"
    latest = f.data["latest"]
    assert len(latest["parties"]) == 2 and sum(p["victim"] for p in latest["parties"]) == 1
    assert all("`dbdiag`.`t`" in (p["waits_for"] or "") for p in latest["parties"])
    assert "UPDATE t SET v = 1 WHERE id = 1" in f.detail


def test_mariadb_connections_near_max_connections(maria_server: PrivateMariaDB) -> None:
    with maria_sessions(maria_server) as opened, maria_source(maria_server) as src:
        opened += [maria_conn(maria_server) for _ in range(16)]  # + the copilot's = 17 of 20
        (f,) = investigate(src, views.connection_saturation, MARIA)
    assert f.kind == "connection_saturation" and f.severity is Severity.WARNING
    assert f.title == f"Connections on {MARIA} near the maximum: 17 of 20 (85%)"


def test_mariadb_binary_logs_and_redo_are_read(maria_server: PrivateMariaDB) -> None:
    with maria_source(maria_server) as src:
        reuse = investigate(src, views.log_reuse, MARIA)
        files = investigate(src, views.files_and_space, MARIA)
        rows = src.files(MARIA)
    assert one(reuse, "log_reuse_ok")
    redo = next(r for r in rows if r.type == "log")
    assert redo.file_name == "ib_logfile0 (checkpoint age)" and redo.max_size_mb and redo.max_size_mb < 48
    assert one(files, "file_capacity_unknown") or one(files, "file_space_ok")


# --- a 60 s statement ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_60_s_statement_is_long_running_on_both_engines(
    pg_server: PrivatePostgres, maria_server: PrivateMariaDB
) -> None:
    errors: list[BaseException] = []
    pg = pg_conn(pg_server, "dbdiag-report")
    maria = maria_conn(maria_server)
    try:
        background(lambda: pg.execute("SELECT pg_sleep(75)"), errors)
        background(lambda: maria.execute("SELECT SLEEP(75)").fetchall(), errors)
        time.sleep(61)
        with pg_source(pg_server) as psrc, maria_source(maria_server) as msrc:
            pg_found = investigate(psrc, views.long_running_statements, PG)
            maria_found = investigate(msrc, views.long_running_statements, MARIA)
    finally:
        pg.cancel()
        pg_server.psql(
            "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'dbdiag-report'"
        )
        for thread in maria_server.sql(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE 'SELECT SLEEP(75)%'"
        ).split():
            maria_server.sql(f"KILL QUERY {int(thread)}")
        for c in (pg, maria):
            with contextlib.suppress(Exception):
                c.close()
    for instance, found, text in ((PG, pg_found, "pg_sleep"), (MARIA, maria_found, "SLEEP")):
        f = one(found, "long_running_statement")
        assert f.severity is Severity.WARNING and f"Long-running statement on {instance}: session" in f.title
        assert f.data["elapsed_ms"] >= 60_000 and text in f.detail
