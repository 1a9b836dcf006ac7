"""Read-only knowledge tools: past incidents that look like the one under investigation, and runbooks."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from tools.base import Evidence, Finding, Severity, ToolResult, ViewTool, evidence_id, view_tool
from tools.knowledge.retrieval import Query
from tools.sources import KnowledgeHit, SourceError, ToolContext

log = logging.getLogger(__name__)

DEFAULT_MIN_SCORE = 0.35
DEFAULT_TOP_K = 3
RUNBOOKS_K = 2
CITE_MARGIN = 0.1  # hits this close to the best one are cited too

_PARAMETERS = {
    "type": "object",
    "properties": {
        "query": {
            "type": "string",
            "description": "the symptoms in a sentence: alert name, error text, affected service",
        }
    },
    "required": ["query"],
}


def _retrieve(
    ctx: ToolContext, text: str, k: int
) -> tuple[list[KnowledgeHit], list[KnowledgeHit], str | None]:
    """Incidents and runbooks for `text`. A hybrid store is asked with the scenario clock and, when a
    model is configured for it, a hypothetical matching incident (HyDE); any other KnowledgeSource
    answers `search`. Returns (incidents, runbooks, a note when HyDE was used)."""
    source = ctx.sources.knowledge
    assert source is not None
    retrieve = getattr(source, "retrieve", None)
    if retrieve is None:
        return source.search(text, k=k), [], None
    hypothesize: Callable[[str], str | None] | None = ctx.options.get("knowledge_hypothesis")
    hypothesis = hypothesize(text) if hypothesize else None
    incidents = retrieve(Query(text=text, k=k, kinds=("incident",), now=ctx.now, hypothesis=hypothesis))
    runbooks = retrieve(
        Query(text=text, k=RUNBOOKS_K, kinds=("runbook",), now=ctx.now, hypothesis=hypothesis)
    )
    note = "searched with a model-written hypothetical incident (HyDE)" if hypothesis else None
    return [h.knowledge_hit() for h in incidents], [h.knowledge_hit() for h in runbooks], note


@view_tool("knowledge", parameters=_PARAMETERS, detects=("history",))
def similar_incidents(
    ctx: ToolContext,
    entity: str,
    query: str,
    min_score: float = DEFAULT_MIN_SCORE,
    k: int = DEFAULT_TOP_K,
) -> ToolResult:
    """Find past incidents whose symptoms resemble `query` on `entity`: their root cause and what
    fixed them then, and the runbooks that apply. Retrieval is hybrid (meaning and exact words:
    error codes, wait types, host names, ticket numbers); scores are cosine similarities (0-1), 0.1
    higher when a service/CI named in the query is the incident's, and 0.1 higher when a code in the
    query (e.g. 9002, LCK_M_U) occurs in it. Only hits scoring at least `min_score` become findings."""
    eid = evidence_id("similar_incidents", entity)
    source = ctx.sources.knowledge
    if source is None:
        missing = "no knowledge base configured"
        return ToolResult(evidence=[_evidence(entity, missing, error=missing)])
    text = query if not entity or entity.lower() in query.lower() else f"{query} {entity}"
    try:
        hits, runbooks, note = _retrieve(ctx, text, k)
    except SourceError as exc:
        return ToolResult(evidence=[_evidence(entity, f"knowledge search failed: {exc}", error=str(exc))])
    rows = [_row(h) for h in [*hits, *runbooks]]
    relevant = _relevant(hits, min_score)
    relevant_runbooks = _relevant(runbooks, min_score)
    if relevant:
        best = relevant[0]
        summary = (
            f"{len(relevant)} of {source.size()} knowledge records resemble this one; "
            f"closest incident {best.incident.id} (similarity {best.score:.2f})"
        )
    else:
        top = f"; closest scored {hits[0].score:.2f}" if hits else ""
        summary = f"no past incident scores {min_score:.2f} or more out of {source.size()}{top}"
    if relevant_runbooks:
        summary += f"; runbook{'s' if len(relevant_runbooks) > 1 else ''} " + ", ".join(
            h.incident.id for h in relevant_runbooks
        )
    if note:
        summary += f" ({note})"
    evidence = _evidence(entity, summary, rows=rows, row_count=len(rows))
    findings = [_incident_finding(entity, eid, h) for h in relevant]
    findings += [_runbook_finding(entity, eid, h) for h in relevant_runbooks]
    return ToolResult(evidence=[evidence], findings=findings)


def _relevant(hits: list[KnowledgeHit], min_score: float) -> list[KnowledgeHit]:
    """The closest hit, and others only when they are nearly as close (a decoy that merely shares
    words with this incident scores clearly lower than the one that really matches). When the
    closest hit shares a code with the query (an error number, a wait type, an id), a hit sharing
    none is another problem, however close its wording: it is not cited."""
    best = max(hits, key=lambda h: h.score, default=None)
    if best is None:
        return []
    return [
        h
        for h in hits
        if h.score >= min_score
        and h.score >= best.score - CITE_MARGIN
        and (h is best or h.codes or not best.codes)
    ]


def _row(h: KnowledgeHit) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": h.incident.id,
        "kind": h.kind,
        "title": h.incident.title,
        "score": round(h.score, 2),
        "root_cause": h.incident.root_cause,
        "resolution": h.incident.resolution,
    }
    if h.url:
        row["url"] = h.url
    return row


def _incident_finding(entity: str, eid: str, h: KnowledgeHit) -> Finding:
    inc = h.incident
    when = f" on {inc.occurred_at:%Y-%m-%d}" if inc.occurred_at else ""
    parts = []
    if inc.root_cause:
        parts.append(f"Last time{when} the cause was: {inc.root_cause.rstrip('.')}.")
    if inc.resolution:
        parts.append(f"What fixed it then: {inc.resolution.rstrip('.')}.")
    return Finding(
        specialist="knowledge",
        entity=entity,
        kind="similar_incident",
        severity=Severity.INFO,
        title=f"Seen before: {inc.id} '{inc.title}' (similarity {h.score:.2f})",
        detail=" ".join(parts),
        evidence=[eid],
        data={
            "incident_id": inc.id,
            "title": inc.title,
            "score": round(h.score, 4),
            "resolution": inc.resolution,
            "root_cause": inc.root_cause,
            "occurred_at": inc.occurred_at.isoformat() if inc.occurred_at else None,
            "url": h.url,
            "matched": h.matched,
        },
    )


def _runbook_finding(entity: str, eid: str, h: KnowledgeHit) -> Finding:
    rb = h.incident
    return Finding(
        specialist="knowledge",
        entity=entity,
        kind="runbook",
        severity=Severity.INFO,
        title=f"Runbook: {rb.id} '{rb.title}' (match {h.score:.2f})",
        detail=f"{len(h.steps)} step(s), listed under Runbooks" if h.steps else rb.symptoms,
        evidence=[eid],
        data={
            "incident_id": rb.id,
            "kind": "runbook",
            "title": rb.title,
            "score": round(h.score, 4),
            "steps": list(h.steps),
            "url": h.url,
        },
    )


def _evidence(entity: str, summary: str, **fields: Any) -> Evidence:
    """The similar_incidents evidence on `entity`."""
    return Evidence(
        id=evidence_id("similar_incidents", entity),
        specialist="knowledge",
        tool="similar_incidents",
        entity=entity,
        summary=summary,
        **fields,
    )


KNOWLEDGE_TOOLS: tuple[ViewTool, ...] = (similar_incidents,)
