"""ITSM specialist: open incidents for a CI and changes that overlap the incident window."""

from __future__ import annotations

from agents.base import AgentSpec, ToolCall
from tools.inventory import Entity, Inventory
from tools.itsm.views import ITSM_TOOLS
from tools.sources import ToolContext

MAX_ENTITIES = 3


def plan_calls(
    entities: list[Entity], inventory: Inventory, question: str, ctx: ToolContext
) -> list[ToolCall]:
    targets = [e.name for e in entities if e.kinds != ["kb_service"]] or ["*"]
    return [ToolCall(tool=t.spec.name, entity=name) for name in targets[:MAX_ENTITIES] for t in ITSM_TOOLS]


SPEC = AgentSpec(
    name="itsm",
    description=(
        "ServiceNow, Jira and PagerDuty: open incidents and tickets for a service or CI, change "
        "requests, deployments and maintenance that overlap the time of the problem, who is on call."
    ),
    keywords=(
        "change",
        "changed",
        "changes",
        "deploy",
        "deployed",
        "deployment",
        "release",
        "ticket",
        "tickets",
        "incident",
        "incidents",
        "on-call",
        "oncall",
        "on call",
        "maintenance",
        "rollout",
        "patch",
        "patched",
        "upgrade",
        "upgraded",
        "servicenow",
        "jira",
        "pagerduty",
    ),
    entity_kinds=("ci",),
    tools=tuple(ITSM_TOOLS),
    plan_calls=plan_calls,
)
