"""Live investigations read the persistent knowledge store (DATA_DIR/knowledge by default); the estate's
knowledge_seed is ingested into it incrementally, so restarting the service changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from server import runtime
from server.knowledge import knowledge_path
from server.settings import Settings
from tools.knowledge.store import KnowledgeStore

ROOT = Path(__file__).resolve().parent.parent


def test_live_sources_use_the_persistent_store_and_the_seed_once(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, estate={"knowledge_seed": str(ROOT / "docs" / "knowledge")})  # type: ignore[arg-type]
    first = runtime.live_sources(settings).knowledge
    assert isinstance(first, KnowledgeStore) and first.size() == 4
    assert knowledge_path(settings).is_dir() and first.collection_name == "past_incidents"
    revision = first.revision
    again = runtime.live_sources(settings).knowledge  # a restart: the unchanged seed changes nothing
    assert isinstance(again, KnowledgeStore) and again.revision == revision and again.size() == 4
    hit = again.search("WRITELOG waits, commits slow on sql-prod-10", k=1)[0]
    assert hit.incident.id == "PM-2025-031" and hit.url == "https://wiki.example.com/postmortems/PM-2025-031"


def test_an_existing_store_is_enough_for_live_knowledge(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    with pytest.raises(runtime.NoLiveSources):
        runtime.live_sources(settings)
    knowledge_path(settings).mkdir(parents=True)
    assert isinstance(runtime.live_sources(settings).knowledge, KnowledgeStore)
