"""Hybrid retrieval: vector and BM25 rankings fused by reciprocal rank, exact names rewarded, filters by
service, CI and time, and a mild preference for recent incidents."""

from __future__ import annotations

import json
import math
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np

from tools.knowledge.documents import KnowledgeDoc, identifiers
from tools.knowledge.lexical import LexicalIndex
from tools.sources import KnowledgeHit

RRF_K = 60  # the usual reciprocal-rank-fusion constant
ENTITY_WEIGHT = 0.5  # a document about a service/CI named in the query counts as half a rank-1 list
CODE_WEIGHT = 0.5  # so does one holding an error code, wait type or id from the query verbatim
NAME_BONUS = 0.1  # similarity bonus per kind of exact match (a named service/CI, a code like 9002)
RECENCY_WEIGHT = 0.25  # a brand-new incident gains a quarter of a rank-1 list, one a half-life old half that
CANDIDATES = 50  # chunks read from each ranking
SHORTLIST = 20  # documents read (of the fused candidates) to score codes and similarity
KEEP_REVISIONS = 2  # saved catalogs kept beside the store
PREFILTER_BELOW = 0.5  # filters passing fewer chunks than this share are applied by Chroma itself
SCOPED_BY_ID = 300  # up to this many chunks of the named entities, their vectors are compared here
_CODE = re.compile(r"^(?=.*\d)(?=.*[a-z])[\w.:/-]{3,}$|^[\w.:/-]*_[\w.:/-]*$|^\d{4,}$")
_YEAR = re.compile(r"^(19|20)\d\d$")

Mode = Literal["hybrid", "vector", "lexical"]


@dataclass
class Query:
    """What to look for, and where."""

    text: str
    k: int = 5
    kinds: tuple[str, ...] = ("incident",)
    services: tuple[str, ...] = ()
    cis: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    now: datetime | None = None  # the clock for the recency preference (default: now)
    hypothesis: str | None = None  # HyDE: a model's guess at the matching document
    mode: Mode = "hybrid"
    candidates: int = CANDIDATES


@dataclass
class DocHit:
    """A retrieved document and why it ranked where it did."""

    doc: KnowledgeDoc
    score: float  # similarity shown to the operator: cosine, + NAME_BONUS per exact-name kind, 0-1
    similarity: float  # the plain cosine similarity of its best chunk
    fused: float  # the fused rank score that ordered the hits
    vector_rank: int | None = None
    lexical_rank: int | None = None
    matched: list[str] = field(default_factory=list)  # names in the query found verbatim
    codes: list[str] = field(default_factory=list)  # of those, the codes (9002, 40p01, lck_m_u, ids)
    section: str = ""  # the heading of its best chunk ("" = the summary)

    def as_dict(self) -> dict[str, Any]:
        """The hit as JSON-ready data (CLI --json, the HTTP API)."""
        d = self.doc
        return {
            "id": d.id,
            "kind": d.kind,
            "title": d.title,
            "score": self.score,
            "similarity": self.similarity,
            "vector_rank": self.vector_rank,
            "lexical_rank": self.lexical_rank,
            "matched": self.matched,
            "section": self.section,
            "services": d.services,
            "occurred_at": d.occurred_at.isoformat() if d.occurred_at else None,
            "root_cause": d.root_cause,
            "resolution": d.resolution,
            "steps": d.steps,
            "url": d.url,
        }

    def knowledge_hit(self) -> KnowledgeHit:
        return KnowledgeHit(
            incident=self.doc.incident(),
            score=self.score,
            kind=self.doc.kind,
            url=self.doc.url,
            steps=list(self.doc.steps),
            matched=list(self.matched),
            codes=list(self.codes),
        )


def _ts(when: datetime | None) -> float | None:
    if when is None:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


