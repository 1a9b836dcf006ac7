"""Logs specialist: error signatures, known error codes and bursts in Elastic/OpenSearch logs."""

from __future__ import annotations

from agents.base import AgentSpec, ToolCall
from tools.inventory import Entity, Inventory
from tools.logs.views import LOGS_TOOLS
from tools.sources import ToolContext

MAX_ENTITIES = 4


def plan_calls(
    entities: list[Entity], inventory: Inventory, question: str, ctx: ToolContext
) -> list[ToolCall]:
    logged = set(inventory.of_kind("log_entity"))
    targets = [e.name for e in entities if e.name in logged]
    if not targets:
        targets = sorted(logged)
    return [ToolCall(tool=t.spec.name, entity=name) for name in targets[:MAX_ENTITIES] for t in LOGS_TOOLS]


SPEC = AgentSpec(
    name="logs",
    description=(
        "Log and event search in Elastic/OpenSearch: error messages grouped by signature, known "
        "error codes (deadlocks 1205/40P01, log full 9002, failed logins 18456), bursts of errors, "
        "exceptions, crashes, failovers and database events."
    ),
    keywords=(
        "log",
        "logs",
        "error",
        "errors",
        "exception",
        "deadlock",
        "deadlocks",
        "failed",
        "failure",
        "crash",
        "event",
        "events",
        "login failed",
        "message",
        "stack trace",
        "failover",
        "warning",
    ),
    entity_kinds=("log_entity",),
    tools=tuple(LOGS_TOOLS),
    plan_calls=plan_calls,
)
