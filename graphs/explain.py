"""The model's explanation: a compact digest of the findings in, grounded sentences out."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from agents.llm import ModelHandle
from agents.prompting import render_messages
from graphs.grounding import MAX_SENTENCES, NUMBER, ground
from graphs.sentences import split_sentences
from graphs.synthesize import Report, ReportFinding, is_healthy

log = logging.getLogger(__name__)

DIGEST_FINDINGS = 6
# Generation stops once this many complete sentences have arrived (grounding keeps at most
# MAX_SENTENCES): on 2 cores each further sentence costs ~2 s, and the 15 s budget per
# investigation leaves no room for spares.
ENOUGH_SENTENCES = MAX_SENTENCES
_TITLE_CHARS = 200
_FACT_CHARS = 60
_FACTS = 3


def _clip(text: str, limit: int) -> str:
    """At most ``limit`` characters, cut at a word boundary (a cut word gets copied as it is)."""
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip(",;:(") + " …"


def _facts(detail: str) -> list[str]:
    """Up to three short clauses of a finding's detail that carry numbers (what the title leaves out)."""
    out: list[str] = []
    for clause in re.split(r"(?<=[;.])\s+|\s*[;:]\s+", detail):
        clause = clause.strip(" .;")
        if clause and NUMBER.search(clause) and len(clause) <= _FACT_CHARS and clause not in out:
            out.append(clause)
        if len(out) == _FACTS:
            break
    return out


def digest(findings: list[ReportFinding]) -> list[dict[str, Any]]:
    """One compact line per finding (evidence id, severity, entity, what, numbers): small models
    copy prose, and a digest gives them the facts without sentences to copy."""
    problems = [f for f in findings if f.severity.value != "info"]
    chosen = (problems + [f for f in findings if f.severity.value == "info"])[:DIGEST_FINDINGS]
    return [
        {
            "refs": " ".join(f"[{r}]" for r in f.evidence_refs),
            "severity": f.severity.value,
            "entity": f.entity,
            "what": f.kind.replace("_", " "),
            "title": _clip(f.title, _TITLE_CHARS),
            "numbers": "; ".join(_facts(f.detail)),
        }
        for f in chosen
    ]


def _enough(text: str) -> bool:
    return len(split_sentences(text)[0]) >= ENOUGH_SENTENCES


class _CheckedStream:
    """Shows a sentence of the streamed text only once it is complete and grounded."""

    def __init__(self, report: Report, show: Callable[[str], None] | None) -> None:
        self.report, self.show = report, show
        self.text = ""
        self.shown = 0

    def piece(self, piece: str) -> None:
        self.text += piece
        sentences, fragment = split_sentences(self.text)
        settled = sentences if fragment else sentences[:-1]  # the last one may still get its [E#]
        self.flush(ground(" ".join(settled), self.report).kept)

    def flush(self, kept: list[str]) -> None:
        for sentence in kept[self.shown :]:
            if self.show is not None:
                self.show((" " if self.shown else "") + sentence)
            self.shown += 1


def explain(report: Report, model: ModelHandle, on_token: Callable[[str], None] | None = None) -> str | None:
    """Ask the model to explain the findings; keep only the sentences the report supports.

    ``on_token`` receives the kept sentences as they are checked, never unchecked text. Fills
    ``report.explanation_sentences`` / ``explanation_dropped`` (and the reasons) and returns the
    kept text, or None when nothing survived or the model did not answer.
    """
    if not model.available:
        return None
    messages = render_messages(
        "synthesize.jinja2",
        request=report.request,
        findings=digest(report.findings),
        proposals=[{"action": p.action, "target": p.target} for p in report.proposals],
        citations=[c.incident_id for c in report.citations],
        max_sentences=MAX_SENTENCES,
        healthy=is_healthy(report),
        not_checked=[line for line in report.coverage if "not checked" in line.lower()][:4],
    )
    stream = _CheckedStream(report, on_token)
    text = model.text(messages, on_token=stream.piece, enough=_enough)
    if not text:
        return None
    grounded = ground(text, report)
    stream.flush(grounded.kept)
    report.explanation_sentences = len(grounded.kept)
    report.explanation_dropped = len(grounded.dropped)
    report.explanation_dropped_reasons = [f"{why}: {sentence[:160]}" for sentence, why in grounded.dropped]
    for sentence, why in grounded.dropped:
        log.info("explanation sentence dropped (%s): %s", why, sentence)
    if not grounded.kept and grounded.dropped:
        report.notes.append(
            f"the model's explanation was left out: none of its {len(grounded.dropped)} sentence(s) "
            "is supported by the findings"
        )
    return grounded.text or None
