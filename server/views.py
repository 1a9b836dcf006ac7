"""What the API, the CLI and webhooks show of investigations and approvals: untrusted text cut short."""

from __future__ import annotations

from typing import Any

from server.text import cut_quoted, untrusted


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
        "proposals": row.get("proposals") or [],
        "answer": row.get("answer") or "",
        "explanation": report.get("explanation"),
        "coverage": report.get("coverage", []),  # what was not seen, said next to the headline
        "checked": report.get("checked", {}),  # entity -> specialist -> concerns examined
        "chain": report.get("chain", []),  # the causal chain, root first
        "window": report.get("window", ""),
        "pictures": report.get("pictures", []),
        "evidence_rows": report.get("evidence_rows", {}),
    }


def approval_view(a: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": a["id"],
        "investigation_id": a["investigation_id"],
        "status": a["status"],
        "summary": cut_quoted(a.get("summary") or "", 300),
        "fingerprint": a["fingerprint"],
        "proposals": [
            {
                "action": p.get("action"),
                "target": untrusted(str(p.get("target", "")), 120),
                "target_ref": p.get("target_ref"),
                "reason": cut_quoted(str(p.get("reason", "")), 300),
                "evidence": p.get("evidence", []),
                "fingerprint": p.get("fingerprint"),
            }
            for p in a.get("proposals") or []
        ],
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
