"""kill_session end to end on the real PostgreSQL 15 and MariaDB 10.11 of this machine.

A real blocking chain (an application login holds a row lock, idle in its transaction; two checkout
sessions wait on it); the copilot reads it through the read-only login, proposes killing the head
blocker; a second person approves; the executor ends the head through a separate privileged login
created here (PostgreSQL: a role in pg_signal_backend; MariaDB: PROCESS and CONNECTION ADMIN); the
blocked statements complete and verification re-reads the sessions and finds the blocking gone.
Also: the same proposal approved twice ends one session once; a session that ended meanwhile, or a
different session under the same id, is refused at execution; a target such as ``57; DROP TABLE``
is refused and the table is still there. Roles, users and tables are prefixed ``actions_`` and
dropped afterwards.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pyodbc
import pytest
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.types import Command, Overwrite
from pydantic import SecretStr

from agents.llm import ModelHandle
from graphs.audit import AuditLog
from graphs.context import Context
from graphs.copilot import build_graph, make_input
from graphs.policy import Policy, Rule
from tests.live import unavailable
from tests.live.test_sql_live import HOST, MARIA_PORT, PG_PORT, RO_PASSWORD, RO_USER, run_quietly, wait_until
from tests.remediation_support import Counting, action_runtime
from tools.actions.sql import SqlKillSession
from tools.estate import SqlActionsLogin, SqlInstanceConfig
from tools.sources import Sources
from tools.sql.live import OdbcSql

pytestmark = pytest.mark.live

QUESTION = "why is the checkout query blocked?"
# max_targets 10: the shared servers may hold other people's blocking chains at the same moment;
# every approval here names the fingerprint of this test's own proposal, which rejects the others
POLICY = Policy(
    rules=[
        Rule(
            action="kill_session", dry_run=False, verify_after=0.5, verify_for=15, cooldown=0, max_targets=10
        )
    ]
)


class WallClock:
    def __call__(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        import time

        time.sleep(seconds)


@dataclass
class Chain:
    """A live blocking chain: the head's session id, the waiters', their threads and errors."""

    engine: str
    instance: SqlInstanceConfig
    table: str
    head: int
    waiting: set[int]
    blocker: Any
    admin: Any
    threads: list[threading.Thread] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)

    def head_alive(self) -> bool:
        if self.engine == "postgresql":
            return bool(
                self.admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (self.head,)).fetchone()
            )
        return bool(
            self.admin.execute(
                "SELECT 1 FROM information_schema.PROCESSLIST WHERE ID = ?", self.head
            ).fetchall()
        )

    def status(self) -> str:
        if self.engine == "postgresql":
            return str(self.admin.execute(f"SELECT status FROM {self.table} WHERE id = 1").fetchone()[0])
        return str(self.admin.execute(f"SELECT status FROM test.{self.table} WHERE id = 1").fetchone()[0])

    def table_exists(self) -> bool:
        if self.engine == "postgresql":
            return bool(self.admin.execute("SELECT to_regclass(%s)", (self.table,)).fetchone()[0])
        return bool(
            self.admin.execute(
                "SELECT 1 FROM information_schema.TABLES WHERE TABLE_NAME = ?", self.table
            ).fetchall()
        )


# --- PostgreSQL --------------------------------------------------------------------------------------


def _pg(
    user: str = "postgres", app: str = "actions-test-admin", autocommit: bool = True
) -> psycopg.Connection[Any]:
    return psycopg.connect(host=HOST, port=PG_PORT, dbname="test", user=user, password="actions-dev",
                           application_name=app, autocommit=autocommit, connect_timeout=3)  # fmt: skip


@contextlib.contextmanager
def pg_chain() -> Iterator[Chain]:
    try:
        admin = _pg()
    except psycopg.OperationalError as exc:
        unavailable(f"PostgreSQL at {HOST}:{PG_PORT}: {exc}")
    suffix = uuid.uuid4().hex[:6]
    # one fixed table name: statement statistics (pg_stat_statements) then keep one entry for these
    # tests' UPDATEs instead of a new one per run crowding the shared server's top statements
    app, killer, table = f"actions_app_{suffix}", f"actions_killer_{suffix}", "actions_orders"
    admin.execute(f"CREATE ROLE {app} LOGIN PASSWORD 'actions-dev'")
    admin.execute(
        f"CREATE ROLE {killer} LOGIN PASSWORD 'actions-dev' IN ROLE pg_signal_backend, pg_read_all_stats"
    )
    admin.execute(f"DROP TABLE IF EXISTS {table}")
    admin.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, status text NOT NULL)")
    admin.execute(f"INSERT INTO {table} SELECT g, 'NEW' FROM generate_series(1, 10) g")
    admin.execute(f"GRANT SELECT, UPDATE ON {table} TO {app}")
    instance = SqlInstanceConfig(
        name="pg-checkout-01",
        engine="postgresql",
        driver="PostgreSQL Unicode",
        host=HOST,
        port=PG_PORT,
        database="test",
        username=RO_USER,
        password=SecretStr(RO_PASSWORD),
        actions_login=SqlActionsLogin(username=killer, password=SecretStr("actions-dev")),
    )
    blocker = _pg(app, "nightly-reconciler", autocommit=False)
    waiters = [_pg(app, "checkout-api") for _ in range(2)]
    chain = Chain(
        "postgresql",
        instance,
        table,
        blocker.info.backend_pid,
        {w.info.backend_pid for w in waiters},
        blocker,
        admin,
    )
    try:
        blocker.execute(f"UPDATE {table} SET status = 'RECONCILED' WHERE id = 1")
        for w in waiters:
            w.execute("SET statement_timeout = '120s'")
            update = functools.partial(w.execute, f"UPDATE {table} SET status = 'PAID' WHERE id = 1")
            chain.threads.append(run_quietly(update, chain.errors))

        def all_waiting() -> bool:
            rows = admin.execute(
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid = ANY(%s)",
                (list(chain.waiting),),
            ).fetchall()
            return {r[0] for r in rows} == chain.waiting

        wait_until(all_waiting, "the checkout UPDATEs to wait on the reconciler's row lock")
        yield chain
    finally:
        with contextlib.suppress(psycopg.Error):
            blocker.rollback()
        for t in chain.threads:
            t.join(timeout=15)
        for c in (blocker, *waiters):
            with contextlib.suppress(psycopg.Error):
                c.close()
        admin.execute("SET lock_timeout = '5s'")
        admin.execute(f"DROP TABLE IF EXISTS {table}")
        for role in (app, killer):
            admin.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'")
            admin.execute(f"DROP ROLE IF EXISTS {role}")
        admin.close()


# --- MariaDB -----------------------------------------------------------------------------------------


def _maria(user: str = "root", password: str = "", autocommit: bool = True) -> pyodbc.Connection:
    conn = (
        f"DRIVER={{MariaDB Unicode}};SERVER={HOST};PORT={MARIA_PORT};DATABASE=test;UID={user};PWD={password}"
    )
    return pyodbc.connect(conn, autocommit=autocommit, timeout=3)


@contextlib.contextmanager
def maria_chain() -> Iterator[Chain]:
    try:
        admin = _maria()
    except pyodbc.Error as exc:
        unavailable(f"MariaDB at {HOST}:{MARIA_PORT}: {exc}")
    suffix = uuid.uuid4().hex[:6]
    app, killer, table = f"actions_app_{suffix}", f"actions_kill_{suffix}", "actions_orders"  # see pg_chain
    admin.execute(f"DROP TABLE IF EXISTS test.{table}")  # left by a run killed before its cleanup
    admin.execute(
        f"CREATE TABLE test.{table} (id INT PRIMARY KEY, status VARCHAR(20) NOT NULL) ENGINE=InnoDB"
    )
    admin.execute(f"INSERT INTO test.{table} SELECT seq, 'NEW' FROM seq_1_to_10")
    admin.execute(f"CREATE USER '{app}'@'127.0.0.1' IDENTIFIED BY 'actions-dev'")
    admin.execute(f"GRANT SELECT, UPDATE ON test.{table} TO '{app}'@'127.0.0.1'")
    admin.execute(f"CREATE USER '{killer}'@'127.0.0.1' IDENTIFIED BY 'actions-dev'")
    admin.execute(f"GRANT PROCESS, CONNECTION ADMIN ON *.* TO '{killer}'@'127.0.0.1'")
    instance = SqlInstanceConfig(
        name="maria-checkout-01",
        engine="mysql",
        driver="MariaDB Unicode",
        host=HOST,
        port=MARIA_PORT,
        username=RO_USER,
        password=SecretStr(RO_PASSWORD),
        actions_login=SqlActionsLogin(username=killer, password=SecretStr("actions-dev")),
    )
    blocker = _maria(app, "actions-dev", autocommit=False)
    waiters = [_maria(app, "actions-dev") for _ in range(2)]
    head = int(blocker.execute("SELECT CONNECTION_ID()").fetchone()[0])
    waiting = {int(w.execute("SELECT CONNECTION_ID()").fetchone()[0]) for w in waiters}
    chain = Chain("mysql", instance, table, head, waiting, blocker, admin)
    try:
        blocker.execute(f"UPDATE test.{table} SET status = 'RECONCILED' WHERE id = 1")
        for w in waiters:
            w.execute("SET SESSION innodb_lock_wait_timeout = 120")
            update = functools.partial(w.execute, f"UPDATE test.{table} SET status = 'PAID' WHERE id = 1")
            chain.threads.append(run_quietly(update, chain.errors))

        def all_waiting() -> bool:
            rows = admin.execute(
                "SELECT trx_mysql_thread_id FROM information_schema.INNODB_TRX WHERE trx_state = 'LOCK WAIT'"
            ).fetchall()
            return {int(r[0]) for r in rows} >= waiting

        wait_until(all_waiting, "the checkout UPDATEs to wait on the row lock")
        yield chain
    finally:
        with contextlib.suppress(pyodbc.Error):
            blocker.rollback()
        for t in chain.threads:
            t.join(timeout=15)
        for c in (blocker, *waiters):
            with contextlib.suppress(pyodbc.Error):
                c.close()
        admin.execute("SET SESSION lock_wait_timeout = 5")
        admin.execute(f"DROP TABLE IF EXISTS test.{table}")
        for user in (app, killer):
            admin.execute(f"DROP USER IF EXISTS '{user}'@'127.0.0.1'")
        admin.close()


CHAINS: dict[str, Callable[[], contextlib.AbstractContextManager[Chain]]] = {
    "postgresql": pg_chain,
    "mariadb": maria_chain,
}


# --- the copilot on the live chain --------------------------------------------------------------------


class Run:
    """The copilot reading the chain through the read-only login, with the remediation runtime."""

    def __init__(self, chain: Chain, tmp_path: Path) -> None:
        self.chain = chain
        self.sql = OdbcSql([chain.instance])
        self.killer = Counting(SqlKillSession([chain.instance]))
        clock = WallClock()
        self.rt = action_runtime(tmp_path / "store.sqlite", POLICY, {"kill_session": self.killer}, clock)  # type: ignore[arg-type]
        self.conn = sqlite3.connect(tmp_path / "checkpoints.sqlite", check_same_thread=False)
        self.graph = build_graph(SqliteSaver(self.conn))
        self.config = {"configurable": {"thread_id": f"live-{uuid.uuid4().hex[:6]}"}}

    def context(self) -> Context:
        sources = Sources(sql=self.sql, label="live")
        return Context(
            sources=sources, model=ModelHandle.unavailable(), semantic_routing=False, actions=self.rt
        )

    def investigate(self) -> dict[str, Any]:
        self.graph.invoke(
            make_input(question=QUESTION, requester="carol"), self.config, context=self.context()
        )
        return dict(self.graph.get_state(self.config).values)

    def approve(
        self, approver: str = "alice", config: dict[str, Any] | None = None, fingerprint: str | None = None
    ) -> dict[str, Any]:
        values = self.graph.get_state(config or self.config).values
        chosen = fingerprint or proposed_head(values, self.chain)["policy"]["fingerprint"]
        resume: Command[str] = Command(
            resume={"decision": "approve", "approver": approver, "fingerprints": [chosen]}
        )
        return dict(self.graph.invoke(resume, config or self.config, context=self.context()))

    def close(self) -> None:
        self.sql.close()
        self.rt.close()
        self.conn.close()


@pytest.fixture(params=list(CHAINS))
def live_run(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Run]:
    with CHAINS[request.param]() as chain:
        run = Run(chain, tmp_path)
        try:
            yield run
        finally:
            run.close()


def proposed_head(values: dict[str, Any], chain: Chain, session: str | None = None) -> dict[str, Any]:
    """The proposal to kill this test's head blocker (the shared server may hold other chains too)."""
    wanted = session or str(chain.head)
    found = [
        p for p in values["proposals"]
        if p["action"] == "kill_session" and p["target_ref"]["entity"] == chain.instance.name
        and p["target_ref"]["id"] == wanted
    ]  # fmt: skip
    assert len(found) == 1, values["proposals"]
    return found[0]


