"""LangChain chat model over an in-process llama.cpp model (llama-cpp-python), one Llama per file."""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableMap, RunnablePassthrough
from pydantic import BaseModel, Field

log = logging.getLogger(__name__)


def llama_cpp_available() -> bool:
    """True when llama-cpp-python is installed (checked without loading its native library)."""
    return importlib.util.find_spec("llama_cpp") is not None


def message_text(message: BaseMessage) -> str:
    """The text of a message whose content is a string or a list of content blocks."""
    content = message.content
    if isinstance(content, str):
        return content
    pieces: list[str] = []
    for block in content:
        if isinstance(block, str):
            pieces.append(block)
        elif isinstance(block, dict) and block.get("type") == "text":
            pieces.append(str(block.get("text", "")))
    return "".join(pieces)


@dataclass
class LoadedLlama:
    """A loaded llama.cpp model and the lock that serializes every call into it."""

    llama: Any
    lock: threading.Lock
    load_s: float


_load_lock = threading.Lock()
_loaded: dict[tuple[str, int, int], LoadedLlama] = {}


def default_threads() -> int:
    """Half the cores (at least one): llama.cpp threads spin-wait on each other, so using every
    core collapses throughput as soon as anything else runs (measured 3-5x slower on 2 cores)."""
    return max(1, (os.cpu_count() or 2) // 2)


def get_llama(model_path: str | Path, n_ctx: int, n_threads: int | None) -> LoadedLlama:
    """The process-wide Llama for this file and settings, loading it on first use."""
    threads = n_threads or default_threads()
    key = (str(Path(model_path).resolve()), n_ctx, threads)
    with _load_lock:
        loaded = _loaded.get(key)
        if loaded is None:
            from llama_cpp import Llama

            started = time.perf_counter()
            llama = Llama(
                model_path=key[0], n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads, verbose=False
            )
            loaded = LoadedLlama(llama=llama, lock=threading.Lock(), load_s=time.perf_counter() - started)
            _loaded[key] = loaded
            log.info("loaded %s in %.2fs (n_ctx=%d, threads=%d)", key[0], loaded.load_s, n_ctx, threads)
        return loaded


def _role(message: BaseMessage) -> str:
    if isinstance(message, SystemMessage):
        return "system"
    if isinstance(message, HumanMessage):
        return "user"
    if isinstance(message, AIMessage):
        return "assistant"
    if isinstance(message, ToolMessage):
        return "tool"
    return "user"


def to_llama_messages(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """LangChain messages as OpenAI-style dicts for llama.cpp's chat templates."""
    return [{"role": _role(m), "content": message_text(m)} for m in messages]


def json_object_format(schema: type[BaseModel] | dict[str, Any]) -> dict[str, Any]:
    """llama-cpp-python's response_format that compiles the JSON schema into a grammar."""
    js = schema if isinstance(schema, dict) else schema.model_json_schema()
    return {"type": "json_object", "schema": js}


class LlamaCppChatModel(BaseChatModel):
    """Chat model backed by llama-cpp-python; calls into one model file are serialized.

    Pass ``response_format=json_object_format(Schema)`` (or use ``with_structured_output``) to
    constrain generation with llama.cpp's JSON-schema grammar. ``timeout_s`` bounds each call:
    waiting for the model lock plus generation; a call past it raises TimeoutError.
    """

    model_path: str
    n_ctx: int = 4096
    n_threads: int | None = None
    max_tokens: int = 320
    temperature: float = 0.1
    repeat_penalty: float = 1.15  # small models loop on a phrase without it
    timeout_s: float = Field(default=60.0, gt=0)

    @property
    def _llm_type(self) -> str:
        return "llama-cpp"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_path": self.model_path, "n_ctx": self.n_ctx, "temperature": self.temperature}

    def load(self) -> LoadedLlama:
        """Load the model now (otherwise it loads on the first call)."""
        return get_llama(self.model_path, self.n_ctx, self.n_threads)

    def _chunks(
        self, messages: list[BaseMessage], stop: list[str] | None, **kwargs: Any
    ) -> Iterator[ChatGenerationChunk]:
        """Stream generation chunks; the last one carries usage and the finish reason."""
        deadline = time.monotonic() + self.timeout_s
        loaded = self.load()
        if not loaded.lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise TimeoutError(f"local model busy for more than {self.timeout_s:.0f}s")
        try:
            llm = loaded.llama
            params: dict[str, Any] = {
                "messages": to_llama_messages(messages),
                "max_tokens": kwargs.get("max_tokens", self.max_tokens),
                "temperature": kwargs.get("temperature", self.temperature),
                "repeat_penalty": kwargs.get("repeat_penalty", self.repeat_penalty),
                "stop": stop or [],
                "stream": True,
            }
            if kwargs.get("response_format") is not None:
                params["response_format"] = kwargs["response_format"]
            produced, finish = 0, None
            stream = llm.create_chat_completion(**params)
            try:
                for chunk in stream:
                    choice = chunk["choices"][0]
                    finish = choice.get("finish_reason") or finish
                    piece = (choice.get("delta") or {}).get("content")
                    if piece:
                        produced += 1
                        yield ChatGenerationChunk(message=AIMessageChunk(content=piece))
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"local generation exceeded {self.timeout_s:.0f}s")
            finally:
                close = getattr(stream, "close", None)
                if close is not None:
                    close()
            # Streamed completions carry no usage: llama.cpp's context holds the prompt and every
            # generated token but the last one sampled when max_tokens cut it off; each streamed
            # delta is one token (rarely two, for split UTF-8), so this is exact or nearly so.
            in_context = int(getattr(llm, "n_tokens", 0))
            prompt = max(0, in_context - produced + int(finish == "length" and produced > 0))
            usage = UsageMetadata(input_tokens=prompt, output_tokens=produced, total_tokens=prompt + produced)
            yield ChatGenerationChunk(
                message=AIMessageChunk(
                    content="",
                    usage_metadata=usage,
                    response_metadata={"finish_reason": finish, "model_name": Path(self.model_path).name},
                    chunk_position="last",
                ),
                generation_info={"finish_reason": finish},
            )
        finally:
            loaded.lock.release()

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        merged: ChatGenerationChunk | None = None
        for chunk in self._chunks(messages, stop, **kwargs):
            merged = chunk if merged is None else merged + chunk
        if merged is None:
            return ChatResult(generations=[ChatGeneration(message=AIMessage(content=""))])
        msg = merged.message
        message = AIMessage(
            content=msg.content,
            usage_metadata=getattr(msg, "usage_metadata", None),
            response_metadata=msg.response_metadata,
        )
        return ChatResult(
            generations=[ChatGeneration(message=message, generation_info=merged.generation_info)]
        )

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for chunk in self._chunks(messages, stop, **kwargs):
            if run_manager is not None and chunk.text:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    def with_structured_output(
        self,
        schema: dict[str, Any] | type,
        *,
        include_raw: bool = False,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | BaseModel]:
        """Grammar-constrained JSON output for a pydantic class or a JSON-schema dict."""
        if isinstance(schema, type) and issubclass(schema, BaseModel):
            llm = self.bind(response_format=json_object_format(schema))
            parser: Runnable[Any, Any] = PydanticOutputParser(pydantic_object=schema)
        elif isinstance(schema, dict):
            llm = self.bind(response_format=json_object_format(schema))
            parser = JsonOutputParser()
        else:
            raise TypeError(f"unsupported schema type {schema!r}; pass a pydantic class or a JSON schema")
        if not include_raw:
            return llm | parser
        parse = RunnablePassthrough.assign(parsed=itemgetter("raw") | parser, parsing_error=lambda _: None)
        fallback = RunnablePassthrough.assign(parsed=lambda _: None)
        return RunnableMap(raw=llm) | parse.with_fallbacks([fallback], exception_key="parsing_error")
