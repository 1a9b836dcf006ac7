"""Learning: an investigation that ended with an outcome (approved, executed, verified, or closed by a
human with a note) becomes a past incident, so the knowledge base grows from the copilot's own work."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, Field, model_validator

from tools.world import PastIncident

OutcomeKind = Literal["approved", "executed", "verified", "closed"]
HEADLINE_PREFIX = "Most likely cause: "
MAX_TITLE = 120


@runtime_checkable
class KnowledgeSink(Protocol):
    """Where outcomes are saved. `add` is idempotent by id: saving the same incident twice changes
    nothing, saving a changed one replaces it. KnowledgeStore implements it."""

    def add(self, incident: PastIncident) -> None: ...


class InvestigationOutcome(BaseModel):
    """How an investigation ended, as the approval/execution flow records it."""

    kind: OutcomeKind
    by: str = Field(min_length=1)  # the approver, executor or the human who closed it
    at: datetime
    note: str = ""  # required when a human closes it
    actions: list[str] = Field(default_factory=list)  # what was approved or run, e.g. "kill_session ... 57"
    thread_id: str | None = None  # the investigation's id; the learned incident's id derives from it
    ticket: str | None = None  # the ITSM record it was filed under, if any

    @model_validator(mode="after")
    def _closed_has_note(self) -> InvestigationOutcome:
        if self.kind == "closed" and not self.note.strip():
            raise ValueError("an investigation closed by a human needs a note saying what was found or done")
        return self


def learned_id(report: Mapping[str, Any], outcome: InvestigationOutcome) -> str:
    """The same investigation always gets the same id (so saving it again is a no-op)."""
    if outcome.ticket:
        return outcome.ticket
    basis = outcome.thread_id or f"{report.get('request', '')}|{outcome.at.isoformat()}"
    return f"OPS-{hashlib.sha256(basis.encode()).hexdigest()[:10].upper()}"


def incident_from_investigation(report: Mapping[str, Any], outcome: InvestigationOutcome) -> PastIncident:
    """A past incident from an investigation's report (graphs.synthesize.Report as a dict) and outcome:
    symptoms = the request and the problems found, root cause = the leading finding, resolution =
    what was approved/run and by whom (only what the outcome says happened), with the human's note."""
    problems = [
        f
        for f in report.get("findings") or []
        if f.get("severity") != "info" and f.get("kind") not in ("similar_incident", "runbook")
    ]
    request = " ".join(str(report.get("request", "")).split())
    headline = str(report.get("headline", ""))
    root_cause = headline.removeprefix(HEADLINE_PREFIX).rstrip(".") if problems else ""
    symptoms = "; ".join([request, *(str(f.get("title", "")) for f in problems[:4])])
    services = list(dict.fromkeys(str(f.get("entity")) for f in problems if f.get("entity")))
    actions = outcome.actions or [
        f"{p.get('action')} {p.get('target')}" for p in report.get("proposals") or [] if p.get("action")
    ]
    verb = {
        "approved": "approved (not yet run)",
        "executed": "executed",
        "verified": "executed and verified",
        "closed": "closed without action",
    }[outcome.kind]
    did = (
        f"{'; '.join(actions)}: {verb} by {outcome.by}"
        if actions and outcome.kind != "closed"
        else f"{verb} by {outcome.by}"
    )
    resolution = f"{did}. {outcome.note.strip()}".strip() if outcome.note.strip() else f"{did}."
    kinds = [str(f.get("kind")) for f in problems if f.get("kind")]
    tags = list(dict.fromkeys(["learned", outcome.kind, *(report.get("specialists") or []), *kinds]))
    title = request if len(request) <= MAX_TITLE else request[: MAX_TITLE - 1] + "…"
    return PastIncident(
        id=learned_id(report, outcome),
        title=title or root_cause or "investigation",
        occurred_at=outcome.at,
        services=services,
        symptoms=symptoms,
        root_cause=root_cause,
        resolution=resolution,
        tags=tags,
    )


def save_outcome(
    sink: KnowledgeSink, report: Mapping[str, Any], outcome: InvestigationOutcome
) -> PastIncident:
    """Turn the investigation into a past incident and save it in `sink` (idempotent)."""
    incident = incident_from_investigation(report, outcome)
    sink.add(incident)
    return incident