def mine(values: dict[str, Any], chain: Chain, session: str | None = None) -> dict[str, Any]:
    """This test's proposal's lifecycle record."""
    index = values["proposals"].index(proposed_head(values, chain, session))
    return dict(values["remediations"][index])


def test_an_approved_kill_ends_the_head_blocker_and_the_blocked_statement_completes(live_run: Run) -> None:
    chain = live_run.chain
    values = live_run.investigate()
    proposed_head(values, chain)
    assert live_run.graph.get_state(live_run.config).interrupts and chain.head_alive()
    pending = live_run.graph.get_state(live_run.config)

    values = live_run.approve("alice")
    record = mine(values, chain)
    assert record["state"] == "verified", record["result"]
    assert record["result"]["outcome"] == "executed" and record["result"]["data"]["ended"] is True
    assert "no longer found: Blocking chain" in record["verification"]["summary"]
    assert not chain.head_alive()
    for t in chain.threads:
        t.join(timeout=15)
    assert chain.errors == [] and chain.status() == "PAID"  # the blocked UPDATEs went through
    assert any(chain.instance.actions_login.username in s for s in record["result"]["tried"])  # type: ignore[union-attr]

    # the same proposal approved twice (the approval delivered again): one kill
    again = live_run.approve("alice", pending.config)
    assert mine(again, chain)["result"]["replayed"] is True
    assert len(live_run.killer.executed) == 1
    kinds = [e.kind for e in AuditLog.open(live_run.rt.audit.db.where).entries()]
    assert kinds.count("executed") == 1 and kinds.count("replayed") == 1 and "verified" in kinds


