"""Citations of past incidents and runbooks in an answer: by id, with a link to the source record, a past
resolution told as what fixed it then (never as a fact about this incident), a runbook as a checklist."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, Field

from tools.base import Finding

CITED_KINDS = ("similar_incident", "runbook")


class Citation(BaseModel):
    incident_id: str  # the incident's or runbook's id
    title: str
    score: float
    resolution: str = ""
    kind: Literal["incident", "runbook"] = "incident"
    root_cause: str = ""
    occurred_at: str | None = None
    url: str | None = None
    steps: list[str] = Field(default_factory=list)


def citations_from_findings(findings: Iterable[Finding]) -> list[Citation]:
    """The knowledge specialist's findings as citations: incidents first, then runbooks, each in order."""
    out = []
    for f in findings:
        if f.kind not in CITED_KINDS or not f.data.get("incident_id"):
            continue
        d = f.data
        out.append(
            Citation(
                incident_id=str(d["incident_id"]),
                title=str(d.get("title", f.title)),
                score=float(d.get("score", 0.0)),
                resolution=str(d.get("resolution") or ""),
                kind="runbook" if f.kind == "runbook" else "incident",
                root_cause=str(d.get("root_cause") or ""),
                occurred_at=d.get("occurred_at"),
                url=d.get("url"),
                steps=[str(s) for s in d.get("steps") or []],
            )
        )
    return sorted(out, key=lambda c: c.kind == "runbook")


def citation_lines(citations: Iterable[Citation]) -> list[str]:
    """The 'Seen before' and 'Runbooks' blocks of an answer (empty when nothing is cited)."""
    cited = list(citations)
    incidents = [c for c in cited if c.kind == "incident"]
    runbooks = [c for c in cited if c.kind == "runbook"]
    lines: list[str] = []
    if incidents:
        lines += ["", "Seen before (what fixed a past incident is a lead to check here, not a finding):"]
        for c in incidents:
            when = f"{c.occurred_at[:10]}, " if c.occurred_at else ""
            lines.append(f'  - {c.incident_id} "{c.title}" ({when}similarity {c.score:.2f}).')
            if c.root_cause:
                lines.append(f"    Cause then: {c.root_cause.rstrip('.')}.")
            if c.resolution:
                lines.append(f"    Last time, this fixed it: {c.resolution.rstrip('.')}.")
            if c.url:
                lines.append(f"    Record: {c.url}")
    if runbooks:
        lines += ["", "Runbooks:"]
        for c in runbooks:
            link = f" {c.url}" if c.url else ""
            lines.append(f'  - {c.incident_id} "{c.title}" (match {c.score:.2f}){link}')
            lines += [f"    [ ] {i}. {step}" for i, step in enumerate(c.steps, start=1)]
    return lines
