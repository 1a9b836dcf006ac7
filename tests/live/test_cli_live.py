"""The CLI against the real local PostgreSQL and MariaDB with real blocking chains: `ask` names the
head blocker, its client and the waiters; `record` turns the live run into a scenario that replays
to the same findings; `doctor` says what to fix for a wrong password and an unreachable host."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pyodbc
import pytest

from tests.conftest import ROOT
from tests.live import unavailable
from tests.live.test_sql_live import (
    HOST,
    MARIA_PORT,
    PG_PORT,
    RO_PASSWORD,
    RO_USER,
    closed_port,
    maria_connect,
    pg_connect,
    run_quietly,
    wait_until,
)

pytestmark = pytest.mark.live

QUESTION = "why is the checkout query blocked?"


def _settings(tmp_path: Path, sql: list[dict[str, Any]]) -> Path:
    cfg = tmp_path / "settings.yaml"
    lines = ["estate:", "  sql:"]
    for inst in sql:
        lines.append(f"    - name: {inst['name']}")
        for key, value in inst.items():
            if key != "name":
                lines.append(f"      {key}: {value}")
    cfg.write_text("\n".join(lines) + "\n")
    return cfg


def _instance(engine: str, name: str, **overrides: Any) -> dict[str, Any]:
    base = {
        "name": name,
        "engine": engine,
        "driver": "PostgreSQL Unicode" if engine == "postgresql" else "MariaDB Unicode",
        "host": HOST,
        "port": PG_PORT if engine == "postgresql" else MARIA_PORT,
        "username": RO_USER,
        "password": "{env: CHECKOUT_DB_RO_PASSWORD}",
    }
    if engine == "postgresql":
        base["database"] = "test"
    return base | overrides


def _cli(
    *args: str, tmp_path: Path, config: Path, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = (extra_env or {}) | {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "OPSCOPILOT_DATA_DIR": str(tmp_path / "var"),
        "CHECKOUT_DB_RO_PASSWORD": RO_PASSWORD,
        "HF_HUB_OFFLINE": "1",
    }
    cmd = [sys.executable, "-m", "server.cli", *args, "--config", str(config)]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)


@contextlib.contextmanager
def pg_blocking_chain() -> Iterator[tuple[int, set[int]]]:
    """A reconciler holds a row lock, idle in transaction; two checkout sessions wait on it."""
    try:
        admin = pg_connect("opscopilot-cli-admin")
    except psycopg.OperationalError as exc:
        unavailable(f"PostgreSQL at {HOST}:{PG_PORT}: {exc}")
    table = f"checkout_orders_{uuid.uuid4().hex[:6]}"
    admin.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, status text NOT NULL)")
    admin.execute(f"INSERT INTO {table} SELECT g, 'NEW' FROM generate_series(1, 10) g")
    blocker = pg_connect("nightly-reconciler", autocommit=False)
    waiters = [pg_connect("checkout-api") for _ in range(2)]
    threads: list[threading.Thread] = []
    errors: list[BaseException] = []
    try:
        blocker.execute(f"UPDATE {table} SET status = 'RECONCILED' WHERE id = 1")
        for w in waiters:
            w.execute("SET statement_timeout = '300s'")
            threads.append(
                run_quietly(
                    functools.partial(w.execute, f"UPDATE {table} SET status = 'PAID' WHERE id = 1"), errors
                )
            )
        waiting = {w.info.backend_pid for w in waiters}

        def all_waiting() -> bool:
            rows = admin.execute(
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid = ANY(%s)",
                (list(waiting),),
            ).fetchall()
            return {r[0] for r in rows} == waiting

        wait_until(all_waiting, "the checkout UPDATEs to wait on the reconciler's lock")
        yield blocker.info.backend_pid, waiting
    finally:
        blocker.rollback()
        for t in threads:
            t.join(timeout=10)
        for c in (blocker, *waiters):
            c.close()
        admin.execute("SET lock_timeout = '5s'")
        admin.execute(f"DROP TABLE IF EXISTS {table}")
        admin.close()


@contextlib.contextmanager
def maria_blocking_chain() -> Iterator[tuple[int, set[int]]]:
    try:
        admin = maria_connect()
    except pyodbc.Error as exc:
        unavailable(f"MariaDB at {HOST}:{MARIA_PORT}: {exc}")
    table = f"checkout_orders_{uuid.uuid4().hex[:6]}"
    admin.execute(
        f"CREATE TABLE test.{table} (id INT PRIMARY KEY, status VARCHAR(20) NOT NULL) ENGINE=InnoDB"
    )
    admin.execute(f"INSERT INTO test.{table} SELECT seq, 'NEW' FROM seq_1_to_10")
    blocker = maria_connect(autocommit=False)
    waiters = [maria_connect() for _ in range(2)]
    threads: list[threading.Thread] = []
    errors: list[BaseException] = []
    try:
        blocker.execute(f"UPDATE test.{table} SET status = 'RECONCILED' WHERE id = 1")
        head = int(blocker.execute("SELECT CONNECTION_ID()").fetchone()[0])
        waiting: set[int] = set()
        for w in waiters:
            w.execute("SET SESSION innodb_lock_wait_timeout = 300")
            waiting.add(int(w.execute("SELECT CONNECTION_ID()").fetchone()[0]))
            sql = f"UPDATE test.{table} SET status = 'PAID' WHERE id = 1"
            threads.append(run_quietly(functools.partial(w.execute, sql), errors))

        def all_waiting() -> bool:
            rows = admin.execute(
                "SELECT trx_mysql_thread_id FROM information_schema.INNODB_TRX WHERE trx_state = 'LOCK WAIT'"
            ).fetchall()
            return {int(r[0]) for r in rows} == waiting

        wait_until(all_waiting, "the checkout UPDATEs to wait on the row lock")
        yield head, waiting
    finally:
        blocker.rollback()
        for t in threads:
            t.join(timeout=10)
        for c in (blocker, *waiters):
            c.close()
        admin.execute("SET SESSION lock_wait_timeout = 5")
        admin.execute(f"DROP TABLE IF EXISTS test.{table}")
        admin.close()


@pytest.mark.parametrize(
    ("engine", "chain", "client"),
    [("postgresql", pg_blocking_chain, "nightly-reconciler"), ("mysql", maria_blocking_chain, HOST)],
    ids=["postgresql", "mariadb"],
)
def test_ask_names_the_head_blocker_its_client_and_the_waiters_then_record_replays(
    engine: str, chain: Any, client: str, tmp_path: Path
) -> None:
    name = "pg-checkout-01" if engine == "postgresql" else "maria-checkout-01"
    config = _settings(tmp_path, [_instance(engine, name)])
    with chain() as (head, waiting):
        asked = _cli("ask", QUESTION, "--model", "none", "--json", tmp_path=tmp_path, config=config)
        assert asked.returncode == 0, asked.stderr
        answer = json.loads(asked.stdout)["answer"]
        assert f"head blocker session {head}" in answer
        assert client in answer  # the head's application name (PostgreSQL) or client host (MariaDB)
        for pid in waiting:
            assert f"session {pid}" in answer
        assert f"kill_session {name} session {head}" in answer and "not executed" in answer

        recorded = tmp_path / "recorded.yaml"
        rec = _cli("record", "--question", QUESTION, "--out", str(recorded), tmp_path=tmp_path, config=config)
        assert rec.returncode == 0, rec.stderr
    # the servers are quiet again: the recorded world alone reproduces the findings
    replay = _cli("eval", str(recorded), "--model", "none", "-v", tmp_path=tmp_path, config=config)
    assert replay.returncode == 0, replay.stderr
    assert replay.stdout.strip().splitlines()[-1] == "1 passed, 0 failed", replay.stderr
    text = recorded.read_text()
    assert "'RECONCILED'" not in text and "'PAID'" not in text  # SQL literals redacted in the recording


def test_doctor_prints_one_row_per_source_and_what_to_fix(tmp_path: Path) -> None:
    config = _settings(
        tmp_path,
        [
            _instance("postgresql", "pg-good"),
            _instance("mysql", "maria-wrong-password", password="{env: CHECKOUT_DB_WRONG_PASSWORD}"),
            _instance("postgresql", "pg-unreachable", port=closed_port()),
        ],
    )
    proc = _cli(
        "doctor",
        tmp_path=tmp_path,
        config=config,
        extra_env={"CHECKOUT_DB_WRONG_PASSWORD": "not-the-password"},
    )
    out = proc.stdout
    assert proc.returncode == 1, proc.stderr  # something needs attention
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") > 3}
    assert {"sql:pg-good", "sql:maria-wrong-password", "sql:pg-unreachable"} <= set(rows), out
    assert "check username/password" in " ".join(out.split()), out
    assert "refused" in out and "not-the-password" not in out
    assert "1 ok, 2 need attention" in out


def test_an_unreachable_instance_opens_its_circuit_and_the_investigation_completes(tmp_path: Path) -> None:
    """One good PostgreSQL and one on a closed port: the dead one becomes evidence ("circuit open"),
    the good one's findings still make the answer."""
    from langgraph.checkpoint.memory import InMemorySaver
    from pydantic import SecretStr

    from agents.llm import ModelHandle
    from graphs.context import Context
    from graphs.copilot import build_graph, make_input
    from tools.estate import SqlInstanceConfig
    from tools.sources import Sources
    from tools.sql.live import OdbcSql

    def cfg(name: str, port: int) -> SqlInstanceConfig:
        return SqlInstanceConfig(
            name=name, engine="postgresql", driver="PostgreSQL Unicode", host=HOST, port=port,
            database="test", username=RO_USER, password=SecretStr(RO_PASSWORD),
        )  # fmt: skip

    with (
        pg_blocking_chain() as (head, _),
        OdbcSql([cfg("pg-good", PG_PORT), cfg("pg-dead", closed_port())]) as sql,
    ):
        graph = build_graph(InMemorySaver())
        config = {"configurable": {"thread_id": "circuit"}}
        context = Context(
            sources=Sources(sql=sql, label="live"), model=ModelHandle.unavailable(), semantic_routing=False
        )
        graph.invoke(make_input(question=QUESTION), config, context=context)
        values = graph.get_state(config).values
        answer = values["answer"]
        dead = [e for e in values["evidence"] if e["entity"] == "pg-dead"]
        from tools.sql.views import DATABASE_TOOLS

        assert len(dead) == len(DATABASE_TOOLS) and all(e["error"] for e in dead)  # one per tool
        assert any("circuit open after 3" in e["error"] for e in dead), [e["error"] for e in dead]
        assert "circuit open" in answer
        assert f"head blocker session {head}" in answer  # the good instance still answered
        assert sql.circuit("pg-dead").state == "open"
