"""kill_session: end one database session through the instance's separate privileged login.

PostgreSQL ``pg_terminate_backend``, MySQL / MariaDB ``KILL CONNECTION``, SQL Server ``KILL``.
Before it acts, the executor checks that the session is the one the analyzer named:
- the session id is a typed positive integer, bound as a parameter (free text never becomes SQL);
- the cited evidence holds that session; the target's attributes agree with it;
- the live session with that id has the same login, client host and program as in the evidence, and
  the same start time: equal to the evidence's `login_time` when the evidence has one, otherwise not
  later than the moment the evidence was read (a session that started afterwards is another one that
  reuses the id). MySQL and MariaDB keep no session start time, but never reuse a connection id while
  the server runs: there the server must have been up since the evidence was read.
On PostgreSQL and SQL Server the identity is checked again in the statement that kills, so the
session cannot change between the check and the kill.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pyodbc

from tools.actions.base import (
    ActionRequest,
    Done,
    ExecutionResult,
    Failed,
    Refused,
    Trail,
    check_evidence,
    run_guarded,
    session_id,
)
from tools.base import escape_text
from tools.estate import SqlInstanceConfig
from tools.sql.connect import app_name, close_connection, connection_string, odbc_value
from tools.sql.connect import target as address
from tools.world import parse_ts

log = logging.getLogger(__name__)

APPLICATION = "opscopilot-actions"
CLOCK_TOLERANCE = timedelta(seconds=1)
IDENTITY = ("login_name", "host_name", "program_name")


@dataclass
class LiveSession:
    """A session as the server reports it now."""

    session_id: int
    login_name: str | None
    host_name: str | None  # as the query packs report it (MySQL: without the client port)
    program_name: str | None
    login_time: datetime | None
    killable: bool  # a client session (not a system / background process, not our own)
    state: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


Cursor = Callable[[str, tuple[Any, ...]], list[tuple[Any, ...]]]


class Engine:
    """How one engine reads a session's identity and ends it."""

    name = ""
    reports: tuple[str, ...] = ()  # identity fields this engine can report
    setup: tuple[str, ...] = ()

    def read(self, run: Cursor, sid: int) -> LiveSession | None:
        raise NotImplementedError

    def server_started(self, run: Cursor) -> datetime | None:
        return None

    def kill(self, run: Cursor, session: LiveSession, timeout_s: float) -> tuple[bool, str]:
        """End the session; (ended, statement shown in the trail)."""
        raise NotImplementedError


_PG_START = "to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"')"


class Postgres(Engine):
    name = "postgresql"
    reports = ("login_name", "host_name", "program_name", "login_time")
    setup = ("SET statement_timeout = {timeout_ms}",)

    def read(self, run: Cursor, sid: int) -> LiveSession | None:
        rows = run(
            "SELECT a.pid, a.usename::text, COALESCE(a.client_hostname, host(a.client_addr)), "
            f"NULLIF(a.application_name, ''), {_PG_START}, a.state, a.backend_type, "
            "CASE WHEN a.pid = pg_backend_pid() THEN 1 ELSE 0 END "
            "FROM pg_stat_activity a WHERE a.pid = ?",
            (sid,),
        )
        if not rows:
            return None
        pid, login, host, program, start, state, kind, own = rows[0]
        if start is None or kind is None:
            raise Refused(
                f"the actions login cannot see who session {sid} is (its start time and type are hidden): "
                "GRANT pg_read_all_stats TO the actions login, so the session can be checked before it is "
                "ended"
            )
        return LiveSession(
            session_id=int(pid),
            login_name=login,
            host_name=host,
            program_name=program,
            login_time=parse_ts(start) if start else None,
            state=state,
            killable=kind == "client backend" and not int(own),
            raw={"backend_type": kind, "backend_start": start},
        )

    def kill(self, run: Cursor, session: LiveSession, timeout_s: float) -> tuple[bool, str]:
        # identity and kill in one statement: a session that changed in between is not touched;
        # with a timeout, pg_terminate_backend waits until the backend has exited (PostgreSQL 14+)
        statement = (
            # booleans as 1/0: psqlodbc hands booleans over as the characters '1'/'0' by default
            "SELECT CASE WHEN pg_terminate_backend(a.pid, ?) THEN 1 ELSE 0 END FROM pg_stat_activity a "
            f"WHERE a.pid = ? AND {_PG_START} = ? AND a.usename = ?"
        )
        params = (int(timeout_s * 1000), session.session_id, session.raw["backend_start"], session.login_name)
        shown = (
            f"SELECT pg_terminate_backend({session.session_id}, {params[0]}) "
            "where its start time and login still match"
        )
        try:
            rows = run(statement, params)
        except pyodbc.Error as exc:
            if "does not exist" not in str(exc):  # PostgreSQL 13 and older: no timeout argument
                raise
            legacy = statement.replace("pg_terminate_backend(a.pid, ?)", "pg_terminate_backend(a.pid)")
            rows = run(legacy, params[1:])
        if not rows:
            raise Refused(
                f"session {session.session_id} changed between the check and the kill (no longer the same "
                "start time and login): not killed"
            )
        return bool(int(rows[0][0])), shown


