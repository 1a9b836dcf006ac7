"""The synthesizer: findings with their evidence, past incidents cited, a proposed remediation, an answer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field

from graphs.correlate import Correlation, chain_lines, role_words
from graphs.correlate import key as chain_key
from graphs.coverage import Coverage, checked_summary, detects_of, statements, unread_line, words
from graphs.state import Scope
from tools.base import SPECIALISTS, Evidence, Finding, ProposedAction, Severity
from tools.knowledge.cite import Citation, citation_lines, citations_from_findings


class ReportFinding(BaseModel):
    number: int
    severity: Severity
    specialist: str
    entity: str
    kind: str
    title: str
    detail: str
    evidence_refs: list[str] = Field(default_factory=list)
    role: str = ""  # graphs/correlate.py: root cause, symptom of N, independent fault


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
    explanation_sentences: int = 0  # sentences of the model's text kept (graphs/grounding.py)
    explanation_dropped: int = 0  # sentences dropped because the report does not support them
    explanation_dropped_reasons: list[str] = Field(default_factory=list)
    specialists: list[str] = Field(default_factory=list)
    window: str = ""  # what was looked at: the window, search terms (graphs/request.py)
    context: list[str] = Field(default_factory=list)  # the alert answered as an alert, follow-ups
    chain: list[str] = Field(default_factory=list)  # the causal chain, rendered (graphs/correlate.py)
    coverage: list[str] = Field(default_factory=list)  # what was not seen, said next to the headline
    checked: dict[str, dict[str, list[str]]] = Field(default_factory=dict)  # entity -> specialist -> concerns


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


def problem_findings(findings: list[Finding], root: Finding | None = None) -> list[Finding]:
    """The ordered findings that are problems (not informational, not a past incident); the root of the
    best-supported causal chain (graphs/correlate.py), when there is one, leads."""
    problems = [f for f in findings if f.severity is not Severity.INFO and f.kind != "similar_incident"]
    if root is not None:
        problems = [root, *[f for f in problems if f is not root]]
    return problems


def cause_headline(problems: list[Finding]) -> str:
    """The leading problem; how many more follow."""
    top = problems[0]
    more = (
        f" ({len(problems) - 1} more finding{'s' if len(problems) > 2 else ''} below)"
        if len(problems) > 1
        else ""
    )
    return f"Most likely cause: {top.title}{more}."


def unchecked_headline(coverage: Coverage, problems: list[Finding]) -> str:
    """What was asked could not be seen: say so first; what was found instead follows."""
    gaps = [g for g in coverage.gaps if set(g.concerns) & set(coverage.asked_unchecked)]
    where = ", ".join(dict.fromkeys(g.entity for g in gaps)) or ", ".join(coverage.targets) or "the estate"
    reasons = "; ".join(dict.fromkeys(g.reason for g in gaps))
    text = f"{words(coverage.asked_unchecked).capitalize()} on {where}: not checked" + (
        f" ({reasons})." if reasons else "."
    )
    if problems:
        text += f" Found instead: {problems[0].title}."
    return text


def _concerns_seen(evidence: list[Evidence]) -> Callable[[Finding], set[str]]:
    """The concerns a finding speaks to: what the tools behind its evidence detect (tools/coverage.py)."""
    tool_of = {e.id: (e.specialist, e.tool) for e in evidence}

    def seen(f: Finding) -> set[str]:
        return set().union(*(detects_of(*tool_of[e]) for e in f.evidence if e in tool_of))

    return seen


def answering_findings(
    findings: list[Finding], seen_by: Callable[[Finding], set[str]], coverage: Coverage | None
) -> list[Finding]:
    """For a question about specific concerns ("were there deadlocks?", "anything long-running?"), the
    informational findings of the tools that detect them: what the answer leads with when nothing is a
    problem, rather than a bare "no problem with deadlocks" over a deadlock the database did record."""
    if coverage is None or coverage.broad or not coverage.asked:
        return []
    asked = set(coverage.asked)
    return [
        f
        for f in findings
        if f.severity is Severity.INFO and f.kind != "similar_incident" and asked & seen_by(f)
    ]


def _without_answered_partials(
    coverage: Coverage, findings: list[Finding], seen_by: Callable[[Finding], set[str]]
) -> Coverage:
    """A concern checked by one source only is worth a line only when that source found no problem with
    it: "checked by database only" matters next to "no deadlocks", not next to a deadlock storm."""
    found = {(f.entity, c) for f in findings if f.severity is not Severity.INFO for c in seen_by(f)}
    kept = []
    for g in coverage.partial:
        if left := [c for c in g.concerns if (g.entity, c) not in found]:
            kept.append(g.model_copy(update={"concerns": left}))
    return coverage.model_copy(update={"partial": kept})


def answered_headline(coverage: Coverage, answering: list[Finding]) -> str:
    """Nothing is a problem, and the question named what to look at: lead with what those tools found."""
    lead = "; ".join(dict.fromkeys(f.title for f in answering[:2]))
    rest = f"Nothing else abnormal in what was checked ({checked_summary(coverage)})"
    if not coverage.complete:
        rest += ", but that is not an all-clear: see what was not checked"
    return f"{lead}. {rest}."


def all_clear_headline(coverage: Coverage) -> str:
    """No problem found: a claim about exactly what was examined, never more."""
    if not coverage.checked:
        if coverage.unknown:
            u = coverage.unknown[0]
            known = f"; known: {', '.join(u.closest)}" if u.closest else ""
            return f"{u.name} is not a known {u.kind}{known}. Nothing else was examined in its place."
        if coverage.unread:
            return unread_line(coverage.unread[0])
        return "Nothing was examined that could answer this: no source with data matched the request."
    scope = ", ".join(list(coverage.checked)[:6]) + (" ..." if len(coverage.checked) > 6 else "")
    if coverage.complete:  # "healthy" for a health question; otherwise only what was asked was looked at
        if coverage.broad:
            verdict = "it looks healthy; "
        else:
            verdict = f"no problem with {words(coverage.asked)}; " if coverage.asked else ""
        return (
            f"No issues found on {scope}: {verdict}nothing abnormal in what was checked "
            f"({checked_summary(coverage)})."
        )
    return (
        f"Nothing abnormal in what was checked on {scope} ({checked_summary(coverage)}), "
        "but that is not an all-clear: see what was not checked below."
    )


def asked_unchecked(coverage: Coverage) -> bool:
    """The request asked about specific concerns, and none of them was checked anywhere."""
    return bool(coverage.asked) and len(coverage.asked_unchecked) == len(coverage.asked)


def headline(
    findings: list[Finding],
    entities: list[str],
    coverage: Coverage | None = None,
    root: Finding | None = None,
    answering: list[Finding] | None = None,
) -> str:
    """The answer's first line, from the ordered findings, the causal root and what was examined."""
    problems = problem_findings(findings, root)
    if coverage is None:  # no coverage known: the bare verdict
        scope = ", ".join(entities) if entities else "the estate"
        if not problems:
            return f"No issues found on {scope}: nothing abnormal in the evidence gathered."
        return cause_headline(problems)
    if asked_unchecked(coverage):
        return unchecked_headline(coverage, problems)
    if problems:
        return cause_headline(problems)
    if answering and coverage.checked:
        return answered_headline(coverage, answering)
    return all_clear_headline(coverage)


