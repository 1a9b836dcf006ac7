"""Ingest into the knowledge store: files and folders, resolved ServiceNow incidents and Jira issues
(incrementally, from the last run's watermark), with progress reported per batch."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from tools.itsm.history import ResolvedTicket
from tools.knowledge.documents import KnowledgeDoc, Section
from tools.knowledge.readers import read_path
from tools.knowledge.store import IngestReport, KnowledgeStore
from tools.world import parse_ts

log = logging.getLogger(__name__)

Progress = Callable[[int], None]
ProgressFactory = Callable[[int, str], Progress]  # (total, what) -> advance(n)
_LABEL = re.compile(r"^\s*(root cause|cause|resolution|fix|workaround|symptoms?)\s*[:\-]\s*", re.I | re.M)


def ingest_path(store: KnowledgeStore, path: Path, progress: ProgressFactory | None = None) -> IngestReport:
    """Every Markdown/YAML/JSON document under `path`; unreadable files are in `report.skipped`."""
    read = read_path(path)
    advance = progress(len(read.docs), f"ingesting {path}") if progress else None
    report = store.ingest(read.docs, progress=advance)
    report.skipped += read.problems
    return report


def _labelled(text: str) -> dict[str, str]:
    """'Root cause: ...' / 'Fix: ...' paragraphs of free text, by label."""
    found: dict[str, str] = {}
    matches = list(_LABEL.finditer(text))
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        label = m.group(1).lower()
        key = {
            "cause": "root_cause",
            "root cause": "root_cause",
            "fix": "resolution",
            "workaround": "resolution",
        }
        found.setdefault(
            key.get(label, "symptoms" if label.startswith("symptom") else label), text[m.end() : end].strip()
        )
    return found


def ticket_doc(ticket: ResolvedTicket) -> KnowledgeDoc:
    """A resolved ticket as a past incident: the description is what it looked like, the close notes
    (or Jira resolution and last comment) what fixed it, the work notes/comments its timeline."""
    notes = _labelled(ticket.resolution) | {
        k: v for k, v in _labelled(ticket.description).items() if k != "resolution" or not ticket.resolution
    }
    description = _LABEL.split(ticket.description)[0].strip() or ticket.description
    resolution = notes.get("resolution") or _LABEL.sub("", ticket.resolution).strip() or ticket.resolution
    sections = []
    if ticket.description and len(ticket.description) > len(description):
        sections.append(Section(heading="Description", text=ticket.description))
    if ticket.notes:
        what = "Work notes" if ticket.system == "servicenow" else "Comments"
        lines = [
            f"{n.at:%Y-%m-%d %H:%M} {n.by or ''}: {n.text}".strip() if n.at else n.text for n in ticket.notes
        ]
        sections.append(Section(heading=what, text="\n\n".join(lines)))
    return KnowledgeDoc(
        id=ticket.number,
        kind="incident",
        title=ticket.title or ticket.number,
        occurred_at=ticket.opened_at,
        services=list(dict.fromkeys([*ticket.services, *ticket.cis])),
        cis=list(ticket.cis),
        tags=list(dict.fromkeys([*ticket.labels, *([ticket.close_code] if ticket.close_code else [])])),
        symptoms=notes.get("symptoms") or description,
        root_cause=notes.get("root_cause", ""),
        resolution=resolution,
        sections=sections,
        source=ticket.system,
        url=ticket.url,
    )


def ingest_tickets(
    store: KnowledgeStore,
    system: str,
    read: Callable[[datetime | None], list[ResolvedTicket]],
    *,
    full: bool = False,
    progress: ProgressFactory | None = None,
) -> IngestReport:
    """Resolved tickets of `system` updated since the last run (all of them with `full`); the
    watermark moves to the newest update read, once the tickets are stored."""
    mark = None if full else store.watermark(system)
    since = parse_ts(mark) if mark else None
    tickets = read(since)
    advance = progress(len(tickets), f"ingesting {system}") if progress else None
    report = store.ingest((ticket_doc(t) for t in tickets), progress=advance)
    newest = max((t.updated_at for t in tickets if t.updated_at), default=None)
    if newest is not None and (since is None or newest > since):
        store.set_watermark(system, newest.isoformat())
    log.info(
        "%s: %d resolved tickets since %s: %s", system, len(tickets), mark or "the start", report.summary()
    )
    return report
