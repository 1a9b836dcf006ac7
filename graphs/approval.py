"""The approval gate: every proposed remediation stops here until a human decides."""

from __future__ import annotations

import hashlib
from typing import Any

from langgraph.types import interrupt

from graphs.state import ApprovalDecision, ApprovalRequest, State
from tools.base import ProposedAction, escape_text


def proposal_fingerprints(proposals: list[dict[str, Any]]) -> list[str]:
    """Each proposal's fingerprint, computed from its content (never read from a stored field)."""
    return [ProposedAction.model_validate(p).fingerprint() for p in proposals]


def combined_fingerprint(fingerprints: list[str]) -> str:
    return hashlib.sha256("\n".join(fingerprints).encode()).hexdigest()


def approval_request(state: State) -> ApprovalRequest:
    proposals = state.get("proposals", [])
    prints = proposal_fingerprints(proposals)
    return ApprovalRequest(
        proposals=[{**p, "fingerprint": fp} for p, fp in zip(proposals, prints, strict=True)],
        summary=(state.get("report") or {}).get("headline", ""),
        fingerprint=combined_fingerprint(prints),
    )


def request_approval(state: State) -> dict[str, Any]:
    """Pause with a JSON approval request; on resume record the decision. Nothing is executed here.

    A resumed node starts again from the top, so everything before `interrupt` must be
    side-effect free (it is: building the request only reads state). On resume each proposal's
    fingerprint is computed again from the state: one that is not among the fingerprints the
    approver was shown is rejected, whatever the decision says.
    """
    request = approval_request(state)
    raw = interrupt(request.model_dump(mode="json"))
    decision = ApprovalDecision.model_validate(raw)
    proposals = state.get("proposals", [])
    wanted = set(decision.actions) or {p["action"] for p in proposals}
    shown = set(decision.fingerprints)
    decided, changed = [], []
    for p, fp in zip(proposals, proposal_fingerprints(proposals), strict=True):
        ok = decision.decision == "approve" and p["action"] in wanted
        if ok and shown and fp not in shown:
            ok = False
            changed.append(escape_text(str(p.get("target", "?"))))
        decided.append(
            {**p, "fingerprint": fp, "decision": "approve" if ok else "reject", "approver": decision.approver}
        )
    status = "approved" if decision.decision == "approve" and not changed else "rejected"
    if changed:
        note = (
            f"refused: the proposal for {', '.join(changed)} no longer matches the fingerprint the "
            "approver was shown; nothing was run"
        )
    elif status == "approved":
        note = (
            "approved; the remediation policy decides whether and how it runs (without one, nothing was run)"
        )
    else:
        note = "rejected; nothing was run"
    return {
        "approval": {**decision.model_dump(mode="json"), "proposals": decided, "outcome": note},
        "status": status,
        "executed_actions": [],
    }
