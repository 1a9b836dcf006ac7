"""Database specialist: sessions, blocking, waits, queries, space, and the first questions a DBA asks
(long-running statements, log reuse, replica lag, connections, deadlocks, memory grants, version store,
wraparound and purge) on SQL Server, PostgreSQL and MySQL/MariaDB."""

from __future__ import annotations

import logging

from agents.base import AgentSpec, ToolCall
from tools.inventory import Entity, Inventory
from tools.sources import SQL_DATASETS, ToolContext
from tools.sql.views import DATABASE_TOOLS, NEEDS, correlate

log = logging.getLogger(__name__)

MAX_INSTANCES = 3


def _datasets(ctx: ToolContext, instance: str) -> set[str]:
    """What the source can answer for the instance; every dataset when it cannot say."""
    try:
        return ctx.sources.sql.datasets(instance) if ctx.sources.sql else set()
    except Exception as exc:  # the tools themselves report an unreadable instance as evidence
        log.info("database: datasets of %s unknown (%s); planning every tool", instance, exc)
        return set(SQL_DATASETS)


def plan_calls(
    entities: list[Entity], inventory: Inventory, question: str, ctx: ToolContext
) -> list[ToolCall]:
    """Every database tool on each named instance (else every known one, capped), whatever the question:
    a broad "is X ok?" must cover the DBA's first questions, and tools that share a dataset share one query
    (at most 10 per instance). A tool runs when the source can answer what it reads: a recorded incident
    holds only what was recorded, and a tool without its data would have nothing to say."""
    known = inventory.of_kind("sql_instance")
    targets = [e.name for e in entities if e.name in known] or known
    calls = []
    for name in targets[:MAX_INSTANCES]:
        available = _datasets(ctx, name)
        calls += [
            ToolCall(tool=t.spec.name, entity=name)
            for t in DATABASE_TOOLS
            if set(NEEDS.get(t.spec.name, ())) <= available
        ]
    return calls


SPEC = AgentSpec(
    name="database",
    description=(
        "SQL Server DMVs, PostgreSQL statistics views and MySQL performance_schema: sessions, "
        "blocking chains and head blockers, open transactions, waits now, slow, regressed queries and plan "
        "changes, long-running statements, deadlocks, log/WAL/binlog that cannot be reused, replica and "
        "availability group lag, connection and worker saturation, memory grants, tempdb version store "
        "and xmin holders, wraparound and purge lag, tempdb and transaction log space, data files."
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
