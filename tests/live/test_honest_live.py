"""Issue 7's questions against the real PostgreSQL and MariaDB of this machine, read through their ODBC
drivers with the read-only login: long-running statements, a real deadlock with no log source configured,
and an unreachable instance next to one with a live blocking chain. Never a bare "healthy"."""

from __future__ import annotations

import contextlib
import functools
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pyodbc
import pytest
from langgraph.checkpoint.memory import InMemorySaver

from agents.llm import ModelHandle
from graphs.context import Context
from graphs.copilot import build_graph, make_input
from tests.live import unavailable
from tests.live.test_cli_live import _cli, _instance, _settings
from tests.live.test_sql_live import (
    HOST,
    MARIA_PORT,
    PG_PORT,
    closed_port,
    maria_config,
    maria_connect,
    pg_config,
    pg_connect,
    run_quietly,
    wait_until,
)
from tools.estate import SqlInstanceConfig
from tools.sources import Sources
from tools.sql.live import OdbcSql

pytestmark = pytest.mark.live

ALL_CLEAR = re.compile(r"looks healthy|no issues found", re.I)
PG, MARIA = "pg-honest-01", "maria-honest-01"
LONG_S = 35  # how long the statements run before the question (as in the issue: 35-50 s)


def investigate(question: str, *configs: SqlInstanceConfig) -> dict[str, Any]:
    """One investigation of the live instances, no model, as the CLI runs it."""
    with OdbcSql(list(configs)) as sql:
        graph = build_graph(InMemorySaver())
        config = {"configurable": {"thread_id": f"honest-{uuid.uuid4().hex[:6]}"}}
        context = Context(
            sources=Sources(sql=sql, label="live"), model=ModelHandle.unavailable(), semantic_routing=False
        )
        graph.invoke(make_input(question=question), config, context=context)
        return dict(graph.get_state(config).values)


def headline_block(answer: str) -> str:
    return answer.split("\n\n", 1)[0]


def _pg_admin(app: str, autocommit: bool = True) -> psycopg.Connection[Any]:
    """A superuser session whose statements stay out of pg_stat_statements (this session only): the
    shared server's top statements are other tests' evidence, and these waits would crowd them out."""
    try:
        conn = pg_connect(app, autocommit=True)
    except psycopg.OperationalError as exc:
        unavailable(f"PostgreSQL at {HOST}:{PG_PORT}: {exc}")
        raise
    conn.execute("SET pg_stat_statements.track = 'none'")
    conn.autocommit = autocommit
    return conn


def _maria_admin(autocommit: bool = True) -> pyodbc.Connection:
    """A root session whose statements stay out of performance_schema's digests (this thread only)."""
    try:
        conn = maria_connect(autocommit=True)
    except pyodbc.Error as exc:
        unavailable(f"MariaDB at {HOST}:{MARIA_PORT}: {exc}")
        raise
    conn.execute(
        "UPDATE performance_schema.threads SET INSTRUMENTED = 'NO' WHERE PROCESSLIST_ID = CONNECTION_ID()"
    )
    conn.autocommit = autocommit
    return conn


# --- long-running statements ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def long_running() -> Iterator[dict[str, int]]:
    """A CPU-bound count and a sleep on PostgreSQL, a sleep on MariaDB, each running for LONG_S s."""
    cpu, sleeper, admin = _pg_admin("honest-cpu"), _pg_admin("honest-sleep"), _pg_admin("honest-admin")
    maria, maria_admin = _maria_admin(), _maria_admin()
    errors: list[BaseException] = []
    for conn in (cpu, sleeper):
        conn.execute("SET statement_timeout = '180s'")
    maria_id = int(maria.execute("SELECT CONNECTION_ID()").fetchone()[0])
    threads = [
        run_quietly(functools.partial(cpu.execute, "SELECT count(*) FROM generate_series(1, 1e9)"), errors),
        run_quietly(functools.partial(sleeper.execute, "SELECT pg_sleep(300)"), errors),
        run_quietly(functools.partial(maria.execute, "SELECT SLEEP(300) AS honest_long_sleep"), errors),
    ]
    pids = {"cpu": cpu.info.backend_pid, "sleep": sleeper.info.backend_pid, "maria": maria_id}
    try:
        time.sleep(LONG_S)
        running = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND pid = ANY(%s)",
            ([pids["cpu"], pids["sleep"]],),
        ).fetchone()
        assert running is not None and running[0] == 2, errors
        yield pids
    finally:
        for pid in (pids["cpu"], pids["sleep"]):
            admin.execute("SELECT pg_cancel_backend(%s)", (pid,))
        maria_admin.execute(f"KILL QUERY {maria_id}")
        for t in threads:
            t.join(timeout=10)
        for conn in (cpu, sleeper, admin, maria, maria_admin):
            conn.close()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("config", "question", "session"),
    [
        (pg_config(name=PG), f"are there long-running queries on {PG}?", "sleep"),
        (pg_config(name=PG), f"why is {PG} slow?", "cpu"),
        (maria_config(name=MARIA), f"are there long-running queries on {MARIA}?", "maria"),
    ],
    ids=["pg-long-running", "pg-slow", "mariadb-long-running"],
)
def test_long_running_statements_are_listed_or_said_not_checked(
    config: SqlInstanceConfig, question: str, session: str, long_running: dict[str, int]
) -> None:
    values = investigate(question, config)
    answer, top = values["answer"], headline_block(values["answer"])
    checked = values["report"]["checked"].get(config.name, {}).get("database", [])
    assert not ALL_CLEAR.search(answer), answer
    if "long_running" in checked:  # a tool reads running statements: then it lists this one
        assert str(long_running[session]) in answer, answer
    else:
        assert re.search(r"long-running statements", top, re.I) and "not checked" in top.lower(), top


