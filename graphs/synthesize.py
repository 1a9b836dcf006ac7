"""The synthesizer: findings with their evidence, past incidents cited, a proposed remediation, an answer."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field

from agents.llm import ModelHandle
from agents.prompting import render_messages
from tools.base import SPECIALISTS, Evidence, Finding, ProposedAction, Severity
from tools.redact import redact_text

MAX_EXPLANATION_SENTENCES = 3
# Words a model may not use to recommend a change that no analyzer proposed.
DESTRUCTIVE = re.compile(
    r"\b(kill|terminate|restart|reboot|fail ?over|drop|delete|truncate|shut ?down|disable|revoke)\w*\b", re.I
)


class ReportFinding(BaseModel):
    number: int
    severity: Severity
    specialist: str
    entity: str
    kind: str
    title: str
    detail: str
    evidence_refs: list[str] = Field(default_factory=list)


class Citation(BaseModel):
    incident_id: str
    title: str
    score: float
    resolution: str = ""


class Report(BaseModel):
    """The structured answer; `render_answer` turns it into text. Works without any model."""

    request: str
    model: str
    headline: str
    findings: list[ReportFinding]
    evidence: list[dict[str, Any]]
    citations: list[Citation]
    proposals: list[ProposedAction]
    notes: list[str] = Field(default_factory=list)
    explanation: str | None = None
    specialists: list[str] = Field(default_factory=list)


def order_evidence(evidence: list[Evidence]) -> list[Evidence]:
    """Stable order whatever order parallel specialists finished in; duplicates dropped."""
    unique: dict[str, Evidence] = {}
    for e in evidence:
        unique.setdefault(e.id, e)
    rank = {name: i for i, name in enumerate(SPECIALISTS)}
    return sorted(unique.values(), key=lambda e: (rank[e.specialist], e.entity, e.tool))


def order_findings(findings: list[Finding]) -> list[Finding]:
    unique: dict[tuple[str, str, str], Finding] = {}
    for f in findings:
        unique.setdefault((f.kind, f.entity, f.title), f)
    rank = {name: i for i, name in enumerate(SPECIALISTS)}
    return sorted(unique.values(), key=lambda f: (-f.severity.rank, rank[f.specialist], f.entity, f.kind))


def choose_proposals(findings: list[Finding]) -> list[ProposedAction]:
    """Remediations come only from analyzer findings, most severe first, one per (action, target)."""
    seen: set[tuple[str, str]] = set()
    out = []
    for f in findings:
        p = f.remediation
        if p is None or p.action == "none" or (p.action, p.target) in seen:
            continue
        seen.add((p.action, p.target))
        out.append(p)
    return out


def headline(findings: list[Finding], entities: list[str]) -> str:
    problems = [f for f in findings if f.severity is not Severity.INFO and f.kind != "similar_incident"]
    scope = ", ".join(entities) if entities else "the estate"
    if not problems:
        return f"No issues found on {scope}: it looks healthy (nothing abnormal in the evidence gathered)."
    top = problems[0]
    more = (
        f" ({len(problems) - 1} more finding{'s' if len(problems) > 2 else ''} below)"
        if len(problems) > 1
        else ""
    )
    return f"Most likely cause: {top.title}{more}."


def build_report(
    request: str,
    model_name: str,
    entities: list[str],
    specialists: list[str],
    evidence: list[Evidence],
    findings: list[Finding],
    notes: list[str],
) -> Report:
    ordered_ev = order_evidence(evidence)
    refs = {e.id: f"E{i}" for i, e in enumerate(ordered_ev, start=1)}
    ordered = order_findings(findings)
    report_findings = [
        ReportFinding(
            number=i,
            severity=f.severity,
            specialist=f.specialist,
            entity=f.entity,
            kind=f.kind,
            title=f.title,
            detail=f.detail,
            evidence_refs=[refs[e] for e in f.evidence if e in refs],
        )
        for i, f in enumerate(ordered, start=1)
    ]
    citations = [
        Citation(
            incident_id=str(f.data.get("incident_id")),
            title=str(f.data.get("title", f.title)),
            score=float(f.data.get("score", 0.0)),
            resolution=str(f.data.get("resolution", "")),
        )
        for f in ordered
        if f.kind == "similar_incident" and f.data.get("incident_id")
    ]
    return Report(
        request=request,
        model=model_name,
        headline=headline(ordered, entities),
        findings=report_findings,
        evidence=[
            {"ref": refs[e.id], "id": e.id, "summary": e.summary, "error": e.error, "rows": e.row_count}
            for e in ordered_ev
        ],
        citations=citations,
        proposals=choose_proposals(ordered),
        notes=notes,
        specialists=specialists,
    )


def is_healthy(report: Report) -> bool:
    return not any(f.severity is not Severity.INFO and f.kind != "similar_incident" for f in report.findings)


CAUSAL = re.compile(r"\b(cause[sd]?|due to|because|root)\b", re.I)


def guard_explanation(text: str, report: Report) -> str:
    """Keep the model's words honest and short: drop unknown evidence refs, unproposed destructive
    advice, repeated sentences and a sentence cut off by the token limit."""
    known = {e["ref"] for e in report.evidence}
    text = re.sub(r"\[(E\d+)\]", lambda m: m.group(0) if m.group(1) in known else "", text)
    proposed = {p.action for p in report.proposals}
    healthy = is_healthy(report)
    kept: list[str] = []
    seen: set[str] = set()
    sentences = re.split(r"(?<=[.!?])\s+", text.strip())
    if sentences and not re.search(r"[.!?)\]]$", sentences[-1]):
        sentences = sentences[:-1]  # cut off mid-sentence
    for sentence in sentences:
        key = re.sub(r"\W+", " ", sentence.lower()).strip()
        if not key or key in seen:
            continue
        seen.add(key)
        if DESTRUCTIVE.search(sentence) and not proposed & {"kill_session", "restart_service", "failover"}:
            continue
        if healthy and CAUSAL.search(sentence):
            continue  # nothing abnormal was found: the model may not invent a cause
        kept.append(sentence)
    return " ".join(kept[:MAX_EXPLANATION_SENTENCES]).strip()


def explain(report: Report, model: ModelHandle, on_token: Callable[[str], None] | None = None) -> str | None:
    """Ask the model for a short explanation of the findings (redacted, wrapped as data)."""
    if not model.available:
        return None
    findings = [
        {
            "severity": f.severity.value,
            "text": redact_text(f"{f.entity}: {f.title}. {f.detail}")[:300],
            "cites": " ".join(f"[{r}]" for r in f.evidence_refs),
        }
        for f in report.findings[:5]
    ]
    messages = render_messages(
        "synthesize.jinja2",
        request=redact_text(report.request),
        findings=findings,
        proposals=[p.model_dump() for p in report.proposals],
        max_sentences=MAX_EXPLANATION_SENTENCES,
        healthy=is_healthy(report),
    )
    text = model.text(messages, on_token=on_token)
    if not text:
        return None
    return guard_explanation(text, report) or None


def render_answer(report: Report) -> str:
    """The answer as an operator reads it: headline, explanation, findings with evidence, history, action."""
    lines = [report.headline, ""]
    if report.explanation:
        lines += [
            f"Explanation ({report.model}; every claim should trace to the findings below):",
            report.explanation,
            "",
        ]
    lines.append("Findings:")
    if not report.findings:
        lines.append("  (no findings: the consulted sources returned nothing abnormal)")
    for f in report.findings:
        refs = f" [{', '.join(f.evidence_refs)}]" if f.evidence_refs else ""
        lines.append(f"  {f.number}. [{f.severity.value}] {f.title}{refs}")
        if f.detail:
            lines.append(f"     {f.detail}")
    if report.citations:
        lines += ["", "Seen before:"]
        for c in report.citations:
            fix = f" What fixed it: {c.resolution}" if c.resolution else ""
            lines.append(f'  - {c.incident_id} "{c.title}" (similarity {c.score:.2f}).{fix}')
    lines += ["", "Proposed remediation:"]
    if report.proposals:
        for p in report.proposals:
            lines.append(f"  - {p.action} {p.display_target()}: {p.reason} (requires approval; not executed)")
    else:
        lines.append("  - none proposed")
    lines += ["", "Evidence:"]
    for e in report.evidence:
        status = f" (error: {e['error']})" if e.get("error") else ""
        lines.append(f"  [{e['ref']}] {e['id']}: {e['summary']}{status}")
    if report.notes:
        lines += ["", "Notes:"] + [f"  - {n}" for n in report.notes]
    lines.append(f"Specialists consulted: {', '.join(report.specialists) or 'none'}. Model: {report.model}.")
    return "\n".join(lines)
