"""Typed progress events the graph nodes emit (plan, specialists, explanation, answer)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class GraphEvent(BaseModel):
    """Base of every event produced under graphs/: frozen, no unknown fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class PlannedEntity(BaseModel):
    name: str
    kinds: list[str] = Field(default_factory=list)


class PlannedSpecialist(BaseModel):
    name: str
    reasons: list[str] = Field(default_factory=list)


class PlanMade(GraphEvent):
    event: Literal["plan"] = "plan"
    entities: list[PlannedEntity]
    specialists: list[PlannedSpecialist]
    scope: str = ""  # the window and search terms looked at (graphs/request.py)
    terms: list[str] = Field(default_factory=list)
    intent: list[str] = Field(default_factory=list)


class SpecialistStarted(GraphEvent):
    event: Literal["specialist_start"] = "specialist_start"
    specialist: str
    entities: list[str]


class SpecialistFinished(GraphEvent):
    event: Literal["specialist_end"] = "specialist_end"
    specialist: str
    seconds: float
    findings: int
    tools: list[str] = Field(default_factory=list)


class Explaining(GraphEvent):
    """The model is about to explain the findings (tokens follow)."""

    event: Literal["explaining"] = "explaining"
    model: str


class ModelToken(GraphEvent):
    event: Literal["token"] = "token"
    text: str


class AnswerReady(GraphEvent):
    event: Literal["answer"] = "answer"
    text: str
    proposals: list[dict[str, Any]] = Field(default_factory=list)