def test_a_session_that_ended_meanwhile_is_refused_at_execution(live_run: Run) -> None:
    chain = live_run.chain
    proposed_head(live_run.investigate(), chain)
    chain.blocker.rollback()
    chain.blocker.close()  # the reconciler finished on its own before anyone approved
    wait_until(lambda: not chain.head_alive(), "the head session to end")
    record = mine(live_run.approve("alice"), chain)
    assert record["state"] == "refused" and "no longer exists" in record["result"]["detail"], record


def test_a_different_session_under_the_same_id_is_refused_at_execution(live_run: Run) -> None:
    """Session ids are reused (PostgreSQL pids; MySQL/MariaDB connection ids after a restart). An id
    cannot be forced to recur in a test, so the evidence is made to name an older session instead.
    PostgreSQL evidence records each session's start (login_time): the named session's is moved 30
    days back, in the evidence and in the proposal's target alike, and the proposal is screened and
    proposed again, so the live session with that id is a later one. MariaDB keeps no session start:
    there the evidence is made older than the server's uptime, which is exactly a session that
    started after the evidence was read."""
    chain = live_run.chain
    values = live_run.investigate()
    head = proposed_head(values, chain)
    if chain.engine == "postgresql" and head["target_ref"]["attrs"].get("login_time"):
        named = head["target_ref"]["attrs"]["login_time"]
        older = (datetime.fromisoformat(named.replace("Z", "+00:00")) - timedelta(days=30)).isoformat()

        def shifted(row: dict[str, Any]) -> dict[str, Any]:
            return {**row, "login_time": older} if row.get("login_time") == named else row

        evidence = [{**e, "rows": [shifted(r) for r in e.get("rows") or []]} for e in values["evidence"]]
        ref = head["target_ref"]
        moved = {**head, "target_ref": {**ref, "attrs": {**ref["attrs"], "login_time": older}}}
        proposals = [moved if p is head else p for p in values["proposals"]]
        update = {"evidence": Overwrite(evidence), "proposals": proposals}
        live_run.graph.update_state(live_run.config, update, as_node="synthesize")
        live_run.graph.invoke(None, live_run.config, context=live_run.context())  # screened, proposed again
    else:
        earlier = (datetime.fromisoformat(values["now"]) - timedelta(days=30)).isoformat()
        live_run.graph.update_state(live_run.config, {"now": earlier}, as_node="screen_proposals")
    record = mine(live_run.approve("alice"), chain)
    assert record["state"] == "refused", record
    why = record["result"]["detail"]
    assert "not the session the analyzer named" in why
    assert (
        ("another session reuses id" in why) if chain.engine == "postgresql" else ("server restarted" in why)
    )
    assert chain.head_alive()


