"""The one event vocabulary: the only place where graph stream parts become events (CLI and SSE)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class EventName(StrEnum):
    PLAN = "plan"
    SPECIALIST_START = "specialist_start"
    TOOL_START = "tool_start"
    TOOL_END = "tool_end"
    FOLLOW_UP = "follow_up"
    SPECIALIST_END = "specialist_end"
    EXPLAINING = "explaining"
    TOKEN = "token"
    ANSWER = "answer"
    APPROVAL_REQUIRED = "approval_required"
    DONE = "done"
    ERROR = "error"


class Event(BaseModel):
    name: EventName
    data: dict[str, Any] = Field(default_factory=dict)
    elapsed_s: float = 0.0


def stream_events(graph: Any, graph_input: Any, config: dict[str, Any], context: Any) -> Iterator[Event]:
    """Run the graph and translate its custom and update stream parts into Events."""
    started = time.perf_counter()

    def ev(name: EventName, data: dict[str, Any]) -> Event:
        return Event(name=name, data=data, elapsed_s=round(time.perf_counter() - started, 3))

    for mode, chunk in graph.stream(graph_input, config, context=context, stream_mode=["custom", "updates"]):
        if mode == "custom" and isinstance(chunk, dict) and "event" in chunk:
            data = {k: v for k, v in chunk.items() if k != "event"}
            yield ev(EventName(chunk["event"]), data)
        elif mode == "updates" and isinstance(chunk, dict) and "__interrupt__" in chunk:
            for intr in chunk["__interrupt__"]:
                yield ev(EventName.APPROVAL_REQUIRED, {"request": intr.value, "interrupt_id": intr.id})
    state = graph.get_state(config)
    values = state.values or {}
    yield ev(
        EventName.DONE,
        {
            "thread_id": config["configurable"]["thread_id"],
            "status": values.get("status"),
            "answer": values.get("answer"),
            "pending_approval": bool(state.interrupts),
        },
    )
