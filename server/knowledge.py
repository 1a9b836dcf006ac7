"""Wiring of the knowledge base: where the team's store lives (a folder or a Chroma server) and how the
live sources open it. The CLI (`kb`), the API router and the live sources all come through here."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from server.settings import Settings

if TYPE_CHECKING:
    from tools.knowledge.ingest import ProgressFactory
    from tools.knowledge.store import IngestReport, KnowledgeStore

log = logging.getLogger(__name__)


@dataclass
class _Location:
    chroma_path: Path | None
    chroma_url: str | None


def knowledge_path(settings: Settings) -> Path:
    """The folder of the embedded persistent store: knowledge.chroma_path, else DATA_DIR/knowledge."""
    return settings.knowledge.chroma_path or settings.data_dir / "knowledge"


def knowledge_configured(settings: Settings) -> bool:
    """Whether live investigations have a knowledge base: a seed, a server, or a store folder."""
    k = settings.knowledge
    return bool(
        settings.estate.knowledge_seed is not None
        or k.chroma_url
        or k.chroma_path
        or knowledge_path(settings).is_dir()
    )


def knowledge_store(settings: Settings) -> KnowledgeStore:
    """The team's store: a Chroma server (knowledge.chroma_url) or the persistent folder. Raises
    KnowledgeStoreError with a clear message when it cannot be opened as configured (e.g. the
    collection was embedded with another model)."""
    from tools.knowledge.store import KnowledgeStore, knowledge_client

    k = settings.knowledge
    if k.chroma_url:
        client = knowledge_client(_Location(None, k.chroma_url))
        lexical = settings.data_dir / "knowledge-lexical" / re.sub(r"[^A-Za-z0-9.-]+", "_", k.chroma_url)
    else:
        folder = knowledge_path(settings)
        client = knowledge_client(_Location(folder, None))
        lexical = folder.with_name(folder.name + "-lexical")
    return KnowledgeStore(
        client,
        k.collection,
        embedding_model=k.embedding,
        lexical_dir=lexical,
        recency_half_life_days=k.recency_half_life_days,
    )


def live_knowledge(settings: Settings) -> KnowledgeStore:
    """The store for live investigations; the estate's knowledge_seed (a file or folder), when set,
    is ingested into it first, incrementally: an unchanged seed changes nothing."""
    from tools.knowledge.ingest import ingest_path

    store = knowledge_store(settings)
    seed = settings.estate.knowledge_seed
    if seed is not None:
        report = ingest_path(store, seed)
        for name, why in report.skipped:
            log.warning("knowledge seed: %s skipped: %s", name, why)
    return store


class TicketSourceError(ValueError):
    """An ITSM system cannot be ingested from as configured; the message says what to add or fix."""


def ingest_from_itsm(
    settings: Settings,
    store: KnowledgeStore,
    system: str,
    *,
    full: bool = False,
    progress: ProgressFactory | None = None,
) -> IngestReport:
    """Resolved records of `system` (servicenow or jira, from the estate settings) since the store's
    watermark for it. Raises TicketSourceError for missing or unusable settings and SourceError
    (ApiError) when the system does not answer."""
    from tools.knowledge.ingest import ingest_tickets

    cfg = getattr(settings.estate, system, None)
    if cfg is None:
        raise TicketSourceError(
            f"no estate.{system} section in the settings: add its url and credentials "
            f"(see config/settings.yaml) to ingest from {system}"
        )
    client: Any
    try:
        if system == "servicenow":
            from tools.itsm.servicenow import ServiceNowItsm

            client = ServiceNowItsm(cfg)
            read = client.resolved_incidents
        else:
            from tools.itsm.jira import JiraItsm

            client = JiraItsm(cfg)
            read = client.resolved_issues
    except ValueError as exc:
        raise TicketSourceError(f"estate.{system}: {exc}") from None
    try:
        return ingest_tickets(store, system, read, full=full, progress=progress)
    finally:
        client.close()