@dataclass
class Catalog:
    """Per-chunk filters and the BM25 index of one revision of a collection."""

    revision: str
    chunk_ids: list[str]
    doc_ids: list[str]
    kinds: list[str]
    svc: list[list[str]]
    ci: list[list[str]]
    ts: np.ndarray  # seconds since the epoch, NaN when unknown
    sources_of: list[str]
    service_names: list[str]
    lexical: LexicalIndex
    _kind_masks: dict[tuple[str, ...], np.ndarray] = field(default_factory=dict, repr=False)
    _rows: dict[str, int] = field(default_factory=dict, repr=False)
    _entities: dict[str, list[int]] | None = field(default=None, repr=False)

    def knows(self, name: str) -> bool:
        """Whether some document is about `name` (a lower-cased service or CI)."""
        return name in self._entity_rows()

    def about(self, entities: Sequence[str]) -> np.ndarray:
        """Which chunks belong to documents about any of `entities` (services or CIs)."""
        out = np.zeros(len(self.chunk_ids), dtype=bool)
        rows = self._entity_rows()
        for e in entities:
            out[rows.get(e, [])] = True
        return out

    def _entity_rows(self) -> dict[str, list[int]]:
        if self._entities is None:
            index: dict[str, list[int]] = {}
            for row, (svc, ci) in enumerate(zip(self.svc, self.ci, strict=True)):
                for name in {*svc, *ci}:
                    index.setdefault(name, []).append(row)
            self._entities = index
        return self._entities

    def row_of(self, chunk_id: str) -> int | None:
        if not self._rows and self.chunk_ids:
            self._rows = {c: n for n, c in enumerate(self.chunk_ids)}
        return self._rows.get(chunk_id)

    @classmethod
    def build(cls, revision: str, rows: Sequence[tuple[str, str, dict[str, Any]]]) -> Catalog:
        names: dict[str, None] = {}
        for _, _, meta in rows:
            if meta.get("n") == 0 and meta.get("doc"):
                doc = json.loads(str(meta["doc"]))
                names.update(dict.fromkeys(doc.get("services") or []))
        return cls(
            revision=revision,
            chunk_ids=[r[0] for r in rows],
            doc_ids=[str(r[2].get("doc_id", r[0])) for r in rows],
            kinds=[str(r[2].get("kind", "incident")) for r in rows],
            svc=[list(r[2].get("svc") or []) for r in rows],
            ci=[list(r[2].get("ci") or []) for r in rows],
            ts=np.array([float(r[2].get("ts", math.nan)) for r in rows], dtype=np.float64),
            sources_of=[str(r[2].get("source", "")) for r in rows],
            service_names=list(names),
            lexical=LexicalIndex([r[0] for r in rows], [r[1] for r in rows]),
        )

    @property
    def documents(self) -> int:
        return len(set(self.doc_ids))

    def count_kind(self, kind: str) -> int:
        return len({d for d, k in zip(self.doc_ids, self.kinds, strict=True) if k == kind})

    def sources(self) -> dict[str, int]:
        seen: dict[str, set[str]] = {}
        for doc_id, source in zip(self.doc_ids, self.sources_of, strict=True):
            seen.setdefault(source.split(":")[0] or "?", set()).add(doc_id)
        return {k: len(v) for k, v in sorted(seen.items())}

    def mask(self, query: Query) -> np.ndarray:
        """Which chunks the query's filters allow."""
        key = tuple(sorted(query.kinds))
        by_kind = self._kind_masks.get(key)
        if by_kind is None:
            by_kind = np.isin(np.asarray(self.kinds, dtype=object), list(key))
            self._kind_masks[key] = by_kind
        allowed = by_kind.copy()
        if query.services:
            wanted = {s.lower() for s in query.services}
            allowed &= np.array([bool(wanted & set(s)) for s in self.svc], dtype=bool)
        if query.cis:
            wanted = {c.lower() for c in query.cis}
            allowed &= np.array([bool(wanted & set(c)) for c in self.ci], dtype=bool)
        with np.errstate(invalid="ignore"):
            if query.since is not None:
                allowed &= self.ts >= (_ts(query.since) or 0.0)
            if query.until is not None:
                allowed &= self.ts <= (_ts(query.until) or 0.0)
        return allowed

    def save(self, folder: Path) -> None:
        """Write the catalog into its own folder `folder/rev-REVISION`, built aside and renamed into
        place, so a reader never sees a half-written one and two writers never mix their files.
        Older revisions are removed, the newest KEEP_REVISIONS kept."""
        target = folder / f"rev-{self.revision}"
        if target.is_dir():
            return
        folder.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".building-", dir=folder))
        data = {
            "revision": self.revision,
            "doc_ids": self.doc_ids,
            "kinds": self.kinds,
            "svc": self.svc,
            "ci": self.ci,
            "ts": [None if math.isnan(t) else t for t in self.ts.tolist()],
            "sources": self.sources_of,
            "service_names": self.service_names,
        }
        (work / "catalog.json").write_text(json.dumps(data), encoding="utf-8")
        self.lexical.save(work, self.revision)
        try:
            work.rename(target)
        except OSError:  # another process saved the same revision first
            shutil.rmtree(work, ignore_errors=True)
        older = sorted(folder.glob("rev-*"), key=lambda p: p.stat().st_mtime, reverse=True)[KEEP_REVISIONS:]
        for old in older:
            shutil.rmtree(old, ignore_errors=True)

    @classmethod
    def load(cls, folder: Path, revision: str) -> Catalog | None:
        """The catalog saved for `revision` under `folder`, or None."""
        folder = folder / f"rev-{revision}"
        lexical = LexicalIndex.load(folder, revision)
        if lexical is None:
            return None
        try:
            data = json.loads((folder / "catalog.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if data.get("revision") != revision or len(data.get("doc_ids", [])) != len(lexical.ids):
            return None
        return cls(
            revision=revision,
            chunk_ids=lexical.ids,
            doc_ids=data["doc_ids"],
            kinds=data["kinds"],
            svc=data["svc"],
            ci=data["ci"],
            ts=np.array([math.nan if t is None else t for t in data["ts"]], dtype=np.float64),
            sources_of=data["sources"],
            service_names=data["service_names"],
            lexical=lexical,
        )


def chroma_where(query: Query) -> dict[str, Any] | None:
    """The query's filters as a Chroma `where` clause."""
    terms: list[dict[str, Any]] = [{"kind": {"$in": list(query.kinds)}}]
    if query.services:
        terms.append({"$or": [{"svc": {"$contains": s.lower()}} for s in query.services]})
    if query.cis:
        terms.append({"$or": [{"ci": {"$contains": c.lower()}} for c in query.cis]})
    if query.since is not None:
        terms.append({"ts": {"$gte": int(_ts(query.since) or 0)}})
    if query.until is not None:
        terms.append({"ts": {"$lte": int(_ts(query.until) or 0)}})
    terms = [t if "$or" not in t or len(t["$or"]) > 1 else t["$or"][0] for t in terms]
    return terms[0] if len(terms) == 1 else {"$and": terms}


def code_like(token: str) -> bool:
    """A token that must match verbatim: error codes, wait types, ticket numbers, ids (not plain years)."""
    return bool(_CODE.match(token)) and not _YEAR.match(token)


def rank_documents(
    query: Query,
    vector: np.ndarray,
    catalog: Catalog,
    collection: Any,
    fetch: Callable[[Sequence[str]], dict[str, KnowledgeDoc]],
    *,
    recency_half_life_days: float = 365.0,
) -> list[DocHit]:
    """Fuse the vector and BM25 rankings of documents (a document ranks where its best chunk does)."""
    vector_ranks: dict[str, int] = {}
    lexical_ranks: dict[str, int] = {}
    similarity: dict[str, float] = {}
    best_chunk: dict[str, str] = {}
    mask = catalog.mask(query)
    if query.mode != "lexical":
        for chunk_id, distance, meta in _nearest(query, vector, catalog, collection, mask):
            doc_id = str((meta or {}).get("doc_id", chunk_id))
            if doc_id not in vector_ranks:
                vector_ranks[doc_id] = len(vector_ranks) + 1
                similarity[doc_id] = 1.0 - float(distance)
                best_chunk[doc_id] = chunk_id
    if query.mode != "vector":
        for row, _score in catalog.lexical.top(query.text, query.candidates, mask):
            doc_id = catalog.doc_ids[row]
            if doc_id not in lexical_ranks:
                lexical_ranks[doc_id] = len(lexical_ranks) + 1
                best_chunk.setdefault(doc_id, catalog.chunk_ids[row])
    words = identifiers(query.text)
    scoped_ranks: dict[str, int] = {}
    named = sorted(w for w in words if catalog.knows(w)) if query.mode == "hybrid" else []
    if named:
        # the entities the query names, ranked by meaning among their own incidents: in a large store
        # the global vector ranking is crowded by the same problem on other hosts
        for chunk_id, distance, meta in _nearest_on(named, query, vector, catalog, collection, mask):
            doc_id = str((meta or {}).get("doc_id", chunk_id))
            if doc_id not in scoped_ranks:
                scoped_ranks[doc_id] = len(scoped_ranks) + 1
                similarity.setdefault(doc_id, 1.0 - float(distance))
                best_chunk.setdefault(doc_id, chunk_id)
    candidates = list(dict.fromkeys([*vector_ranks, *lexical_ranks, *scoped_ranks]))
    if not candidates:
        return []
    now = _ts(query.now) or datetime.now(UTC).timestamp()

    def provisional(doc_id: str) -> float:
        """The fused score from what the catalog knows (ranks, names, age), before reading the doc."""
        row = catalog.row_of(best_chunk[doc_id])
        names = set(catalog.svc[row]) | set(catalog.ci[row]) if row is not None else set()
        fused = _fused(
            query.mode, vector_ranks.get(doc_id), lexical_ranks.get(doc_id), bool(words & names), False
        )
        if doc_id in scoped_ranks:
            fused += 1.0 / (RRF_K + scoped_ranks[doc_id])
        if query.mode == "hybrid" and doc_id.lower() in words:
            fused += 1.0  # the record asked for by its number comes first
        occurred = catalog.ts[row] if row is not None else math.nan
        if query.mode == "hybrid" and not math.isnan(occurred) and recency_half_life_days > 0:
            age_days = max(0.0, (now - occurred) / 86400)
            fused += RECENCY_WEIGHT / (RRF_K + 1) * 0.5 ** (age_days / recency_half_life_days)
        return fused

    fused_of = {d: provisional(d) for d in candidates}
    shortlist = sorted(candidates, key=lambda d: fused_of[d], reverse=True)[: max(query.k * 4, SHORTLIST)]
    docs = fetch(shortlist)
    missing = [best_chunk[d] for d in shortlist if d not in similarity and d in docs]
    if missing:
        found = collection.get(ids=missing, include=["embeddings", "metadatas"])
        for emb, meta in zip(found["embeddings"], found["metadatas"] or [], strict=True):
            similarity[str((meta or {}).get("doc_id"))] = float(
                np.dot(np.asarray(emb, dtype=np.float32), vector)
            )
    codes = {w for w in words if code_like(w)}
    hits = []
    for doc_id in shortlist:
        doc = docs.get(doc_id)
        if doc is None:
            continue
        names = {n.lower() for n in [*doc.services, *doc.cis]}
        named_here = sorted(words & names)
        coded = sorted(
            (codes - names) & identifiers(" ".join([doc.summary_text(), *(s.text for s in doc.sections)]))
        )
        sim = similarity.get(doc_id, 0.0)
        score = 1.0 if doc.id.lower() in words else sim + NAME_BONUS * (bool(named_here) + bool(coded))
        fused = fused_of[doc_id] + (CODE_WEIGHT / (RRF_K + 1) if coded and query.mode == "hybrid" else 0.0)
        hits.append(
            DocHit(
                doc=doc,
                score=round(min(max(score, 0.0), 1.0), 4),
                similarity=round(sim, 4),
                fused=fused,
                vector_rank=vector_ranks.get(doc_id),
                lexical_rank=lexical_ranks.get(doc_id),
                matched=named_here + coded,
                codes=coded,
                section=_heading(best_chunk.get(doc_id, ""), doc),
            )
        )
    hits.sort(key=lambda h: h.fused, reverse=True)
    return hits[: query.k]


def _nearest(
    query: Query, vector: np.ndarray, catalog: Catalog, collection: Any, mask: np.ndarray
) -> list[tuple[str, float, dict[str, Any]]]:
    """The chunks nearest to `vector` that the filters allow, nearest first. When most chunks pass
    the filters, Chroma is asked without them (its filtered search reads every matching id first,
    slow on a large collection) for proportionally more, and the rest are dropped here."""
    allowed = int(mask.sum())
    if allowed == 0:
        return []
    share = allowed / len(catalog.chunk_ids)
    where = chroma_where(query)
    if share >= PREFILTER_BELOW:
        where = None
    wanted = min(query.candidates, allowed)
    n = min(len(catalog.chunk_ids), wanted if where is not None else int(wanted / share * 1.5) + 1)
    result = collection.query(query_embeddings=[vector], n_results=n, where=where, include=["distances"])
    out = []
    for chunk_id, distance in zip(result["ids"][0], (result["distances"] or [[]])[0], strict=True):
        row = catalog.row_of(chunk_id)
        if row is not None and (where is not None or mask[row]):
            out.append((chunk_id, float(distance), {"doc_id": catalog.doc_ids[row]}))
    return out[:wanted]


def _nearest_on(
    entities: list[str], query: Query, vector: np.ndarray, catalog: Catalog, collection: Any, mask: np.ndarray
) -> list[tuple[str, float, dict[str, Any]]]:
    """The chunks nearest to `vector` among those about `entities` (services or CIs) that the
    query's filters allow, nearest first. An entity's chunks are usually few: their vectors are
    read by id and compared here; for very many, Chroma's filtered search is used."""
    rows = np.flatnonzero(mask & catalog.about(entities))
    if rows.size == 0:
        return []
    if rows.size > SCOPED_BY_ID:
        on = [{"svc": {"$contains": e}} for e in entities] + [{"ci": {"$contains": e}} for e in entities]
        base = chroma_where(query)
        result = collection.query(
            query_embeddings=[vector],
            n_results=min(query.candidates, int(rows.size)),
            where={"$and": [base, {"$or": on}]} if base else {"$or": on},
            include=["distances"],
        )
        found = zip(result["ids"][0], (result["distances"] or [[]])[0], strict=True)
        return [
            (i, float(d), {"doc_id": catalog.doc_ids[row]})
            for i, d in found
            if (row := catalog.row_of(i)) is not None
        ]
    doc_of = {catalog.chunk_ids[r]: catalog.doc_ids[r] for r in rows.tolist()}
    got = collection.get(ids=list(doc_of), include=["embeddings"])
    if not got["ids"]:
        return []
    sims = np.asarray(got["embeddings"], dtype=np.float32) @ vector
    order = np.argsort(-sims)[: query.candidates].tolist()
    return [(got["ids"][n], 1.0 - float(sims[n]), {"doc_id": doc_of[got["ids"][n]]}) for n in order]


def _fused(mode: Mode, vector_rank: int | None, lexical_rank: int | None, named: bool, coded: bool) -> float:
    """Reciprocal rank fusion of the two rankings; in hybrid mode a document about a service/CI named
    in the query, and one holding a code from the query verbatim, each count as part of a rank-1 list."""
    vec = 1.0 / (RRF_K + vector_rank) if vector_rank else 0.0
    lex = 1.0 / (RRF_K + lexical_rank) if lexical_rank else 0.0
    if mode == "vector":
        return vec
    if mode == "lexical":
        return lex
    return vec + lex + (ENTITY_WEIGHT * named + CODE_WEIGHT * coded) / (RRF_K + 1)


def _heading(chunk_id: str, doc: KnowledgeDoc) -> str:
    if "#" not in chunk_id:
        return ""
    n = int(chunk_id.rsplit("#", 1)[1])
    chunks = doc.chunks()
    return chunks[n].heading if n < len(chunks) else ""