# --- a real deadlock, no log source --------------------------------------------------------------


def _deadlock(first: Any, second: Any, table: str) -> None:
    """Two transactions take rows 1 and 2, then each asks for the other's: the server kills one."""
    errors: list[BaseException] = []
    first.execute(f"UPDATE {table} SET v = 1 WHERE id = 1")
    second.execute(f"UPDATE {table} SET v = 1 WHERE id = 2")
    thread = run_quietly(functools.partial(first.execute, f"UPDATE {table} SET v = 2 WHERE id = 2"), errors)
    time.sleep(0.5)
    with contextlib.suppress(Exception):  # one of the two is chosen as the deadlock victim
        second.execute(f"UPDATE {table} SET v = 2 WHERE id = 1")
    thread.join(timeout=10)
    first.rollback()
    second.rollback()


@contextlib.contextmanager
def pg_deadlock() -> Iterator[None]:
    admin = _pg_admin("honest-admin")
    table = f"honest_dl_{uuid.uuid4().hex[:8]}"
    admin.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, v int NOT NULL)")
    admin.execute(f"INSERT INTO {table} VALUES (1, 0), (2, 0)")

    def deadlocks() -> int:
        row = admin.execute("SELECT deadlocks FROM pg_stat_database WHERE datname = 'test'").fetchone()
        assert row is not None  # the database of the tests exists
        return int(row[0])

    before = deadlocks()
    a, b = _pg_admin("honest-dl-a", autocommit=False), _pg_admin("honest-dl-b", autocommit=False)
    try:
        _deadlock(a, b, table)
        wait_until(lambda: deadlocks() > before, "pg_stat_database.deadlocks to count the deadlock")
        yield
    finally:
        a.close()
        b.close()
        admin.execute(f"DROP TABLE IF EXISTS {table}")
        admin.close()


@contextlib.contextmanager
def maria_deadlock() -> Iterator[None]:
    admin = _maria_admin()
    table = f"test.honest_dl_{uuid.uuid4().hex[:8]}"
    admin.execute(f"CREATE TABLE {table} (id INT PRIMARY KEY, v INT NOT NULL) ENGINE=InnoDB")
    admin.execute(f"INSERT INTO {table} VALUES (1, 0), (2, 0)")
    a, b = _maria_admin(autocommit=False), _maria_admin(autocommit=False)
    try:
        _deadlock(a, b, table)
        status = str(admin.execute("SHOW ENGINE INNODB STATUS").fetchone()[2])
        assert "LATEST DETECTED DEADLOCK" in status
        yield
    finally:
        a.close()
        b.close()
        admin.execute(f"DROP TABLE IF EXISTS {table}")
        admin.close()


@pytest.mark.parametrize(
    ("engine", "name", "deadlock"),
    [("postgresql", PG, pg_deadlock), ("mysql", MARIA, maria_deadlock)],
    ids=["postgresql", "mariadb"],
)
def test_a_deadlock_question_without_a_log_source_says_so(
    engine: str, name: str, deadlock: Callable[[], Any], tmp_path: Path
) -> None:
    config = _settings(tmp_path, [_instance(engine, name)])
    with deadlock():
        asked = _cli(
            "ask",
            f"were there deadlocks on {name}?",
            "--model",
            "none",
            "--json",
            tmp_path=tmp_path,
            config=config,
        )
    assert asked.returncode == 0, asked.stderr
    out = json.loads(asked.stdout)
    answer, report = out["answer"], out
    assert "no log source configured" in headline_block(answer), answer
    assert not ALL_CLEAR.search(answer), answer
    if "deadlocks" in report["checked"].get(name, {}).get("database", []):  # the database's own counters
        assert any("deadlock" in f["title"].lower() for f in report["findings"]), answer


