"""The API's request and response bodies (the OpenAPI document is generated from these)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from server.pictures import Picture


class Problem(BaseModel):
    """An error a client caused: what is wrong and, for a malformed body, each field path."""

    detail: str
    problems: list[str] = Field(default_factory=list, description="e.g. alerts[0].startsAt is missing")


class InvestigationSummary(BaseModel):
    id: str
    kind: str
    status: str = Field(
        description="queued | investigating | awaiting_approval | approved | rejected | done | ..."
    )
    request: str = Field(description="the question or alert, quoted data (cut)")
    requester: str
    origin: Literal["replay", "live"]
    headline: str
    route: list[str]
    model: str
    created_at: str
    started_at: str | None
    finished_at: str | None
    timings: dict[str, Any]
    tokens: dict[str, Any]
    prompt_hashes: dict[str, str]
    alert_ids: list[str]
    chat_thread: str | None
    error: str | None


class ExecutionView(BaseModel):
    """What the executor did (or would do, in a dry run), and the steps it tried."""

    outcome: str | None = Field(description="executed | dry_run | refused | failed")
    detail: str
    external_id: str | None = None
    tried: list[str] = Field(default_factory=list)
    replayed: bool = Field(default=False, description="already ran under this key: not run again")


class VerificationView(BaseModel):
    """The view tool that found the problem, run again after the action."""

    resolved: bool
    summary: str
    tool: str | None = None
    checks: int = 0


class ProposalView(BaseModel):
    action: str | None
    target: str = Field(description="the structured target rendered, every part escaped")
    target_ref: dict[str, Any] | None
    reason: str
    evidence: list[str]
    fingerprint: str | None
    risk: str | None = Field(default=None, description="the policy's risk: low | medium | high")
    risk_reason: str = Field(default="", description="what the policy asks: approvals, roles, dry run")
    dry_run: bool | None = None
    approvals_required: int | None = None
    approver_roles: list[str] = Field(default_factory=list)
    approvals: list[str] = Field(default_factory=list, description="who approved it so far")
    state: str | None = Field(
        default=None,
        description="proposed | pending | approved | rejected | expired | denied | executed | dry_run | "
        "refused | failed | verified | unresolved",
    )
    result: ExecutionView | None = None
    verification: VerificationView | None = None


class ApprovalView(BaseModel):
    id: str
    investigation_id: str
    status: str = Field(description="pending | approved | rejected | expired | superseded | invalid")
    summary: str
    fingerprint: str = Field(description="sha256 over the proposals' fingerprints; checked again on decision")
    proposals: list[ProposalView]
    requester: str
    origin: str = Field(description="replay (a recorded world) or live (a real system)")
    created_at: str
    expires_at: str
    decided_by: str | None
    decided_at: str | None
    comment: str | None
    outcome: str | None
    evidence: list[dict[str, Any]] = Field(
        default_factory=list, description="the evidence the proposals cite"
    )


class InvestigationDetail(InvestigationSummary):
    findings: list[dict[str, Any]]
    evidence: list[dict[str, Any]]
    citations: list[dict[str, Any]]
    notes: list[str]
    proposals: list[dict[str, Any]]
    answer: str
    approval: ApprovalView | None
    explanation: str | None = Field(default=None, description="the model's explanation, when one ran")
    pictures: list[Picture] = Field(
        default_factory=list,
        description="evidence as pictures: metric series (baseline band, step, forecast), blocking trees, "
        "wait profiles, interface rates; each names its finding number and evidence ref",
    )
    evidence_rows: dict[str, list[dict[str, Any]]] = Field(
        default_factory=dict, description="each evidence's rows by ref (E1 ...), at most 50, text cut"
    )


class NewQuestion(BaseModel):
    """Ask a question; it is queued and investigated by a worker."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, max_length=4000)


class Queued(BaseModel):
    investigation_id: str
    status: str


class Decision(BaseModel):
    """Approve or reject a pending approval."""

    model_config = ConfigDict(extra="forbid")

    decision: Literal["approve", "reject"]
    comment: str = Field(default="", max_length=4000)
    fingerprint: str | None = Field(default=None, description="the approval fingerprint you reviewed")
    approver: str | None = Field(
        default=None, max_length=200, description="who decides; only used when the server runs without auth"
    )
    role: str | None = Field(
        default=None,
        max_length=64,
        description="a policy role you act in (config/policy.yaml `roles`); your token's role counts anyway",
    )


class DecisionResult(BaseModel):
    approval: ApprovalView
    investigation_status: str
    outcome: str


class ThreadView(BaseModel):
    id: str
    title: str
    requester: str
    created_at: str
    updated_at: str


class MessageView(BaseModel):
    role: str
    content: str
    run_id: str
    investigation_id: str | None
    created_at: str


class ThreadDetail(ThreadView):
    messages: list[MessageView]
    investigations: list[InvestigationSummary]


class WhoAmI(BaseModel):
    name: str
    role: str
    auth: str = Field(description="token | session | none (the server runs without authentication)")


class ServerInfo(BaseModel):
    version: str
    scope: Literal["replay", "live"] = Field(description="replay: a recorded scenario; live: real systems")
    scenario: str = Field(description="the scenario file's name (replay only)")
    title: str
    authentication: bool
    model: str


class AlertView(BaseModel):
    """A received alert (deduplicated by the source's fingerprint) and its investigation."""

    id: str
    source: str
    fingerprint: str
    name: str = Field(description="the alert's name, quoted data (cut)")
    entity: str | None
    severity: str
    status: str = Field(description="firing | resolved")
    count: int = Field(description="how often it was received while open")
    first_seen: str
    last_seen: str
    resolved_at: str | None
    summary: str = Field(description="quoted data (cut)")
    investigation_id: str | None
    investigation_status: str | None
    headline: str = Field(description="the investigation's headline")


class Health(BaseModel):
    status: str
    checks: dict[str, str] = Field(default_factory=dict)
    authentication: bool = True
