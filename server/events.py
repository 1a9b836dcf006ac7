"""The one event vocabulary: the only place where graph stream parts become events (CLI, SSE, AG-UI).

Nodes under agents/ and graphs/ emit typed events (agents/events.py, graphs/events.py) through
LangGraph's custom stream; this module adds the run's own events (started, approval required,
finished, failed) and wraps each in an `Event` with its elapsed time. `server/agui.py` maps these
onto the AG-UI wire protocol; the CLI prints them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agents.events import AgentEvent, FollowUpAsked, ToolFinished, ToolStarted
from graphs.events import (
    ActionApproved,
    ActionExecuted,
    ActionExecuting,
    ActionRefused,
    ActionRejected,
    ActionVerified,
    AnswerReady,
    Explaining,
    GraphEvent,
    ModelToken,
    PlanMade,
    SpecialistFinished,
    SpecialistStarted,
)


class RunEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RunStarted(RunEvent):
    event: Literal["started"] = "started"
    investigation_id: str
    kind: str = "question"
    model: str = ""
    sources: str = ""


class ApprovalRequired(RunEvent):
    """The run paused at the approval gate; `request` is the graph's JSON approval request."""

    event: Literal["approval_required"] = "approval_required"
    request: dict[str, Any]
    interrupt_id: str
    approval_id: str | None = None
    expires_at: str | None = None


class RunDone(RunEvent):
    event: Literal["done"] = "done"
    investigation_id: str
    status: str
    headline: str = ""
    answer: str = ""
    pending_approval: bool = False
    approval_id: str | None = None
    report: dict[str, Any] | None = None
    tokens: dict[str, int] = Field(default_factory=dict)
    decision: str | None = None  # set when this run resumed the graph with an approval decision
    refused: list[str] = Field(default_factory=list)  # why the graph did not count that decision


class RunFailed(RunEvent):
    event: Literal["error"] = "error"
    message: str
    code: str = "failed"


AnyEvent = Annotated[
    ToolStarted
    | ToolFinished
    | FollowUpAsked
    | PlanMade
    | SpecialistStarted
    | SpecialistFinished
    | Explaining
    | ModelToken
    | AnswerReady
    | ActionApproved
    | ActionRejected
    | ActionRefused
    | ActionExecuting
    | ActionExecuted
    | ActionVerified
    | RunStarted
    | ApprovalRequired
    | RunDone
    | RunFailed,
    Field(discriminator="event"),
]


class Event(BaseModel):
    """One event of a run with the seconds since the run started."""

    elapsed_s: float
    body: AnyEvent

    @property
    def name(self) -> str:
        return self.body.event


class Clock:
    """Elapsed time since a run started (the CLI passes its process start: honest wall time)."""

    def __init__(self, started: float | None = None) -> None:
        self.started = started if started is not None else time.perf_counter()

    def __call__(self, body: Any) -> Event:
        return Event(elapsed_s=round(time.perf_counter() - self.started, 3), body=body)


def stream_events(
    graph: Any, graph_input: Any, config: dict[str, Any], context: Any, clock: Clock | None = None
) -> Iterator[Event]:
    """Run the graph (or resume it with a Command) and translate its stream parts into Events.

    Ends with ApprovalRequired when the run paused at the gate; the caller adds RunDone."""
    clock = clock or Clock()
    for mode, chunk in graph.stream(graph_input, config, context=context, stream_mode=["custom", "updates"]):
        if mode == "custom" and isinstance(chunk, AgentEvent | GraphEvent):
            yield clock(chunk)
        elif mode == "updates" and isinstance(chunk, dict) and "__interrupt__" in chunk:
            for intr in chunk["__interrupt__"]:
                yield clock(ApprovalRequired(request=intr.value, interrupt_id=intr.id))
