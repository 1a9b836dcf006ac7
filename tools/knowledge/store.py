"""The knowledge store: documents chunked, embedded and kept in Chroma (embedded, persistent or a
server), stamped with the embedding model that made the vectors, ingested incrementally by content hash."""

from __future__ import annotations

import logging
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from chromadb.api import ClientAPI

from tools.knowledge.chroma import drop_collection, knowledge_client
from tools.knowledge.documents import KnowledgeDoc
from tools.knowledge.embedding import (
    MiniLMEmbeddingFunction,
    embed_bulk,
    embed_texts,
    embedding_dimension,
    load_embedding_model,
    model_identity,
)
from tools.knowledge.retrieval import Catalog, DocHit, Query, rank_documents
from tools.sources import KnowledgeHit, SourceCheck, SourceError
from tools.world import PastIncident

__all__ = [
    "ChromaKnowledge",
    "IngestReport",
    "KnowledgeStore",
    "KnowledgeStoreError",
    "MiniLMEmbeddingFunction",
    "embed_texts",
    "knowledge_client",
    "load_embedding_model",
]

log = logging.getLogger(__name__)

SCHEMA = 1
INGEST_BATCH = 256
READ_PAGE = 5000
REVISION_CHECK_S = 2.0  # how often a long-lived store looks for another process's ingest


class KnowledgeStoreError(SourceError):
    """The store cannot be used as configured; the message says why and what to do."""


