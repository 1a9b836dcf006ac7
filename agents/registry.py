"""Specialist registry: name -> AgentSpec, in the order reports list them."""

from __future__ import annotations

from agents import database, itsm, knowledge, logs, metrics, network
from agents.base import AgentSpec
from tools.base import Specialist

REGISTRY: dict[Specialist, AgentSpec] = {
    spec.name: spec
    for spec in (database.SPEC, logs.SPEC, metrics.SPEC, network.SPEC, itsm.SPEC, knowledge.SPEC)
}