class MySql(Engine):
    name = "mysql"
    reports = ("login_name", "host_name")
    setup = ("SET SESSION max_statement_time = {timeout_s}",)  # MariaDB; MySQL skips it

    def read(self, run: Cursor, sid: int) -> LiveSession | None:
        rows = run(
            "SELECT ID, USER, HOST, COMMAND, STATE, CASE WHEN ID = CONNECTION_ID() THEN 1 ELSE 0 END "
            "FROM information_schema.PROCESSLIST WHERE ID = ?",
            (sid,),
        )
        if not rows:
            return None
        pid, user, host, command, _state, own = rows[0]
        client = host.rsplit(":", 1)[0] if host and re.fullmatch(r".+:\d+", host) else host
        system = command in ("Daemon", "Binlog Dump") or user in ("system user", "event_scheduler")
        return LiveSession(
            session_id=int(pid),
            login_name=user,
            host_name=client,
            program_name=None,
            login_time=None,
            state=command,
            killable=not system and not int(own),
            raw={"host": host, "command": command},
        )

    def server_started(self, run: Cursor) -> datetime | None:
        rows = run("SELECT UTC_TIMESTAMP(6)", ())
        uptime = run("SHOW GLOBAL STATUS LIKE 'Uptime'", ())
        if not rows or not uptime:
            return None
        now = rows[0][0]
        now = now if isinstance(now, datetime) else parse_ts(str(now))
        return now.replace(tzinfo=UTC) - timedelta(seconds=float(uptime[0][1]))

    def kill(self, run: Cursor, session: LiveSession, timeout_s: float) -> tuple[bool, str]:
        run("KILL CONNECTION ?", (session.session_id,))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:  # KILL returns at once; the thread may still roll back
            if not run("SELECT 1 FROM information_schema.PROCESSLIST WHERE ID = ?", (session.session_id,)):
                return True, f"KILL CONNECTION {session.session_id}"
            time.sleep(0.1)
        return False, f"KILL CONNECTION {session.session_id}"


_MSSQL_START = "CONVERT(varchar(33), s.login_time, 126)"


class SqlServer(Engine):
    name = "mssql"
    reports = ("login_name", "host_name", "program_name", "login_time")
    setup = ("SET LOCK_TIMEOUT {timeout_ms}",)

    def read(self, run: Cursor, sid: int) -> LiveSession | None:
        rows = run(
            "SELECT s.session_id, s.login_name, s.host_name, s.program_name, "
            f"{_MSSQL_START}, CONVERT(varchar(33), DATEADD(MILLISECOND, "
            "DATEDIFF(MILLISECOND, SYSDATETIME(), SYSUTCDATETIME()), s.login_time), 126), "
            "s.status, s.is_user_process, CASE WHEN s.session_id = @@SPID THEN 1 ELSE 0 END "
            "FROM sys.dm_exec_sessions s WHERE s.session_id = ?",
            (sid,),
        )
        if not rows:
            return None
        pid, login, host, program, local_start, utc_start, status, user_process, own = rows[0]
        return LiveSession(
            session_id=int(pid),
            login_name=login,
            host_name=host,
            program_name=program,
            login_time=parse_ts(f"{utc_start}+00:00") if utc_start else None,
            state=status,
            killable=bool(int(user_process)) and not int(own),
            raw={"login_time_local": local_start},
        )

    def kill(self, run: Cursor, session: LiveSession, timeout_s: float) -> tuple[bool, str]:
        # KILL takes no parameter: the typed int is converted inside the batch, after the identity
        # is checked again in the same batch
        rows = run(
            "SET NOCOUNT ON; DECLARE @sid int = ?, @login nvarchar(128) = ?, @start varchar(33) = ?; "
            "IF EXISTS (SELECT 1 FROM sys.dm_exec_sessions s WHERE s.session_id = @sid "
            f"AND s.login_name = @login AND {_MSSQL_START} = @start) "
            "BEGIN DECLARE @cmd nvarchar(40) = N'KILL ' + CONVERT(nvarchar(11), @sid); EXEC (@cmd); "
            "SELECT 1; END ELSE SELECT 0;",
            (session.session_id, session.login_name, session.raw["login_time_local"]),
        )
        if not rows or not rows[0][0]:
            raise Refused(f"session {session.session_id} changed between the check and the kill: not killed")
        return True, f"KILL {session.session_id} where its start time and login still match"


ENGINES: dict[str, Engine] = {"postgresql": Postgres(), "mysql": MySql(), "mssql": SqlServer()}