@dataclass
class IngestReport:
    """What one ingest did. `skipped` names each unreadable input and why."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: int = 0
    chunks: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated)

    def summary(self) -> str:
        rate = (len(self.added) + len(self.updated) + self.unchanged) / self.seconds if self.seconds else 0.0
        text = (
            f"{len(self.added)} added, {len(self.updated)} updated, {self.unchanged} unchanged "
            f"({self.chunks} chunks embedded) in {self.seconds:.1f}s ({rate:.0f} documents/s)"
        )
        return text + (f"; {len(self.skipped)} skipped" if self.skipped else "")


class KnowledgeStore:
    """Past incidents and runbooks in one Chroma collection, searchable by meaning and by words.

    Implements the `KnowledgeSource` protocol (size, services, search) and the `KnowledgeSink`
    one (add). The collection records the embedding model's name and dimension; opening it with
    another model raises KnowledgeStoreError instead of mixing vectors. The BM25 index is rebuilt
    from the collection after each ingest that changed something, and kept in `lexical_dir`
    (when given) so that another process opens it without re-reading every document.
    """

    def __init__(
        self,
        client: ClientAPI | None = None,
        collection_name: str = "past_incidents",
        *,
        embedding_model: Path | str | None = None,
        lexical_dir: Path | None = None,
        recency_half_life_days: float = 365.0,
        owned: bool = False,
    ) -> None:
        self._client = client if client is not None else knowledge_client()
        self.collection_name = collection_name
        self.embedding_model = embedding_model
        self.model_name = model_identity(embedding_model)
        self.recency_half_life_days = recency_half_life_days
        self._lexical_dir = lexical_dir / collection_name if lexical_dir is not None else None
        self._lock = threading.RLock()
        self._catalog: Catalog | None = None
        self._checked_at = 0.0
        self._finalizer = (
            weakref.finalize(self, drop_collection, self._client, collection_name) if owned else None
        )
        self._collection = self._open_collection()

    # --- the collection and its stamp -------------------------------------------------------

    def _open_collection(self) -> Any:
        dimension = embedding_dimension(self.embedding_model)
        try:
            collection = self._client.get_or_create_collection(
                self.collection_name,
                configuration={"hnsw": {"space": "cosine"}},
                metadata={
                    "embedding_model": self.model_name,
                    "embedding_dimension": dimension,
                    "schema": SCHEMA,
                },
                embedding_function=None,
            )
        except Exception as exc:
            raise KnowledgeStoreError(
                f"cannot open knowledge collection {self.collection_name!r}: {exc}"
            ) from exc
        meta = dict(collection.metadata or {})
        recorded = meta.get("embedding_model")
        if recorded is None:
            if collection.count():
                raise KnowledgeStoreError(
                    f"knowledge collection {self.collection_name!r} holds {collection.count()} records "
                    "without a recorded embedding model (made by an older OpsCopilot): set "
                    "knowledge.collection to a new name and ingest again, or delete the collection"
                )
            meta.update(embedding_model=self.model_name, embedding_dimension=dimension, schema=SCHEMA)
            collection.modify(metadata=meta)
        elif recorded != self.model_name or int(meta.get("embedding_dimension", 0)) != dimension:
            raise KnowledgeStoreError(
                f"knowledge collection {self.collection_name!r} was embedded with {recorded} "
                f"({meta.get('embedding_dimension')} dimensions), but the configured embedding model is "
                f"{self.model_name} ({dimension} dimensions). Vectors of different models are never mixed: "
                f"set knowledge.embedding_model back to {recorded}, or set knowledge.collection to a new "
                "name and ingest again"
            )
        return collection

    def _metadata(self) -> dict[str, Any]:
        return dict(self._client.get_collection(self.collection_name).metadata or {})

    def _write_metadata(self, updates: dict[str, Any]) -> None:
        meta = self._metadata()
        meta.update(updates)
        self._collection.modify(metadata=meta)

    @property
    def revision(self) -> str:
        return str(self._metadata().get("revision", "empty"))

    def watermark(self, source: str) -> str | None:
        """When `source` (e.g. servicenow) was last ingested from, as its own timestamp text."""
        value = self._metadata().get(f"watermark:{source}")
        return str(value) if value else None

    def set_watermark(self, source: str, value: str) -> None:
        self._write_metadata({f"watermark:{source}": value})

    # --- ingest --------------------------------------------------------------------------------

    def ingest(
        self,
        docs: Iterable[KnowledgeDoc],
        *,
        progress: Callable[[int], None] | None = None,
        batch_size: int = INGEST_BATCH,
    ) -> IngestReport:
        """Upsert `docs` by id: a document whose content hash is unchanged is left alone, a changed
        one replaces all its chunks. `progress(n)` is called after each batch of n documents."""
        report = IngestReport()
        started = time.perf_counter()
        batch: dict[str, KnowledgeDoc] = {}
        with self._lock:
            for doc in docs:
                batch[doc.id] = doc
                if len(batch) >= batch_size:
                    self._ingest_batch(list(batch.values()), report)
                    if progress:
                        progress(len(batch))
                    batch = {}
            if batch:
                self._ingest_batch(list(batch.values()), report)
                if progress:
                    progress(len(batch))
            if report.changed:
                self._write_metadata({"revision": uuid.uuid4().hex})
                self._refresh(force=True)
        report.seconds = time.perf_counter() - started
        return report

    def _ingest_batch(self, docs: list[KnowledgeDoc], report: IngestReport) -> None:
        known = self._collection.get(ids=[d.id for d in docs], include=["metadatas"])
        hashes = {
            i: (m or {}).get("doc_hash") for i, m in zip(known["ids"], known["metadatas"] or [], strict=True)
        }
        changed = [d for d in docs if hashes.get(d.id) != d.content_hash()]
        report.unchanged += len(docs) - len(changed)
        if not changed:
            return
        replaced = [d.id for d in changed if d.id in hashes]
        if replaced:
            self._collection.delete(where={"doc_id": {"$in": replaced}})
        ids: list[str] = []
        texts: list[str] = []
        lexical: list[str] = []
        metas: list[dict[str, Any]] = []
        for doc in changed:
            chunks = doc.chunks()
            digest = doc.content_hash()
            for chunk in chunks:
                ids.append(chunk.id)
                texts.append(chunk.text)
                lexical.append(chunk.lexical)
                metas.append(_chunk_metadata(doc, chunk.n, chunk.heading, digest, len(chunks)))
        vectors = embed_bulk(texts, self.embedding_model)
        self._collection.upsert(ids=ids, embeddings=vectors, documents=lexical, metadatas=metas)  # type: ignore[arg-type]
        report.chunks += len(ids)
        report.updated += replaced
        report.added += [d.id for d in changed if d.id not in hashes]

    def add(
        self, incident: PastIncident | KnowledgeDoc, *, source: str = "learned", url: str | None = None
    ) -> None:
        """Save one incident (the `KnowledgeSink` protocol): idempotent by id, so saving the same
        incident again changes nothing, and a changed one replaces the old record."""
        doc = (
            incident
            if isinstance(incident, KnowledgeDoc)
            else KnowledgeDoc.from_incident(incident, source=source, url=url)
        )
        self.ingest([doc])

    # --- reading -------------------------------------------------------------------------------

    def _refresh(self, force: bool = False) -> Catalog:
        """The catalog (BM25 index + per-chunk filters) of the collection's current revision."""
        with self._lock:
            now = time.monotonic()
            if not force and self._catalog is not None and now - self._checked_at < REVISION_CHECK_S:
                return self._catalog
            self._checked_at = now
            revision = self.revision
            if not force and self._catalog is not None and self._catalog.revision == revision:
                return self._catalog
            catalog = Catalog.load(self._lexical_dir, revision) if self._lexical_dir else None
            if catalog is None:
                catalog = Catalog.build(revision, self._read_all())
                if self._lexical_dir is not None:
                    catalog.save(self._lexical_dir)
            self._catalog = catalog
            return catalog

    def _read_all(self) -> list[tuple[str, str, dict[str, Any]]]:
        rows: list[tuple[str, str, dict[str, Any]]] = []
        offset = 0
        while True:
            page = self._collection.get(include=["documents", "metadatas"], limit=READ_PAGE, offset=offset)
            docs, metas = page["documents"] or [], page["metadatas"] or []
            rows += [(i, d or "", dict(m or {})) for i, d, m in zip(page["ids"], docs, metas, strict=True)]
            if len(page["ids"]) < READ_PAGE:
                return rows
            offset += READ_PAGE

    def get(self, doc_id: str) -> KnowledgeDoc | None:
        found = self._collection.get(ids=[doc_id], include=["metadatas"])
        metas = found["metadatas"] or []
        return KnowledgeDoc.model_validate_json(str(metas[0]["doc"])) if metas else None

    def documents(self, ids: Sequence[str]) -> dict[str, KnowledgeDoc]:
        found = self._collection.get(ids=list(dict.fromkeys(ids)), include=["metadatas"])
        return {
            i: KnowledgeDoc.model_validate_json(str(m["doc"]))
            for i, m in zip(found["ids"], found["metadatas"] or [], strict=True)
            if m and m.get("doc")
        }

    def size(self) -> int:
        """How many documents (incidents and runbooks) the store holds."""
        return self._refresh().documents

    def services(self) -> set[str]:
        return set(self._refresh().service_names)

    def service_groups(self) -> list[tuple[str, list[str]]]:
        """(incident id, the services it names together): which services run on which instances."""
        catalog = self._refresh()
        spelled = {n.lower(): n for n in catalog.service_names}
        groups: dict[str, list[str]] = {}
        for doc, kind, names in zip(catalog.doc_ids, catalog.kinds, catalog.svc, strict=True):
            if kind != "incident":
                continue
            group = groups.setdefault(doc, [])
            group += [spelled.get(n, n) for n in names if spelled.get(n, n) not in group]
        return [(doc, names) for doc, names in groups.items() if len(names) > 1]

    def stats(self) -> dict[str, Any]:
        catalog = self._refresh()
        meta = self._metadata()
        return {
            "collection": self.collection_name,
            "documents": catalog.documents,
            "incidents": catalog.count_kind("incident"),
            "runbooks": catalog.count_kind("runbook"),
            "chunks": len(catalog.chunk_ids),
            "services": len(catalog.service_names),
            "sources": catalog.sources(),
            "embedding_model": meta.get("embedding_model"),
            "embedding_dimension": meta.get("embedding_dimension"),
            "revision": meta.get("revision", "empty"),
            "watermarks": {
                k.removeprefix("watermark:"): v for k, v in meta.items() if k.startswith("watermark:")
            },
        }

    def doctor(self) -> list[SourceCheck]:
        """One `opscopilot doctor` row: the store answers, what it holds, which model embedded it."""
        started = time.perf_counter()
        check = SourceCheck(
            source=f"knowledge:{self.collection_name}",
            kind="knowledge",
            target=self._where(),
            reachable=False,
        )
        try:
            info = self.stats()
        except Exception as exc:  # a doctor reports, it never raises
            check.detail, check.fix = (
                f"{type(exc).__name__}: {exc}",
                "check knowledge.chroma_path / chroma_url",
            )
            return [check]
        check.reachable = check.authenticated = check.permissions_ok = True
        check.latency_ms = round((time.perf_counter() - started) * 1000, 1)
        check.detail = (
            f"{info['incidents']} incidents, {info['runbooks']} runbooks ({info['chunks']} chunks), "
            f"embedded with {info['embedding_model']} ({info['embedding_dimension']} dimensions)"
        )
        if not info["documents"]:
            check.fix = "empty: run `opscopilot kb ingest FOLDER` (or --servicenow / --jira)"
        return [check]

    def _where(self) -> str:
        settings = self._client.get_settings()
        if settings.chroma_server_host:
            return f"{settings.chroma_server_host}:{settings.chroma_server_http_port}"
        return str(settings.persist_directory) if settings.is_persistent else "in memory"

    def retrieve(self, query: Query) -> list[DocHit]:
        """Documents for `query`, best first: vector and BM25 rankings fused (see retrieval.py)."""
        if not query.text.strip() or query.k <= 0:
            return []
        catalog = self._refresh()
        if not catalog.chunk_ids:
            return []
        vector = np.asarray(embed_texts([query.text], self.embedding_model)[0], dtype=np.float32)
        if query.hypothesis:
            hyde = np.asarray(embed_texts([query.hypothesis], self.embedding_model)[0], dtype=np.float32)
            vector = vector + hyde
            vector /= float(np.linalg.norm(vector)) or 1.0
        return rank_documents(
            query,
            vector,
            catalog,
            self._collection,
            self.documents,
            recency_half_life_days=self.recency_half_life_days,
        )

    def search(self, query: str, k: int = 3, *, now: datetime | None = None) -> list[KnowledgeHit]:
        """The `KnowledgeSource` search: the `k` best past incidents (runbooks: :meth:`retrieve`)."""
        hits = self.retrieve(Query(text=query, k=k, kinds=("incident",), now=now))
        return [hit.knowledge_hit() for hit in hits]

    def close(self) -> None:
        """Delete the collection when this instance owns it (a throwaway collection)."""
        if self._finalizer is not None:
            self._finalizer()

    def __enter__(self) -> KnowledgeStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _chunk_metadata(doc: KnowledgeDoc, n: int, heading: str, digest: str, nchunks: int) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "doc_id": doc.id,
        "kind": doc.kind,
        "n": n,
        "heading": heading,
        "doc_hash": digest,
        "nchunks": nchunks,
        "source": doc.source,
    }
    if doc.services:
        meta["svc"] = sorted({s.lower() for s in doc.services})
    if doc.cis:
        meta["ci"] = sorted({c.lower() for c in doc.cis})
    if doc.occurred_ts is not None:
        meta["ts"] = doc.occurred_ts
    if n == 0:
        meta["doc"] = doc.model_dump_json()
    return meta


class ChromaKnowledge(KnowledgeStore):
    """A store seeded with `incidents` (a replayed world's, or a seed file's).

    Without `collection_name` it owns a throwaway collection with a unique name, deleted by
    :meth:`close` or when the instance is collected; a named collection is kept for reuse."""

    def __init__(
        self,
        incidents: Sequence[PastIncident],
        client: ClientAPI | None = None,
        collection_name: str | None = None,
        *,
        embedding_model_path: Path | str | None = None,
        source: str = "seed",
    ) -> None:
        super().__init__(
            client,
            collection_name or f"past_incidents_{uuid.uuid4().hex[:12]}",
            embedding_model=embedding_model_path,
            owned=collection_name is None,
        )
        self.upsert(incidents, source=source)

    def upsert(self, incidents: Sequence[PastIncident], *, source: str = "seed") -> IngestReport:
        """Add or replace incidents (by id)."""
        return self.ingest(KnowledgeDoc.from_incident(i, source=source) for i in incidents)
