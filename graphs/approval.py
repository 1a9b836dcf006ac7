"""The approval gate: every proposed remediation stops here until a human decides."""

from __future__ import annotations

from typing import Any

from langgraph.types import interrupt

from graphs.state import ApprovalDecision, ApprovalRequest, State


def request_approval(state: State) -> dict[str, Any]:
    """Pause with a JSON approval request; on resume record the decision. Nothing is executed here.

    A resumed node starts again from the top, so everything before `interrupt` must be
    side-effect free (it is: building the request only reads state).
    """
    request = ApprovalRequest(
        proposals=state.get("proposals", []),
        summary=(state.get("report") or {}).get("headline", ""),
    )
    raw = interrupt(request.model_dump(mode="json"))
    decision = ApprovalDecision.model_validate(raw)
    wanted = set(decision.actions) or {p["action"] for p in state.get("proposals", [])}
    decided = [
        {
            **p,
            "decision": decision.decision if p["action"] in wanted else "reject",
            "approver": decision.approver,
        }
        for p in state.get("proposals", [])
    ]
    status = "approved" if decision.decision == "approve" else "rejected"
    note = (
        "approved; the remediation policy decides whether and how it runs (without one, nothing was run)"
        if status == "approved"
        else "rejected; nothing was run"
    )
    return {
        "approval": {**decision.model_dump(mode="json"), "proposals": decided, "outcome": note},
        "status": status,
        "executed_actions": [],
    }
