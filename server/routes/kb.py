"""/api/v1/kb: ingest documents (uploaded files, ServiceNow, Jira), search them, and the store's stats.

The store is opened once per app from its settings (kept in the app context's extras). Ingest needs
the admin role, search and stats a viewer. Server-side paths are never read: files are uploaded in
the body.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, Field, model_validator

from server.api_models import Problem
from server.deps import AUTH_RESPONSES, Admin, Ctx, Viewer
from server.settings import Settings
from tools.knowledge.documents import KnowledgeDoc
from tools.knowledge.retrieval import Query as KbQuery
from tools.knowledge.store import IngestReport, KnowledgeStore, KnowledgeStoreError
from tools.sources import SourceError

router = APIRouter(prefix="/kb", tags=["knowledge"], responses=AUTH_RESPONSES)


def knowledge_store(ctx: Ctx) -> KnowledgeStore:
    """The app's knowledge store (opened from its settings on first use)."""
    store = ctx.extras.get("knowledge_store")
    if store is None:
        from server.knowledge import knowledge_store as open_store

        try:
            store = ctx.extras["knowledge_store"] = open_store(ctx.settings)
        except KnowledgeStoreError as exc:
            raise HTTPException(503, f"knowledge store unavailable: {exc}") from None
    return store  # type: ignore[no-any-return]


Store = Annotated[KnowledgeStore, Depends(knowledge_store)]


class UploadedFile(BaseModel):
    """One file as `opscopilot kb ingest PATH` would read it: the name's suffix picks the format."""

    name: str = Field(min_length=1, description="e.g. postmortems/2025-12-03-writelog.md or incidents.yaml")
    content: str


class IngestRequest(BaseModel):
    """Exactly one of: files, documents, or an ITSM system."""

    files: list[UploadedFile] = Field(default_factory=list)
    documents: list[KnowledgeDoc] = Field(default_factory=list)
    itsm: Literal["servicenow", "jira"] | None = None
    full: bool = Field(
        default=False, description="ITSM: read everything, not only what changed since the last run"
    )

    @model_validator(mode="after")
    def _one_source(self) -> IngestRequest:
        given = [n for n in ("files", "documents", "itsm") if getattr(self, n)]
        if len(given) != 1:
            raise ValueError("give exactly one of files, documents or itsm")
        return self


class Skipped(BaseModel):
    file: str
    reason: str


class IngestResult(BaseModel):
    added: list[str]
    updated: list[str]
    unchanged: int
    chunks: int
    skipped: list[Skipped]
    seconds: float
    documents: int  # in the store afterwards


class Hit(BaseModel):
    id: str
    kind: str
    title: str
    score: float  # similarity shown to operators: cosine, +0.1 per kind of exact-name match
    similarity: float
    vector_rank: int | None
    lexical_rank: int | None
    matched: list[str]
    section: str
    services: list[str]
    occurred_at: datetime | None
    root_cause: str
    resolution: str  # what fixed it then: a lead to check, not a fact about the present incident
    steps: list[str]  # a runbook's checklist
    url: str | None


class SearchResult(BaseModel):
    incidents: list[Hit]
    runbooks: list[Hit]


@router.post(
    "/ingest",
    response_model=IngestResult,
    responses={
        400: {"model": Problem, "description": "the ITSM system asked for is not configured"},
        409: {"model": Problem, "description": "the store refuses (e.g. another embedding model)"},
        502: {"model": Problem, "description": "the ITSM system did not answer"},
        503: {"model": Problem, "description": "the knowledge store cannot be opened"},
    },
)
def ingest(body: IngestRequest, store: Store, ctx: Ctx, who: Admin) -> IngestResult:
    """Add or update documents by id; unchanged ones are left alone. A file that cannot be read is
    listed under `skipped` with the reason; the others are ingested."""
    try:
        if body.itsm:
            report = _ingest_itsm(ctx.settings, store, body.itsm, body.full)
        elif body.documents:
            report = store.ingest(body.documents)
        else:
            report = _ingest_files(store, body.files)
    except KnowledgeStoreError as exc:
        raise HTTPException(409, str(exc)) from None
    except SourceError as exc:
        raise HTTPException(502, str(exc)) from None
    return IngestResult(
        added=report.added,
        updated=report.updated,
        unchanged=report.unchanged,
        chunks=report.chunks,
        skipped=[Skipped(file=f, reason=r) for f, r in report.skipped],
        seconds=round(report.seconds, 3),
        documents=store.size(),
    )


def _ingest_files(store: KnowledgeStore, files: list[UploadedFile]) -> IngestReport:
    from tools.knowledge.readers import ReadError, read_text

    docs: list[KnowledgeDoc] = []
    skipped: list[tuple[str, str]] = []
    for f in files:
        try:
            found, problems = read_text(f.name, f.content)
        except ReadError as exc:
            skipped.append((f.name, str(exc)))
            continue
        docs += found
        skipped += problems
    report = store.ingest(docs)
    report.skipped += skipped
    return report


def _ingest_itsm(settings: Settings, store: KnowledgeStore, system: str, full: bool) -> IngestReport:
    from server.knowledge import TicketSourceError, ingest_from_itsm

    try:
        return ingest_from_itsm(settings, store, system, full=full)
    except TicketSourceError as exc:
        raise HTTPException(400, f"itsm: {exc}") from None


@router.get("/search", response_model=SearchResult)
def search(
    store: Store,
    who: Viewer,
    q: Annotated[str, Query(min_length=1, description="symptoms, an alert, an error code, a host, a ticket")],
    service: Annotated[list[str] | None, Query(description="only these services (repeatable)")] = None,
    ci: Annotated[list[str] | None, Query(description="only these configuration items (repeatable)")] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    kind: Literal["incident", "runbook", "all"] = "all",
    k: Annotated[int, Query(ge=1, le=50)] = 5,
) -> SearchResult:
    """Past incidents and runbooks, kept apart; vector and BM25 rankings fused."""
    out: dict[str, list[Hit]] = {"incident": [], "runbook": []}
    for one in ("incident", "runbook"):
        if kind not in (one, "all"):
            continue
        query = KbQuery(
            text=q,
            k=k,
            kinds=(one,),
            services=tuple(service or ()),
            cis=tuple(ci or ()),
            since=since,
            until=until,
        )
        out[one] = [Hit.model_validate(h.as_dict()) for h in store.retrieve(query)]
    return SearchResult(incidents=out["incident"], runbooks=out["runbook"])


@router.get("/stats")
def stats(store: Store, who: Viewer) -> dict[str, Any]:
    """Documents by kind and source, chunks, services, the embedding model and the watermarks."""
    return store.stats()
