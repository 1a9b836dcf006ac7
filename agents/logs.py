"""Logs specialist: error signatures, known error codes and bursts in Elastic/OpenSearch logs."""

from __future__ import annotations

from agents.base import AgentSpec, playbook_over
from tools.logs.signal_views import SIGNAL_TOOLS
from tools.logs.views import LOGS_TOOLS

MAX_ENTITIES = 4


plan_calls = playbook_over("log_entity", [*LOGS_TOOLS, *SIGNAL_TOOLS], MAX_ENTITIES)


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
    tools=(*LOGS_TOOLS, *SIGNAL_TOOLS),
    plan_calls=plan_calls,
)
