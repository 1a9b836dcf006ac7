"""kill_session without a server: the identity rules, the statements each engine sends (the session id
is always a bound parameter, never text in the SQL), and the privileged connection string.

SQL Server cannot run here: its statements are checked as text and parameters only (the live tests
end real sessions on PostgreSQL and MariaDB)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from tools.actions.sql import ENGINES, LiveSession, identity_problems, privileged_connection_string
from tools.estate import SqlActionsLogin, SqlInstanceConfig

READ_AT = datetime(2026, 7, 8, 10, 0, tzinfo=UTC)
EXPECTED = {"login_name": "svc_batch", "host_name": "batch-03", "program_name": "Nightly Reconciler"}


def live(**over: Any) -> LiveSession:
    fields: dict[str, Any] = {
        "session_id": 57,
        "login_name": "svc_batch",
        "host_name": "batch-03",
        "program_name": "Nightly Reconciler",
        "login_time": READ_AT - timedelta(hours=1),
        "killable": True,
    }
    return LiveSession(**(fields | over))


def test_the_same_session_passes() -> None:
    assert identity_problems(EXPECTED, live(), READ_AT, ENGINES["mssql"], None) == []
    exact = EXPECTED | {"login_time": (READ_AT - timedelta(hours=1)).isoformat()}
    assert identity_problems(exact, live(), READ_AT, ENGINES["postgresql"], None) == []


@pytest.mark.parametrize(
    ("expected", "session", "words"),
    [
        (EXPECTED, live(login_name="svc_other"), "login_name is svc_other"),
        (EXPECTED, live(host_name="web-11"), "host_name is web-11"),
        (EXPECTED, live(program_name=None), "program_name is not reported"),
        (EXPECTED, live(login_time=READ_AT + timedelta(minutes=5)), "after the evidence was read"),
        (EXPECTED | {"login_time": "2026-07-08T08:00:00+00:00"}, live(), "another session reuses id 57"),
        ({"host_name": "batch-03"}, live(), "does not say which login"),
        (EXPECTED, live(login_time=None), "does not report when session 57 started"),
    ],
)
def test_a_different_session_is_named_for_what_differs(
    expected: dict[str, Any], session: LiveSession, words: str
) -> None:
    problems = identity_problems(expected, session, READ_AT, ENGINES["postgresql"], None)
    assert any(words in p for p in problems), problems


def test_mysql_relies_on_the_server_having_run_since_the_evidence_was_read() -> None:
    session = live(login_time=None, program_name=None)
    mysql = ENGINES["mysql"]
    assert identity_problems(EXPECTED, session, READ_AT, mysql, READ_AT - timedelta(days=3)) == []
    restarted = identity_problems(EXPECTED, session, READ_AT, mysql, READ_AT + timedelta(minutes=1))
    assert "server restarted" in restarted[0]
    assert "cannot be ruled out" in identity_problems(EXPECTED, session, READ_AT, mysql, None)[0]


class Recorder:
    """Stands in for the connection: records each statement and its parameters, answers as told."""

    def __init__(self, answers: list[list[tuple[Any, ...]]]) -> None:
        self.sent: list[tuple[str, tuple[Any, ...]]] = []
        self.answers = answers

    def __call__(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        self.sent.append((sql, params))
        return self.answers.pop(0) if self.answers else []


@pytest.mark.parametrize("engine", ["postgresql", "mysql", "mssql"])
def test_the_session_id_is_a_bound_parameter_in_every_statement(engine: str) -> None:
    session = live(
        session_id=4242,
        raw={"backend_start": "2026-07-08T09:00:00+00:00", "login_time_local": "2026-07-08T11:00:00.000"},
    )
    run = Recorder([[(1,)], []])
    ended, shown = ENGINES[engine].kill(run, session, timeout_s=1.0)
    assert ended and "4242" in shown
    for sql, params in run.sent:
        assert "4242" not in sql and 4242 in params, (sql, params)


def test_sql_server_checks_the_identity_again_in_the_batch_that_kills() -> None:
    run = Recorder([[(0,)]])
    with pytest.raises(Exception, match="changed between the check and the kill"):
        ENGINES["mssql"].kill(run, live(raw={"login_time_local": "2026-07-08T11:00:00.000"}), 1.0)
    sql, params = run.sent[0]
    assert "EXEC (@cmd)" in sql and "CONVERT(nvarchar(11), @sid)" in sql and params[:2] == (57, "svc_batch")


def test_the_privileged_connection_string_replaces_the_read_only_login() -> None:
    cfg = SqlInstanceConfig(
        name="pg-1",
        engine="postgresql",
        connection_string="DRIVER={PostgreSQL Unicode};SERVER=db;UID=opscopilot_ro;PWD=x",
        actions_login=SqlActionsLogin(username="opscopilot_actions", password=SecretStr("s3cret;}")),
    )
    text = privileged_connection_string(cfg)
    assert "opscopilot_ro" not in text and "PWD=x" not in text
    assert "UID=opscopilot_actions" in text and text.endswith("PWD={s3cret;}}}")
