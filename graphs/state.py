"""Typed investigation state. Values are JSON-shaped so every checkpointer can store them."""

from __future__ import annotations

import operator
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from tools.base import ActionName, Specialist


class InvestigationInput(TypedDict, total=False):
    """The public face of the graph: a question or a normalised alert, and the clock."""

    question: str
    alert: dict[str, Any] | None
    now: str  # ISO-8601; the scenario clock, or wall-clock time for live runs
    source_ref: str  # how to rebuild the sources on resume (e.g. "scenario:/path/file.yaml")
    requester: str  # who asked (a person, or the alert source); nobody approves their own request


class PlanStep(BaseModel):
    specialist: Specialist
    entities: list[str]
    reasons: list[str] = Field(default_factory=list)


class ApprovalRequest(BaseModel):
    """What the approval node asks a human: JSON only."""

    thread_id: str | None = None
    proposals: list[dict[str, Any]]
    summary: str


class ApprovalDecision(BaseModel):
    """What a human answers. One decision covers every proposal listed in `approved` / `rejected`.

    The optional fields let the service bind a decision to what was shown (graphs/proposals.py says
    how each is checked): a decision for another thread or another request is refused, a claimed
    role must be one the policy gives the approver, and nobody approves their own request."""

    decision: Literal["approve", "reject"]
    approver: str = Field(min_length=1)
    comment: str = ""
    actions: list[ActionName] = Field(default_factory=list)  # empty = all proposed actions
    fingerprints: list[str] = Field(default_factory=list)  # or exactly these proposals (their fingerprints)
    role: str | None = None  # the role the approver acts in
    requester: str | None = None  # who asked, as the service recorded it (the graph input's wins)
    thread_id: str | None = None  # the investigation this decision is for
    request_id: str | None = None  # the approval request it answers (proposals[].policy.request_id)
    decided_at: str | None = None  # when the person decided (ISO-8601)


class State(InvestigationInput, total=False):
    """Everything the graph accumulates. Lists gathered in parallel carry their reducer."""

    request: str  # the text the planner reads: question, or the alert rendered as text
    inventory: dict[str, Any]  # read from the sources once, in plan; the specialists reuse it
    entities: list[dict[str, Any]]
    plan: list[dict[str, Any]]
    evidence: Annotated[list[dict[str, Any]], operator.add]
    findings: Annotated[list[dict[str, Any]], operator.add]
    specialist_runs: Annotated[list[dict[str, Any]], operator.add]
    notes: Annotated[list[str], operator.add]
    answer: str
    report: dict[str, Any]
    proposals: list[dict[str, Any]]
    approval: dict[str, Any] | None
    executed_actions: list[dict[str, Any]]
    remediations: list[dict[str, Any]]  # one lifecycle record per proposal (graphs/proposals.py)
    approval_request_id: str  # names the current approval request
    decisions: int  # decisions received so far
    decision_step: str  # the last decision's audit step id
    status: Literal[
        "investigating", "awaiting_approval", "approved", "rejected", "expired", "executed", "done"
    ]


class SpecialistTask(TypedDict):
    """The payload `Send` hands to one specialist."""

    specialist: Specialist
    entities: list[dict[str, Any]]
    inventory: dict[str, Any]
    request: str
    now: str
