"""The approval queue: list pending proposals with their evidence, approve or reject with a comment."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException

from server.api_models import ApprovalView, Decision, DecisionResult, Problem
from server.deps import AUTH_RESPONSES, Ctx, Viewer
from server.investigations import DecisionRefused
from server.principals import Principal
from server.views import approval_view

router = APIRouter(tags=["approvals"], responses=AUTH_RESPONSES)


def _with_evidence(ctx: Ctx, view: dict[str, Any]) -> dict[str, Any]:
    row = ctx.store.get_investigation(view["investigation_id"]) or {}
    cited = {e for p in view["proposals"] for e in p.get("evidence", [])}
    evidence = [e for e in (row.get("report") or {}).get("evidence", []) if e.get("id") in cited]
    return {**view, "evidence": evidence}


@router.get("/approvals", response_model=list[ApprovalView])
def list_approvals(ctx: Ctx, _who: Viewer, status: str = "pending") -> list[dict[str, Any]]:
    """Proposals waiting for a decision (or of another status), newest first, with the evidence cited."""
    ctx.service.expire_due()
    return [_with_evidence(ctx, approval_view(a)) for a in ctx.store.list_approvals(status or None)]


@router.get("/approvals/{approval_id}", response_model=ApprovalView, responses={404: {"model": Problem}})
def get_approval(approval_id: str, ctx: Ctx, _who: Viewer) -> dict[str, Any]:
    found = ctx.store.get_approval(approval_id)
    if found is None:
        raise HTTPException(404, detail=f"no approval {approval_id}")
    return _with_evidence(ctx, approval_view(found))


@router.post(
    "/approvals/{approval_id}/decision",
    response_model=DecisionResult,
    responses={404: {"model": Problem}, 409: {"model": Problem}, 422: {"model": Problem}},
)
def decide(approval_id: str, body: Decision, ctx: Ctx, who: Viewer) -> DecisionResult:
    """Approve or reject. Nobody decides on a proposal raised by their own request; the fingerprint
    is checked again against the paused investigation before the decision is recorded. An approval
    resumes the investigation: the policy decides what runs (a dry run by default), the executor
    runs it once, and the view tool that found the problem checks whether it is gone; the answer
    carries the outcome, each proposal's execution result and verification. Every refusal is
    written to the audit log (a caller without the approver role too: the service checks the role)."""
    if ctx.no_auth and body.approver is not None:
        who = Principal(name=body.approver, role="admin", via="none")
    try:
        done = ctx.service.decide_now(
            approval_id,
            body.decision,
            who,
            comment=body.comment,
            fingerprint_shown=body.fingerprint,
            role=body.role,
        )
    except DecisionRefused as exc:
        raise HTTPException(exc.status, detail=str(exc)) from None
    approval = ctx.store.get_approval(approval_id) or {}
    return DecisionResult(
        approval=ApprovalView.model_validate(_with_evidence(ctx, approval_view(approval))),
        investigation_status=done.status,
        outcome=done.answer,
    )
