"""Read-only knowledge tools: past incidents that look like the one under investigation."""

from __future__ import annotations

from typing import Any

from tools.base import Evidence, Finding, Severity, ToolResult, ViewTool, evidence_id, view_tool
from tools.sources import SourceError, ToolContext

DEFAULT_MIN_SCORE = 0.35
DEFAULT_TOP_K = 3
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


@view_tool("knowledge", parameters=_PARAMETERS, detects=("history",))
def similar_incidents(
    ctx: ToolContext,
    entity: str,
    query: str,
    min_score: float = DEFAULT_MIN_SCORE,
    k: int = DEFAULT_TOP_K,
) -> ToolResult:
    """Find past incidents whose symptoms resemble `query` on `entity`: their root cause and what
    fixed them. Scores are cosine similarities (0-1); a hit naming the entity as one of its services
    scores 0.1 higher. Only hits scoring at least `min_score` become findings."""
    eid = evidence_id("similar_incidents", entity)
    source = ctx.sources.knowledge
    if source is None:
        missing = "no knowledge base configured"
        return ToolResult(evidence=[_evidence(entity, missing, error=missing)])
    text = query if not entity or entity.lower() in query.lower() else f"{query} {entity}"
    try:
        hits = source.search(text, k=k)
    except SourceError as exc:
        return ToolResult(evidence=[_evidence(entity, f"knowledge search failed: {exc}", error=str(exc))])
    rows = [
        {
            "id": h.incident.id,
            "title": h.incident.title,
            "score": round(h.score, 2),
            "root_cause": h.incident.root_cause,
            "resolution": h.incident.resolution,
        }
        for h in hits
    ]
    # Cite the closest incident, and others only when they are nearly as close (a decoy that merely
    # shares words with this one scores clearly lower than the incident that really matches).
    best_score = hits[0].score if hits else 0.0
    relevant = [h for h in hits if h.score >= min_score and h.score >= best_score - CITE_MARGIN]
    if relevant:
        best = relevant[0]
        summary = (
            f"{len(relevant)} of {source.size()} past incidents resemble this one; "
            f"closest {best.incident.id} (similarity {best.score:.2f})"
        )
    else:
        top = f"; closest scored {hits[0].score:.2f}" if hits else ""
        summary = f"no past incident scores {min_score:.2f} or more out of {source.size()}{top}"
    evidence = _evidence(entity, summary, rows=rows, row_count=len(rows))
    findings = [
        Finding(
            specialist="knowledge",
            entity=entity,
            kind="similar_incident",
            severity=Severity.INFO,
            title=f"Seen before: {h.incident.id} '{h.incident.title}' (similarity {h.score:.2f})",
            detail=_detail(h.incident.root_cause, h.incident.resolution),
            evidence=[eid],
            data={
                "incident_id": h.incident.id,
                "title": h.incident.title,
                "score": round(h.score, 4),
                "resolution": h.incident.resolution,
            },
        )
        for h in relevant
    ]
    return ToolResult(evidence=[evidence], findings=findings)


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


def _detail(root_cause: str, resolution: str) -> str:
    parts = []
    if root_cause:
        parts.append(f"Root cause then: {root_cause.rstrip('.')}.")
    if resolution:
        parts.append(f"What fixed it: {resolution.rstrip('.')}.")
    return " ".join(parts)


KNOWLEDGE_TOOLS: tuple[ViewTool, ...] = (similar_incidents,)