# --- an unreachable instance next to a live blocking chain ---------------------------------------


@contextlib.contextmanager
def pg_chain() -> Iterator[int]:
    admin = _pg_admin("honest-admin")
    table = f"honest_chain_{uuid.uuid4().hex[:8]}"
    admin.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, v int NOT NULL)")
    admin.execute(f"INSERT INTO {table} VALUES (1, 0)")
    head = _pg_admin("honest-reconciler", autocommit=False)
    waiters = [_pg_admin("honest-checkout") for _ in range(2)]
    errors: list[BaseException] = []
    threads: list[threading.Thread] = []
    try:
        head.execute(f"UPDATE {table} SET v = 1 WHERE id = 1")
        for w in waiters:
            w.execute("SET statement_timeout = '120s'")
            threads.append(
                run_quietly(functools.partial(w.execute, f"UPDATE {table} SET v = 2 WHERE id = 1"), errors)
            )
        pids = [w.info.backend_pid for w in waiters]
        wait_until(
            lambda: (
                admin.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid = ANY(%s)",
                    (pids,),
                ).fetchone()
                == (2,)
            ),
            "both writers to wait on the lock",
        )
        yield head.info.backend_pid
    finally:
        head.rollback()
        for t in threads:
            t.join(timeout=10)
        for c in (head, *waiters):
            c.close()
        admin.execute("SET lock_timeout = '5s'")
        admin.execute(f"DROP TABLE IF EXISTS {table}")
        admin.close()


@contextlib.contextmanager
def maria_chain() -> Iterator[int]:
    admin = _maria_admin()
    table = f"test.honest_chain_{uuid.uuid4().hex[:8]}"
    admin.execute(f"CREATE TABLE {table} (id INT PRIMARY KEY, v INT NOT NULL) ENGINE=InnoDB")
    admin.execute(f"INSERT INTO {table} VALUES (1, 0)")
    head = _maria_admin(autocommit=False)
    waiters = [_maria_admin() for _ in range(2)]
    errors: list[BaseException] = []
    threads: list[threading.Thread] = []
    try:
        head.execute(f"UPDATE {table} SET v = 1 WHERE id = 1")
        head_id = int(head.execute("SELECT CONNECTION_ID()").fetchone()[0])
        ids = set()
        for w in waiters:
            w.execute("SET SESSION innodb_lock_wait_timeout = 120")
            ids.add(int(w.execute("SELECT CONNECTION_ID()").fetchone()[0]))
            threads.append(
                run_quietly(functools.partial(w.execute, f"UPDATE {table} SET v = 2 WHERE id = 1"), errors)
            )

        def waiting() -> bool:
            rows = admin.execute(
                "SELECT trx_mysql_thread_id FROM information_schema.INNODB_TRX WHERE trx_state = 'LOCK WAIT'"
            ).fetchall()
            return ids <= {int(r[0]) for r in rows}  # other lock waits on the shared server may exist

        wait_until(waiting, "both writers to wait on the row lock")
        yield head_id
    finally:
        head.rollback()
        for t in threads:
            t.join(timeout=10)
        for c in (head, *waiters):
            c.close()
        admin.execute("SET SESSION lock_wait_timeout = 5")
        admin.execute(f"DROP TABLE IF EXISTS {table}")
        admin.close()


@pytest.mark.parametrize(
    ("make", "chain", "good", "dead"),
    [
        (pg_config, pg_chain, "pg-honest-01", "pg-honest-02"),
        (maria_config, maria_chain, "maria-honest-01", "maria-honest-02"),
    ],
    ids=["postgresql", "mariadb"],
)
def test_an_unreachable_instance_is_said_next_to_a_live_blocking_chain(
    make: Callable[..., SqlInstanceConfig], chain: Callable[[], Any], good: str, dead: str
) -> None:
    configs = (make(name=good), make(name=dead, port=closed_port()))
    with chain() as head:
        swept = investigate("is the db ok?", *configs)
        named = investigate(f"is {dead} ok?", *configs)
    first, *rest = headline_block(swept["answer"]).splitlines()
    # the shared server may hold other tests' chains too: ours is among the findings, a problem leads
    assert first.startswith(f"Most likely cause: Blocking chain on {good}"), swept["answer"]
    assert f"head blocker session {head}" in swept["answer"], swept["answer"]
    assert any(
        line.startswith(f"Could not read {dead} (unreachable") and "state is unknown, not healthy" in line
        for line in rest
    ), swept["answer"]
    assert named["answer"].splitlines()[0].startswith(f"Could not read {dead} (unreachable"), named["answer"]
    assert not ALL_CLEAR.search(swept["answer"] + named["answer"])
