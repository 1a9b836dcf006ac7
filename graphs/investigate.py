"""The specialist node: one specialist's playbook and follow-ups, run in parallel with the others."""

from __future__ import annotations

from typing import Any

from langgraph.config import get_stream_writer
from langgraph.runtime import Runtime

from agents.base import run_specialist
from agents.registry import REGISTRY
from graphs.context import Context
from graphs.events import SpecialistFinished, SpecialistStarted
from graphs.state import SpecialistTask
from tools.inventory import Entity, Inventory
from tools.isolation import collecting_notes
from tools.world import parse_ts


def consult_specialist(task: SpecialistTask, runtime: Runtime[Context]) -> dict[str, Any]:
    """Run one specialist (sent by the planner) and contribute its evidence and findings."""
    ctx = runtime.context
    emit = get_stream_writer()
    spec = REGISTRY[task["specialist"]]
    entities = [Entity.model_validate(e) for e in task["entities"]]
    emit(SpecialistStarted(specialist=spec.name, entities=[e.name for e in entities]))
    with collecting_notes() as notes:  # per run: e.g. one of several log clusters did not answer
        outcome = run_specialist(
            spec,
            ctx.tool_context(parse_ts(task["now"]), task.get("scope")),
            entities,
            Inventory.from_json(task["inventory"]),
            task["request"],
            ctx.model,
            ctx.step_budget,
            emit,
        )
    emit(
        SpecialistFinished(
            specialist=spec.name,
            seconds=outcome.run.seconds,
            findings=len(outcome.findings),
            tools=outcome.run.tool_calls,
        )
    )
    return {
        "evidence": [e.model_dump(mode="json") for e in outcome.evidence],
        "findings": [f.model_dump(mode="json") for f in outcome.findings],
        "specialist_runs": [outcome.run.model_dump(mode="json")],
        "notes": [*outcome.notes, *notes],
    }
