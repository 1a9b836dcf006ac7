"""Database specialist: sessions, blocking, waits, top queries, files and space (mssql, postgresql, mysql)."""

from __future__ import annotations

from agents.base import AgentSpec, playbook_over
from tools.sql.views import DATABASE_TOOLS, correlate

MAX_INSTANCES = 3


plan_calls = playbook_over("sql_instance", list(DATABASE_TOOLS), MAX_INSTANCES)


SPEC = AgentSpec(
    name="database",
    description=(
        "SQL Server DMVs, PostgreSQL statistics views and MySQL performance_schema: sessions, "
        "blocking chains and head blockers, open transactions, waits, slow or regressed queries, "
        "deadlocks in progress, tempdb and transaction log space, data files."
    ),
    keywords=(
        "database",
        "databases",
        "db",
        "dbs",
        "dba",
        "sql",
        "query",
        "queries",
        "blocking",
        "blocked",
        "lock",
        "locks",
        "deadlock",
        "deadlocks",
        "long-running",
        "long running",
        "transaction",
        "session",
        "sessions",
        "tempdb",
        "index",
        "slow query",
        "wait",
        "waits",
        "timeout",
        "timing out",
        "time out",
        "replication",
        "connections",
        "postgres",
        "mysql",
        "mariadb",
        "sql server",
        "mssql",
        "vacuum",
        "checkpoint",
        "wal",
        "log full",
        "healthy",
    ),
    entity_kinds=("sql_instance",),
    tools=tuple(DATABASE_TOOLS),
    plan_calls=plan_calls,
    correlate=correlate,
)