def build_report(
    request: str,
    model_name: str,
    entities: list[str],
    specialists: list[str],
    evidence: list[Evidence],
    findings: list[Finding],
    notes: list[str],
    correlation: Correlation | None = None,
    window: str = "",
    context: list[str] | None = None,
    *,
    subject: Scope | None = None,
    coverage: Coverage | None = None,
) -> Report:
    """The structured answer. With `coverage`, the headline claims only what was examined and the lines
    under it say what was not seen (unknown names, unread instances, concerns no tool checked)."""
    ordered_ev = order_evidence(evidence)
    refs = {e.id: f"E{i}" for i, e in enumerate(ordered_ev, start=1)}
    ordered = order_findings(findings)
    root = next((f for f in ordered if correlation is not None and chain_key(f) == correlation.root), None)
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
    chain: list[str] = []
    if correlation is not None:
        numbers = {chain_key(f): rf.number for f, rf in zip(ordered, report_findings, strict=True)}
        cited = {chain_key(f): rf.evidence_refs for f, rf in zip(ordered, report_findings, strict=True)}
        chain = chain_lines(correlation, ordered, numbers, cited)
        for f, rf in zip(ordered, report_findings, strict=True):
            rf.role = role_words(correlation, chain_key(f), numbers)
    citations = citations_from_findings(ordered)
    seen_by = _concerns_seen(ordered_ev)
    top = headline(ordered, entities, coverage, root, answering_findings(ordered, seen_by, coverage))
    said = []
    if coverage is not None:
        coverage = _without_answered_partials(coverage, ordered, seen_by)
        omit = coverage.asked_unchecked if asked_unchecked(coverage) else []
        said = [s for s in statements(coverage, subject or Scope(), omit) if s != top]
    return Report(
        request=request,
        model=model_name,
        headline=top,
        coverage=said,
        checked=coverage.checked if coverage else {},
        findings=report_findings,
        evidence=[
            {"ref": refs[e.id], "id": e.id, "summary": e.summary, "error": e.error, "rows": e.row_count}
            for e in ordered_ev
        ],
        citations=citations,
        proposals=choose_proposals(ordered),
        notes=notes,
        specialists=specialists,
        window=window,
        context=context or [],
        chain=chain,
    )


def is_healthy(report: Report) -> bool:
    """No problem among the findings (what was examined; see `Report.coverage` for what was not)."""
    return not any(f.severity is not Severity.INFO and f.kind != "similar_incident" for f in report.findings)


def render_answer(report: Report) -> str:
    """The answer as an operator reads it: headline, explanation, findings with evidence, history, action."""
    lines = [report.headline, *report.coverage]
    if report.window:
        lines.append(f"Window: {report.window}.")
    lines += [*report.context, *report.chain, ""]
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
        role = f" ({f.role})" if f.role else ""
        lines.append(f"  {f.number}. [{f.severity.value}] {f.title}{refs}{role}")
        if f.detail:
            lines.append(f"     {f.detail}")
    lines += citation_lines(report.citations)
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