def test_a_target_with_sql_in_its_id_is_refused_and_nothing_is_dropped(live_run: Run) -> None:
    chain = live_run.chain
    values = live_run.investigate()
    proposal = proposed_head(values, chain)
    hostile = f"{chain.head}; DROP TABLE {chain.table}"
    forged = dict(proposal, target_ref={**proposal["target_ref"], "id": hostile})
    others = [p for p in values["proposals"] if p is not proposal]
    live_run.graph.update_state(live_run.config, {"proposals": [forged, *others]}, as_node="synthesize")
    live_run.graph.invoke(None, live_run.config, context=live_run.context())
    waiting = live_run.graph.get_state(live_run.config).values
    fingerprint = proposed_head(waiting, chain, hostile)["policy"]["fingerprint"]
    record = mine(live_run.approve("alice", fingerprint=fingerprint), chain, hostile)
    assert record["state"] == "refused" and "is not a whole number" in record["result"]["detail"]
    assert chain.table_exists() and chain.head_alive()


def test_the_read_only_login_is_never_used_to_kill() -> None:
    """Without an actions_login the executor refuses before connecting anywhere."""
    from tools.actions.base import ActionRequest
    from tools.base import ActionTarget, Evidence, ProposedAction

    cfg = SqlInstanceConfig(
        name="pg-ro-only",
        engine="postgresql",
        driver="PostgreSQL Unicode",
        host=HOST,
        port=PG_PORT,
        username=RO_USER,
        password=SecretStr(RO_PASSWORD),
    )
    ev = Evidence(
        id="blocking_chains@pg-ro-only",
        specialist="database",
        tool="blocking_chains",
        entity="pg-ro-only",
        summary="",
        rows=[{"session_id": 4242, "login_name": "app"}],
    )
    target = ActionTarget(entity="pg-ro-only", kind="session", id="4242")
    request = ActionRequest(
        key="k",
        thread_id="t",
        evidence=[ev],
        observed_at=datetime.now(UTC),
        dry_run=False,
        proposal=ProposedAction(
            action="kill_session",
            target="pg-ro-only session 4242",
            reason="x",
            evidence=[ev.id],
            target_ref=target,
        ),
    )
    result = SqlKillSession([cfg]).execute(request)
    assert result.outcome == "refused" and "no privileged login" in result.detail and result.tried == []


@pytest.mark.parametrize("engine", list(CHAINS))
def test_a_dry_run_checks_the_live_session_and_ends_nothing(engine: str, tmp_path: Path) -> None:
    with CHAINS[engine]() as chain:
        run = Run(chain, tmp_path)
        run.rt.policy = Policy(rules=[Rule(action="kill_session", dry_run=True, max_targets=10)])
        try:
            proposed_head(run.investigate(), chain)
            record = mine(run.approve("alice"), chain)
        finally:
            run.close()
        assert record["state"] == "dry_run", record["result"]
        assert (
            f"session {chain.head}" in record["result"]["detail"]
            and "is the one the analyzer named" in record["result"]["detail"]
        )
        assert chain.head_alive() and record["verification"] is None