def identity_problems(
    expected: dict[str, Any],
    live: LiveSession,
    observed_at: datetime,
    engine: Engine,
    server_started: datetime | None,
) -> list[str]:
    """Why the live session is not the one in the evidence (empty: it is)."""
    problems = []
    sid = live.session_id
    if not expected.get("login_name"):
        problems.append(f"the evidence does not say which login session {sid} belongs to")
    for key in IDENTITY:
        want, have = expected.get(key), getattr(live, key)
        if want in (None, "") or key not in engine.reports:
            continue
        if have is None or str(want).strip().lower() != str(have).strip().lower():
            problems.append(
                f"its {key} is {escape_text(str(have)) if have is not None else 'not reported'}, "
                f"the evidence says {escape_text(str(want))}"
            )
    recorded = expected.get("login_time")
    if "login_time" in engine.reports:
        if live.login_time is None:
            problems.append(f"the server does not report when session {sid} started")
        elif recorded:
            try:
                want_start = parse_ts(recorded)
            except ValueError:
                problems.append(f"the evidence's login_time {escape_text(str(recorded))} is not a timestamp")
            else:
                if abs(want_start - live.login_time) > CLOCK_TOLERANCE:
                    problems.append(
                        f"it started at {live.login_time.isoformat()}, the evidence's session at "
                        f"{want_start.isoformat()}: another session reuses id {sid}"
                    )
        elif live.login_time > observed_at + CLOCK_TOLERANCE:
            problems.append(
                f"it started at {live.login_time.isoformat()}, after the evidence was read "
                f"({observed_at.isoformat()}): another session reuses id {sid}"
            )
    elif server_started is None:
        problems.append("the server's start time could not be read, so a reused id cannot be ruled out")
    elif server_started > observed_at + CLOCK_TOLERANCE:
        problems.append(
            f"the server restarted at {server_started.isoformat()}, after the evidence was read "
            f"({observed_at.isoformat()}): connection ids started again"
        )
    return problems


def evidence_session(request: ActionRequest, sid: int) -> dict[str, Any]:
    """The session row the cited evidence holds for `sid`; the target's attributes must agree with it."""
    rows = [
        row
        for e in request.evidence
        if e.id in request.proposal.evidence and e.entity == request.target.entity
        for row in e.rows
        if str(row.get("session_id")) == str(sid)
    ]
    if not rows:
        raise Refused(
            f"session {sid} is not among the sessions the cited evidence holds for "
            f"{escape_text(request.target.entity)}: refused (the session to kill must be one the analyzer "
            "named)"
        )
    row = rows[0]
    for key, value in request.target.attrs.items():
        if key in (*IDENTITY, "login_time") and str(row.get(key) or "") != value:
            raise Refused(
                f"the target's {key} {escape_text(value)} differs from the evidence "
                f"({escape_text(str(row.get(key)))}): refused"
            )
    return row


