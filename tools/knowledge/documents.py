"""Knowledge documents (past incidents and runbooks), their content hash, and their chunks by heading."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator

from tools.world import PastIncident, parse_ts

DocKind = Literal["incident", "runbook"]
MAX_CHUNK_CHARS = 1200  # a section longer than this is cut at paragraph breaks
SUMMARY_FIELD_CHARS = 400  # each field's share of the summary chunk
_IDENT = re.compile(r"[A-Za-z0-9_][\w.:/-]*[A-Za-z0-9_]|[A-Za-z0-9_]")


class Section(BaseModel):
    """One headed part of a long document (a postmortem's 'Timeline', a runbook's 'Rollback')."""

    heading: str
    text: str


# A list of names; front matter and ITSM fields may also give one comma- or space-separated string.
Names = Annotated[
    list[str],
    WithJsonSchema(
        {"anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "string"}], "default": []}
    ),
]


class KnowledgeDoc(BaseModel):
    """A past incident or a runbook, from any source, with what retrieval and citations need."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    kind: DocKind = "incident"
    title: str = Field(min_length=1)
    occurred_at: Annotated[
        datetime | None,
        WithJsonSchema(
            {
                "anyOf": [
                    {"type": "string", "format": "date-time"},
                    {"type": "string", "format": "date"},
                    {"type": "string", "maxLength": 0},
                    {"type": "null"},
                ],
                "default": None,
            }
        ),
    ] = None
    services: Names = Field(default_factory=list)
    cis: Names = Field(default_factory=list)
    tags: Names = Field(default_factory=list)
    symptoms: str = ""
    root_cause: str = ""
    resolution: str = ""
    steps: list[str] = Field(default_factory=list)  # a runbook's checklist, in order
    sections: list[Section] = Field(default_factory=list)  # the rest of a long document, by heading
    source: str = ""  # where it came from: file:PATH, servicenow, jira, learned, seed
    url: str | None = None  # link to the source record

    @field_validator("occurred_at", mode="before")
    @classmethod
    def _ts(cls, v: Any) -> datetime | None:
        return None if v in (None, "") else parse_ts(v)

    @field_validator("services", "cis", "tags", mode="before")
    @classmethod
    def _names(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [p for p in re.split(r"[,\s]+", v) if p]
        if isinstance(v, list) and any(not isinstance(x, str) for x in v):
            raise ValueError("each name must be a string")
        return [x.strip() for x in v if x.strip()] if isinstance(v, list) else v

    @classmethod
    def from_incident(cls, inc: PastIncident, *, source: str = "", url: str | None = None) -> KnowledgeDoc:
        return cls(**inc.model_dump(), source=source, url=url)

    def incident(self) -> PastIncident:
        """The SPEC `past_incidents` shape of this document (a runbook's steps become its resolution)."""
        resolution = self.resolution or "; ".join(self.steps)
        return PastIncident(
            id=self.id,
            title=self.title,
            occurred_at=self.occurred_at,
            services=list(self.services),
            symptoms=self.symptoms,
            root_cause=self.root_cause,
            resolution=resolution,
            tags=list(self.tags),
        )

    def content_hash(self) -> str:
        """sha256 of everything retrieval and citations use: equal hashes, nothing to re-ingest."""
        data = self.model_dump(mode="json")
        return hashlib.sha256(json.dumps(data, sort_keys=True, ensure_ascii=False).encode()).hexdigest()

    @property
    def occurred_ts(self) -> int | None:
        if self.occurred_at is None:
            return None
        when = self.occurred_at if self.occurred_at.tzinfo else self.occurred_at.replace(tzinfo=UTC)
        return int(when.timestamp())

    def summary_text(self, *, problem_only: bool = False) -> str:
        """The first chunk: what the incident looked like, why, and what fixed it (or a runbook's
        steps). `problem_only` leaves out the resolution and tags: that is what gets embedded, since
        queries describe a problem, and shorter texts embed faster (the words still reach BM25)."""

        def cut(text: str) -> str:
            text = " ".join(text.split())
            return text if len(text) <= SUMMARY_FIELD_CHARS else text[: SUMMARY_FIELD_CHARS - 1] + "…"

        parts = [f"{self.title}."]
        if self.services or self.cis:
            parts.append(f"Services: {', '.join(dict.fromkeys(self.services + self.cis))}.")
        if self.symptoms:
            parts.append(f"Symptoms: {cut(self.symptoms)}.")
        if self.root_cause:
            parts.append(f"Root cause: {cut(self.root_cause)}.")
        if self.resolution and not problem_only:
            parts.append(f"Resolution: {cut(self.resolution)}.")
        if self.steps:
            parts.append(f"Steps: {cut('; '.join(self.steps))}.")
        if self.tags and not problem_only:
            parts.append(f"Tags: {', '.join(self.tags)}")
        return " ".join(parts)

    def chunks(self) -> list[Chunk]:
        """The summary chunk (id = the document's id), then one chunk per section, long sections cut.
        A chunk's `text` is embedded; its `lexical` text (the same plus the names that must match
        verbatim, and for the summary also the resolution and tags) is indexed by BM25."""
        terms = self.lexical_terms()
        summary = self.summary_text(problem_only=True)
        out = [
            Chunk(
                id=self.id,
                doc_id=self.id,
                n=0,
                heading="",
                text=summary,
                lexical=f"{self.summary_text()}\n{terms}",
            )
        ]
        for section in self.sections:
            for piece in _pieces(section.text):
                n = len(out)
                text = (
                    f"{self.title}. {section.heading}: {piece}"
                    if section.heading
                    else f"{self.title}. {piece}"
                )
                chunk = Chunk(
                    id=f"{self.id}#{n}",
                    doc_id=self.id,
                    n=n,
                    heading=section.heading,
                    text=text,
                    lexical=f"{text}\n{terms}",
                )
                out.append(chunk)
        return out

    def lexical_terms(self) -> str:
        """Names that must match verbatim wherever they occur in a chunk: id, services, CIs, tags."""
        return " ".join([self.id, *self.services, *self.cis, *self.tags])


class Chunk(BaseModel):
    """One piece of a document as it is embedded and indexed."""

    id: str
    doc_id: str
    n: int
    heading: str
    text: str  # embedded
    lexical: str  # indexed by BM25


def _pieces(text: str) -> list[str]:
    """`text` in pieces of at most MAX_CHUNK_CHARS, cut at paragraph (else line, else word) breaks."""
    text = text.strip()
    if not text:
        return []
    if len(text) <= MAX_CHUNK_CHARS:
        return [text]
    pieces: list[str] = []
    current = ""
    for para in re.split(r"\n\s*\n|\n", text):
        para = para.strip()
        while len(para) > MAX_CHUNK_CHARS:
            cut = para.rfind(" ", 0, MAX_CHUNK_CHARS)
            cut = cut if cut > 0 else MAX_CHUNK_CHARS
            if current:
                pieces.append(current)
                current = ""
            pieces.append(para[:cut].strip())
            para = para[cut:].strip()
        if current and len(current) + len(para) + 1 > MAX_CHUNK_CHARS:
            pieces.append(current)
            current = ""
        current = f"{current}\n{para}" if current else para
    if current:
        pieces.append(current)
    return [p for p in pieces if p]


def identifiers(text: str) -> set[str]:
    """Lower-cased words of `text`, names like ``sql-prod-03``, ``LCK_M_U`` or ``INC-3101`` kept whole."""
    return {t.lower() for t in _IDENT.findall(text)}
