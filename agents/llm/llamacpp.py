"""The llama.cpp engine of the model child (agents/llm/worker.py). Only the child imports llama_cpp."""

from __future__ import annotations

import importlib.util
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

REPEAT_PENALTY = 1.15  # small models loop on a phrase without it
# Prompt states kept in RAM: the planner's, each specialist's and the synthesizer's system prompts
# repeat across calls, and reusing their evaluated prefix cuts a call from ~4.5 s to ~1.3 s on 2 cores.
PROMPT_CACHE_BYTES = 256 << 20


def llama_cpp_available() -> bool:
    """True when llama-cpp-python is installed (checked without loading its native library)."""
    return importlib.util.find_spec("llama_cpp") is not None


def default_threads() -> int:
    """Half the cores (at least one): llama.cpp threads spin-wait on each other, so using every
    core collapses throughput as soon as anything else runs (measured 3-5x slower on 2 cores)."""
    return max(1, (os.cpu_count() or 2) // 2)


@dataclass
class Generation:
    """What one generation produced besides its text: filled in when the iterator is exhausted."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _without_extra_buffers() -> None:
    """Make every model load skip llama.cpp's "extra buffer types" (the AMX and repacked-weight
    buffers). The AMX matrix kernel crashes on some Xeons that report AMX (SIGSEGV in
    ggml_backend_amx_mul_mat); the plain CPU buffers run the same model correctly."""
    import llama_cpp.llama_cpp as native

    original = native.llama_model_default_params
    if getattr(original, "_opscopilot_no_extra_bufts", False):
        return

    def params() -> Any:
        p = original()
        p.use_extra_bufts = False
        return p

    params._opscopilot_no_extra_bufts = True  # type: ignore[attr-defined]
    native.llama_model_default_params = params


def _prompt_cache(base: type, capacity_bytes: int) -> Any:
    """llama-cpp-python's RAM cache of prompt states, keeping only the last row of each state's
    logits: it copies up to n_batch rows x the vocabulary (512 x 151,936 floats, 311 MB for Qwen)
    into every entry and does not count them against its capacity. Sampling after a cache hit
    reads the last row only."""

    class PromptCache(base):  # type: ignore[misc,valid-type]
        def __setitem__(self, key: Any, value: Any) -> None:
            if getattr(value, "scores", None) is not None and len(value.scores) > 1:
                value.scores = value.scores[-1:].copy()
            super().__setitem__(key, value)

    return PromptCache(capacity_bytes=capacity_bytes)


class LlamaEngine:
    """One llama.cpp model in this process; the worker serialises calls into it."""

    def __init__(
        self, model_path: str, *, n_ctx: int, n_threads: int | None, extra_buffers: bool = False
    ) -> None:
        from llama_cpp import Llama, LlamaRAMCache

        if not extra_buffers:
            _without_extra_buffers()
        threads = n_threads or default_threads()
        started = time.perf_counter()
        self.llama = Llama(
            model_path=model_path, n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads, verbose=False
        )
        self.llama.set_cache(_prompt_cache(LlamaRAMCache, PROMPT_CACHE_BYTES))
        self.load_s = time.perf_counter() - started
        self.name = os.path.basename(model_path)
        self.describe = f"n_ctx={n_ctx}, threads={threads}, extra_buffers={extra_buffers}"

    def generate(
        self,
        messages: list[dict[str, Any]],
        *,
        max_tokens: int,
        temperature: float,
        schema: dict[str, Any] | None,
        stop: list[str],
        result: Generation,
        repeat_penalty: float = REPEAT_PENALTY,
    ) -> Iterator[str]:
        """Stream text pieces; with ``schema`` the output is constrained by its JSON-schema grammar."""
        params: dict[str, Any] = {
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "repeat_penalty": repeat_penalty,
            "stop": stop,
            "stream": True,
        }
        if schema is not None:
            params["response_format"] = {"type": "json_object", "schema": schema}
        produced = 0
        stream: Any = self.llama.create_chat_completion(**params)
        try:
            for chunk in stream:
                choice = chunk["choices"][0]
                result.finish_reason = choice.get("finish_reason") or result.finish_reason
                piece = (choice.get("delta") or {}).get("content")
                if piece:
                    produced += 1
                    yield piece
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
        # Streamed completions carry no usage: the context holds the prompt and every generated
        # token but the last one sampled when max_tokens cut it off; each streamed delta is one
        # token (rarely two, for split UTF-8), so this is exact or nearly so.
        in_context = int(getattr(self.llama, "n_tokens", 0))
        cut = int(result.finish_reason == "length" and produced > 0)
        result.prompt_tokens = max(0, in_context - produced + cut)
        result.completion_tokens = produced


def make_engine(model_path: str, *, n_ctx: int, n_threads: int | None, extra_buffers: bool) -> LlamaEngine:
    """The worker's default engine factory."""
    return LlamaEngine(model_path, n_ctx=n_ctx, n_threads=n_threads, extra_buffers=extra_buffers)
