"""Typed progress events a specialist emits while it works (tool calls, model follow-ups)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict


class AgentEvent(BaseModel):
    """Base of every event produced under agents/: frozen, no unknown fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ToolStarted(AgentEvent):
    event: Literal["tool_start"] = "tool_start"
    specialist: str
    tool: str
    entity: str


class ToolFinished(AgentEvent):
    event: Literal["tool_end"] = "tool_end"
    specialist: str
    tool: str
    entity: str
    seconds: float
    findings: int
    error: str | None = None


class FollowUpAsked(AgentEvent):
    """One more look: the model asked the specialist for a view tool on a known entity (`tool`), or a
    finding named another known entity and its owner is sent there without a model (`reason`)."""

    event: Literal["follow_up"] = "follow_up"
    specialist: str
    entity: str
    tool: str | None = None  # None: the specialist's playbook
    reason: str = ""  # why a model-free follow-up was sent


Emit = Callable[[AgentEvent], None]
