"""Typed investigation state. Values are JSON-shaped so every checkpointer can store them."""

from __future__ import annotations

import operator
from typing import Annotated, Any, Literal, NotRequired

from pydantic import BaseModel, Field, field_validator
from typing_extensions import TypedDict

from tools.base import ActionName, Specialist
from tools.inventory import Entity


class InvestigationInput(TypedDict, total=False):
    """The public face of the graph: a question or a normalised alert, and the clock."""

    question: str
    alert: dict[str, Any] | None
    now: str  # ISO-8601; the scenario clock, or wall-clock time for live runs
    source_ref: str  # how to rebuild the sources on resume (e.g. "scenario:/path/file.yaml")
    earlier: list[dict[str, Any]]  # earlier turns of a chat thread: {question, headline, entities}
    requester: str  # who asked (a person, or the alert source); nobody approves their own request


class PlanStep(BaseModel):
    specialist: Specialist
    entities: list[str]
    reasons: list[str] = Field(default_factory=list)


class UnknownName(BaseModel):
    """A name the request gave that no source knows, with the closest known names."""

    name: str
    closest: list[str] = Field(default_factory=list)
    kind: str = "name"  # what the closest names are: instance, device, host or service ...


class Scope(BaseModel):
    """The planner's reading of a request: what it is about and what it asks. The report says from
    this what was, and was not, examined."""

    entities: list[Entity] = Field(default_factory=list)  # known: named, near misses, what services run on
    unknown: list[UnknownName] = Field(default_factory=list)
    concerns: list[str] = Field(default_factory=list)  # asked about (tools/coverage.py vocabulary)
    broad: bool = False  # a general health question: every concern expected for the entity's kind
    sweep: bool = False  # nothing named: every specialist with data was consulted
    follow_up: bool = False  # refers to an earlier answer this run does not have
    statements: list[str] = Field(default_factory=list)  # said in the answer: near misses, service mapping


class ApprovalRequest(BaseModel):
    """What the approval node asks a human: JSON only. Each proposal carries its `fingerprint`."""

    thread_id: str | None = None
    proposals: list[dict[str, Any]]
    summary: str
    fingerprint: str = ""  # sha256 over the proposals' fingerprints, in order


class ApprovalDecision(BaseModel):
    """What a human answers. One decision covers every proposal listed in `actions` (empty = all), or
    exactly the proposals whose `fingerprints` are given.

    `fingerprints` are the proposals the approver was shown; a proposal whose fingerprint is not
    among them (it changed after it was shown) is never approved. The other optional fields bind a
    decision to what was shown (graphs/proposals.py says how each is checked): a decision for another
    thread or another request is refused, a claimed role must be one the policy gives the approver
    (or the role the service authenticated), and nobody approves their own request."""

    decision: Literal["approve", "reject"]
    approver: str = Field(min_length=1)
    comment: str = ""
    actions: list[ActionName] = Field(default_factory=list)  # empty = all proposed actions
    fingerprints: list[str] = Field(default_factory=list)  # or exactly these proposals (their fingerprints)
    role: str | None = None  # the policy role the approver claims to act in (CLI --role)
    authenticated_role: str | None = None  # the role the service verified (the token's); None = none
    requester: str | None = None  # who asked, as the service recorded it (the graph input's wins)
    thread_id: str | None = None  # the investigation this decision is for
    request_id: str | None = None  # the approval request it answers (proposals[].policy.request_id)
    decided_at: str | None = None  # when the person decided (ISO-8601)

    @field_validator("approver")
    @classmethod
    def _named(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("the approver must be named (not blank)")
        return v.strip()


class State(InvestigationInput, total=False):
    """Everything the graph accumulates. Lists gathered in parallel carry their reducer."""

    request: str  # the text the planner reads: question, or the alert rendered as text
    scope: dict[str, Any]  # graphs/request.py RequestScope: the window, search terms and intent
    follow_up_round: int  # how many rounds of dependency follow-ups ran (bounded)
    pending_follow_ups: list[dict[str, Any]]  # the follow-ups of the latest round, to be sent
    follow_ups: Annotated[list[dict[str, Any]], operator.add]  # every follow-up sent, with its reason
    inventory: dict[str, Any]  # read from the sources once, in plan; the specialists reuse it
    entities: list[dict[str, Any]]
    subject: dict[str, Any]  # the planner's Scope: named, unknown, asked, swept
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
    scope: NotRequired[dict[str, Any]]  # the planner's RequestScope (window, terms, intent)
    reason: NotRequired[str]  # why a follow-up was sent (absent for the planner's own steps)
