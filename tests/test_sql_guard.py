"""The ad-hoc SQL guard against each bypass found in security probing (issue 9), and what it must keep
allowing. The probes ran as postgres and root: the first bypass read pg_authid and mysql.user."""

from __future__ import annotations

from typing import Any

import pytest

from tools.sql.guard import check_adhoc_sql


@pytest.mark.parametrize(
    ("engine", "sql", "reason"),
    [
        # a CTE's name was trusted for the whole statement, even outside the query that defines it
        (
            "postgresql",
            "SELECT c.relname FROM pg_class c UNION ALL (WITH pg_class AS (SELECT 1) SELECT * FROM pg_class)",
            "table pg_class is not allowed",
        ),
        (
            "postgresql",
            "SELECT rolpassword FROM pg_authid UNION ALL "
            "(WITH pg_authid AS (SELECT 'x' AS rolpassword) SELECT * FROM pg_authid)",
            "table pg_authid is not allowed",
        ),
        (
            "mysql",
            "SELECT User FROM mysql.user UNION ALL (WITH user AS (SELECT 1) SELECT * FROM user)",
            "table mysql.user is not allowed",
        ),
        (
            "mssql",
            "SELECT name FROM sys.sql_logins UNION ALL (SELECT name FROM sys.dm_exec_sessions)",
            "table sys.sql_logins is not allowed",
        ),
        # PostgreSQL's attribute notation: a.to_json is the call to_json(a)
        ("postgresql", "SELECT a.to_json FROM pg_stat_activity a", "to_json(a)"),
        ("postgresql", "SELECT s.row_to_json FROM pg_stat_statements s", "row_to_json(s)"),
        ("postgresql", "SELECT a.pg_terminate_backend FROM pg_stat_activity a", "pg_terminate_backend(a)"),
        # a quoted upper-case name is another relation than the view it spells
        ("postgresql", 'SELECT * FROM "PG_STAT_ACTIVITY"', "quoted name must be written in lower case"),
        ("postgresql", 'SELECT * FROM public."Pg_Locks"', "quoted name must be written in lower case"),
        # a linked server's four-part name reads another server
        ("mssql", "SELECT * FROM linked.master.sys.dm_exec_sessions", "no linked servers"),
        ("mssql", "SELECT * FROM [remote].[master].[sys].[dm_os_wait_stats]", "no linked servers"),
        # T-SQL locking hints take or change locks
        ("mssql", "SELECT * FROM sys.dm_exec_sessions WITH (TABLOCKX)", "table hints"),
        ("mssql", "SELECT * FROM sys.dm_exec_requests WITH (UPDLOCK, HOLDLOCK)", "table hints"),
        ("mssql", "SELECT * FROM sys.dm_exec_sessions (NOLOCK)", "table hints"),
    ],
)
def test_each_bypass_is_refused(engine: Any, sql: str, reason: str) -> None:
    with pytest.raises(ValueError) as raised:
        check_adhoc_sql(sql, engine)
    assert reason in str(raised.value)


@pytest.mark.parametrize(
    ("engine", "sql"),
    [
        ("postgresql", "WITH pg_locks AS (SELECT 1 AS x) SELECT * FROM pg_locks"),  # the CTE, in its scope
        (
            "postgresql",
            "WITH s AS (SELECT queryid FROM pg_stat_statements) SELECT * FROM s UNION ALL "
            "(WITH t AS (SELECT 2 AS queryid) SELECT * FROM t)",
        ),
        ("postgresql", 'SELECT * FROM "pg_locks"'),
        ("postgresql", "SELECT a.query, a.state FROM pg_stat_activity a"),
        ("mssql", "SELECT * FROM tempdb.sys.master_files"),
        ("mssql", "SELECT * FROM [sys].[dm_exec_sessions]"),
    ],
)
def test_what_stays_allowed(engine: Any, sql: str) -> None:
    assert check_adhoc_sql(sql, engine).upper().startswith(("SELECT", "WITH"))