class SqlKillSession:
    """kill_session on the configured instances, each through its `actions_login`."""

    actions = ("kill_session",)

    def __init__(self, instances: list[SqlInstanceConfig]) -> None:
        self._instances = {i.name: i for i in instances}

    def execute(self, request: ActionRequest) -> ExecutionResult:
        return run_guarded(request, lambda trail: self._kill(request, trail))

    def reconcile(self, request: ActionRequest) -> ExecutionResult | None:
        """An interrupted kill is safe to run again: the identity check refuses a session that is gone
        or replaced, so None (no effect recorded) lets the node simply run it."""
        return None

    def _kill(self, request: ActionRequest, trail: Trail) -> Done:
        target = request.target
        sid = session_id(target)
        check_evidence(request)
        expected = evidence_session(request, sid)
        cfg = self._config(target.entity)
        login = cfg.actions_login
        assert login is not None
        engine = ENGINES[cfg.engine]
        where = f"{escape_text(cfg.name)} ({address(cfg)})"
        trail.add(f"connect to {where} as {login.username} (the privileged actions login)")
        with self._connection(cfg) as run:
            live = engine.read(run, sid)
            trail.add(f"read session {sid} from the server's session list")
            if live is None:
                raise Refused(f"session {sid} no longer exists on {where}: nothing to kill")
            if not live.killable:
                raise Refused(
                    f"session {sid} on {where} is a system or background process, or our own: refused"
                )
            started = engine.server_started(run) if "login_time" not in engine.reports else None
            problems = identity_problems(expected, live, request.observed_at, engine, started)
            if problems:
                raise Refused(
                    f"session {sid} on {where} is not the session the analyzer named: " + "; ".join(problems)
                )
            who = f"{escape_text(live.login_name or '?')}@{escape_text(live.host_name or '?')}"
            identity = {
                "session_id": sid,
                "login_name": live.login_name,
                "host_name": live.host_name,
                "program_name": live.program_name,
                "login_time": live.login_time.isoformat() if live.login_time else None,
            }
            if request.dry_run:
                return (
                    "dry_run",
                    f"dry run: session {sid} ({who}) on {where} is the one the analyzer named and would be "
                    "ended; nothing was run",
                    {"data": {"session": identity}},
                )
            ended, statement = engine.kill(run, live, login.timeout_s)
            trail.add(statement)
        if not ended:
            return (
                "executed",
                f"asked {where} to end session {sid} ({who}); it had not exited after {login.timeout_s:g} s "
                "(it may still be rolling back)",
                {"data": {"session": identity, "ended": False}},
            )
        return (
            "executed",
            f"session {sid} ({who}) on {where} was ended; its open transaction is rolled back",
            {"data": {"session": identity, "ended": True}, "external_id": f"{cfg.name}:{sid}"},
        )

    def _config(self, name: str) -> SqlInstanceConfig:
        cfg = self._instances.get(name)
        if cfg is None:
            raise Refused(f"{escape_text(name)} is not a configured SQL instance (estate.sql)")
        if cfg.actions_login is None:
            raise Refused(
                f"{escape_text(name)} has no privileged login for actions: set "
                f"estate.sql[{name}].actions_login (username, password: {{env: ...}}); the read-only "
                "login is never used to kill"
            )
        return cfg

    @contextlib.contextmanager
    def _connection(self, cfg: SqlInstanceConfig) -> Iterator[Cursor]:
        login = cfg.actions_login
        assert login is not None
        engine = ENGINES[cfg.engine]
        try:
            conn = pyodbc.connect(
                privileged_connection_string(cfg), autocommit=True, timeout=math.ceil(login.timeout_s)
            )
        except pyodbc.Error as exc:
            raise Failed(
                f"cannot connect to {escape_text(cfg.name)} ({address(cfg)}) as {login.username}: "
                f"{_odbc(exc)}"
            ) from None
        try:
            with contextlib.suppress(pyodbc.Error):  # psqlodbc has no query timeout attribute
                conn.timeout = math.ceil(login.timeout_s)
            values = {"timeout_ms": math.ceil(login.timeout_s * 1000), "timeout_s": login.timeout_s}
            for statement in engine.setup:
                try:
                    conn.execute(statement.format(**values))
                except pyodbc.Error as exc:
                    log.debug("actions login setup skipped on %s: %s", cfg.name, _odbc(exc))

            def run(sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
                try:
                    cursor = conn.execute(sql, *params)
                    rows = []
                    while True:  # a batch may answer in a later result set (SQL Server)
                        if cursor.description is not None:
                            rows = [tuple(r) for r in cursor.fetchall()]
                        if not cursor.nextset():
                            return rows
                except pyodbc.Error as exc:
                    raise Failed(_privilege_hint(cfg, _odbc(exc))) from None

            yield run
        finally:
            close_connection(conn)


def privileged_connection_string(cfg: SqlInstanceConfig) -> str:
    """The instance's ODBC connection string with the actions login instead of the read-only one."""
    login = cfg.actions_login
    assert login is not None
    if cfg.connection_string:
        credentials = {"UID", "PWD", "USER", "PASSWORD"}
        kept = [
            part
            for part in cfg.connection_string.split(";")
            if part.strip() and part.split("=", 1)[0].strip().upper() not in credentials
        ]
        string = ";".join([*kept, f"UID={odbc_value(login.username)}"])
        base = cfg.model_copy(update={"connection_string": string})
    else:
        base = cfg.model_copy(update={"username": login.username})
    base = base.model_copy(update={"password": login.password, "query_timeout_s": login.timeout_s})
    return connection_string(base, app_name(APPLICATION), login.timeout_s)


def _odbc(exc: pyodbc.Error) -> str:
    """The server's message without driver brackets and the driver's trailing call name."""
    text = str(exc.args[1] if len(exc.args) > 1 else exc)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r";?\s*Error while executing the query.*$", "", text, flags=re.S)
    text = re.sub(r"\s*\(SQL\w+\)\s*$", "", text)
    return " ".join(text.split())[:300]


def _privilege_hint(cfg: SqlInstanceConfig, message: str) -> str:
    lowered = message.lower()
    if any(w in lowered for w in ("permission", "denied", "not owner", "must be a member", "privilege")):
        grant = {
            "postgresql": "GRANT pg_signal_backend, pg_read_all_stats TO <login> (it cannot end superuser "
            "sessions)",
            "mysql": "GRANT PROCESS, CONNECTION ADMIN ON *.* TO <login> (SUPER on older servers)",
            "mssql": "GRANT ALTER ANY CONNECTION TO <login>",
        }[cfg.engine]
        return f"{message}; the actions login lacks the right to end sessions: {grant}"
    return message
