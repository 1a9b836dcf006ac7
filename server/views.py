"""What the API, the CLI and webhooks show of investigations and approvals: untrusted text cut short."""

from __future__ import annotations

from typing import Any

from graphs.approval import proposal_fingerprints
from server.text import cut_quoted, untrusted
from tools.base import ActionTarget, escape_text


def approval_status(decision: str) -> str:
    return "approved" if decision == "approve" else "rejected"


def investigation_view(row: dict[str, Any], brief: bool = False) -> dict[str, Any]:
    """The API's face of an investigation: untrusted text quoted and cut."""
    report = row.get("report") or {}
    view = {
        "id": row["id"],
        "kind": row["kind"],
        "status": row["status"],
        "request": untrusted(row["request"], 300),
        "requester": row["requester"],
        "origin": row["origin"],
        "headline": cut_quoted(row.get("headline") or "", 300),
        "route": row.get("route") or [],
        "model": row.get("model") or "",
        "created_at": row["created_at"],
        "started_at": row.get("started_at"),
        "finished_at": row.get("finished_at"),
        "timings": row.get("timings") or {},
        "tokens": row.get("tokens") or {},
        "prompt_hashes": row.get("prompt_hashes") or {},
        "alert_ids": row.get("alert_ids") or [],
        "chat_thread": row.get("chat_thread"),
        "error": row.get("error"),
    }
    if brief:
        return view
    return {
        **view,
        "findings": report.get("findings", []),
        "evidence": report.get("evidence", []),
        "citations": report.get("citations", []),
        "notes": report.get("notes", []),
        "proposals": [{**p, "target": proposal_target(p)} for p in row.get("proposals") or []],
        "answer": row.get("answer") or "",
        "explanation": report.get("explanation"),
        "coverage": report.get("coverage", []),  # what was not seen, said next to the headline
        "checked": report.get("checked", {}),  # entity -> specialist -> concerns examined
        "chain": report.get("chain", []),  # the causal chain, root first
        "window": report.get("window", ""),
        "pictures": report.get("pictures", []),
        "evidence_rows": report.get("evidence_rows", {}),
    }


def proposals_with_outcomes(values: dict[str, Any]) -> list[dict[str, Any]]:
    """The proposals of a graph state as an approval row keeps them: each with its fingerprint
    (computed from its content), the policy's view (risk, approvals, expiry), and what became of it
    (state, execution result, verification) from its lifecycle record (graphs/proposals.py)."""
    proposals = list(values.get("proposals") or [])
    records = {r["index"]: r for r in values.get("remediations") or []}
    out = []
    for i, (p, fp) in enumerate(zip(proposals, proposal_fingerprints(proposals), strict=True)):
        rec = records.get(i) or {}
        out.append(
            {
                **p,
                "fingerprint": fp,
                "state": rec.get("state"),
                "result": rec.get("result"),
                "verification": rec.get("verification"),
            }
        )
    return out


def proposal_target(p: dict[str, Any]) -> str:
    """A proposal's target as it may be shown: the structured target rendered with every part escaped
    (text copied from evidence prints quoted), else the escaped label."""
    ref = p.get("target_ref")
    text = ActionTarget.model_validate(ref).render() if ref else escape_text(str(p.get("target", "")))
    return untrusted(text, 160)


def risk_reason(rule: dict[str, Any]) -> str:
    """One line on what the policy asks of a proposal (the console shows it next to the risk)."""
    if not rule:
        return ""
    if rule.get("state") == "denied":
        return "no policy rule allows it: it cannot run"
    roles = rule.get("approver_roles") or []
    parts = [
        "approved by the policy (low risk)"
        if rule.get("auto_approved")
        else f"{rule.get('approvals_required', 1)} approval(s) needed"
        + (f" from a {' or '.join(roles)}" if roles else "")
        + ", never the requester's",
        "dry run: checks, changes nothing" if rule.get("dry_run") else "runs for real once approved",
    ]
    return "; ".join(parts)


def _result_view(result: dict[str, Any] | None) -> dict[str, Any] | None:
    if not result:
        return None
    return {
        "outcome": result.get("outcome"),
        "detail": untrusted(str(result.get("detail", "")), 500),
        "external_id": result.get("external_id"),
        "tried": [untrusted(str(t), 300) for t in result.get("tried") or []],
        "replayed": bool(result.get("replayed")),
    }


def _verification_view(verification: dict[str, Any] | None) -> dict[str, Any] | None:
    if not verification:
        return None
    return {
        "resolved": bool(verification.get("resolved")),
        "summary": untrusted(str(verification.get("summary", "")), 500),
        "tool": verification.get("tool"),
        "checks": verification.get("checks", 0),
    }


def proposal_view(p: dict[str, Any]) -> dict[str, Any]:
    rule = p.get("policy") or {}
    return {
        "action": p.get("action"),
        "target": proposal_target(p),
        "target_ref": p.get("target_ref"),
        "reason": cut_quoted(str(p.get("reason", "")), 300),
        "evidence": p.get("evidence", []),
        "fingerprint": p.get("fingerprint"),
        "risk": rule.get("risk"),
        "risk_reason": risk_reason(rule),
        "dry_run": rule.get("dry_run"),
        "approvals_required": rule.get("approvals_required"),
        "approver_roles": rule.get("approver_roles") or [],
        "approvals": rule.get("approvals") or [],
        "state": p.get("state") or rule.get("state"),
        "result": _result_view(p.get("result")),
        "verification": _verification_view(p.get("verification")),
    }


def approval_view(a: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": a["id"],
        "investigation_id": a["investigation_id"],
        "status": a["status"],
        "summary": cut_quoted(a.get("summary") or "", 300),
        "fingerprint": a["fingerprint"],
        "proposals": [proposal_view(p) for p in a.get("proposals") or []],
        "requester": a["requester"],
        "origin": a["origin"],
        "created_at": a["created_at"],
        "expires_at": a["expires_at"],
        "decided_by": a.get("decided_by"),
        "decided_at": a.get("decided_at"),
        "comment": a.get("comment"),
        "outcome": a.get("outcome"),
    }


def approval_request_view(a: dict[str, Any]) -> dict[str, Any]:
    return approval_view(a) if a else {}
