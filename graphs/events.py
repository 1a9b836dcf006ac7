"""Typed progress events the graph nodes emit: plan, specialists, explanation, answer, actions."""

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


# --- the remediation lifecycle (graphs/execute.py): one event per change of a proposal's state --------


class ActionEvent(GraphEvent):
    """What every action event names: the action, its target (rendered escaped) and its fingerprint."""

    action: str
    target: str
    fingerprint: str


class ActionApproved(ActionEvent):
    """Enough approvals (or an explicit low-risk rule: `auto`) approved the proposal."""

    event: Literal["action_approved"] = "action_approved"
    by: list[str] = Field(default_factory=list)
    auto: bool = False


class ActionRejected(ActionEvent):
    """The proposal will not run: a person rejected it, or it expired before it was approved (or run)."""

    event: Literal["action_rejected"] = "action_rejected"
    state: Literal["rejected", "expired"]
    by: str
    note: str = ""


class ActionRefused(GraphEvent):
    """Something was refused: the policy denied a proposal, a decision did not count, or the executor
    refused to act (the session is not the one named, a cooldown, ...). Nothing ran."""

    event: Literal["action_refused"] = "action_refused"
    stage: Literal["policy", "decision", "execution"]
    reason: str
    action: str | None = None
    target: str | None = None
    fingerprint: str | None = None


class ActionExecuting(ActionEvent):
    """The executor starts (a dry run checks everything and changes nothing)."""

    event: Literal["action_executing"] = "action_executing"
    dry_run: bool


class ActionExecuted(ActionEvent):
    """The executor finished: executed, rehearsed (dry_run) or failed; `detail` says what it did."""

    event: Literal["action_executed"] = "action_executed"
    outcome: Literal["executed", "dry_run", "failed"]
    detail: str
    external_id: str | None = None


class ActionVerified(ActionEvent):
    """The view tool that found the problem ran again: is it gone (`resolved`)?"""

    event: Literal["action_verified"] = "action_verified"
    resolved: bool
    summary: str


ACTION_EVENTS = (
    ActionApproved,
    ActionRejected,
    ActionRefused,
    ActionExecuting,
    ActionExecuted,
    ActionVerified,
)  # the remediation lifecycle, in the order a proposal can go through it
