"""ModelHandle: the one object callers use for structured output and free text, whatever the provider."""

from __future__ import annotations

import contextvars
import logging
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, BaseMessageChunk
from pydantic import BaseModel, ValidationError

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)
R = TypeVar("R")

DEFAULT_TIMEOUT_S = 60.0
_GRACE_S = 1.0  # let a client's own timeout fire (with its clearer error) before the watchdog
_MAX_NOTES = 50


@dataclass
class Usage:
    """Thread-safe counters across every call made through one handle."""

    calls: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def record(self, message: BaseMessage | None, *, failed: bool = False) -> None:
        """Count one call, adding its token usage when the provider reported it."""
        usage = getattr(message, "usage_metadata", None) or {}
        with self._lock:
            self.calls += 1
            self.failures += int(failed)
            self.prompt_tokens += int(usage.get("input_tokens") or 0)
            self.completion_tokens += int(usage.get("output_tokens") or 0)

    def snapshot(self) -> dict[str, int]:
        """A consistent copy of the counters."""
        with self._lock:
            return {
                "calls": self.calls,
                "failures": self.failures,
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
            }


class CallTimeout(TimeoutError):
    """The model did not answer within the handle's timeout."""


class ModelDown(RuntimeError):
    """The server behind the model died or hung while a call was waiting for it."""


_WATCH_EVERY_S = 0.5


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


def call_with_deadline(
    fn: Callable[[], R],
    timeout_s: float,
    cancel: threading.Event | None = None,
    watch: Callable[[], str | None] | None = None,
) -> R:
    """Run ``fn`` in a daemon thread (same contextvars) and give up waiting after ``timeout_s``,
    or as soon as ``watch()`` (polled every half second) names a reason, e.g. a dead server.

    On giving up ``cancel`` is set so a cooperative ``fn`` can stop; the thread is abandoned.
    """
    box: dict[str, Any] = {}
    done = threading.Event()
    ctx = contextvars.copy_context()

    def run() -> None:
        try:
            box["value"] = ctx.run(fn)
        except Exception as exc:
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=run, name="llm-call", daemon=True).start()
    deadline = time.monotonic() + timeout_s
    while not done.is_set():
        left = deadline - time.monotonic()
        if left <= 0:
            if cancel is not None:
                cancel.set()
            raise CallTimeout(f"no answer within {timeout_s:.0f}s")
        if done.wait(min(left, _WATCH_EVERY_S)):
            break
        reason = watch() if watch is not None else None
        if reason is not None:
            if cancel is not None:
                cancel.set()
            raise ModelDown(reason)
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


class ServerBackend(Protocol):
    """A model server this process manages (the local model child): the handle asks it for a
    chat client before each call and tells it how the call went."""

    def chat(self) -> BaseChatModel:
        """A client for the running server (starting or restarting it); raises when it cannot."""
        ...

    def check(self) -> str | None:
        """None while the server is alive and answering; otherwise what is wrong with it."""
        ...

    def failed(self, reason: str) -> None:
        """The server died or hung during a call: clean up; the next ``chat()`` restarts it."""
        ...

    def succeeded(self) -> None:
        """A call was served."""
        ...


def _is_instance(obj: object, module: str, cls: str) -> bool:
    """isinstance against a class of an optional module, without importing it."""
    mod = sys.modules.get(module)
    klass = getattr(mod, cls, None) if mod is not None else None
    return isinstance(klass, type) and isinstance(obj, klass)


def provider_kind(chat: BaseChatModel) -> str:
    """How structured output is obtained from ``chat``: ollama | openai | tools."""
    if _is_instance(chat, "langchain_ollama.chat_models", "ChatOllama"):
        return "ollama"
    if _is_instance(chat, "langchain_openai.chat_models.base", "BaseChatOpenAI"):
        return "openai"
    return "tools"


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = text[:300]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _settled_check(backend: ServerBackend | None, wait_s: float = 0.5) -> str | None:
    """What is wrong with the server after a failed call. A killed server closes its sockets a
    moment before its exit can be observed, so a call can fail before the death shows: look again
    for up to half a second."""
    if backend is None:
        return None
    deadline = time.monotonic() + wait_s
    while (reason := backend.check()) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    return reason


@dataclass
class ModelHandle:
    """A model (or none) plus usage counters and the latest note about what went wrong.

    ``structured`` and ``text`` never raise and never wait longer than ``timeout_s`` (+1 s);
    on any failure they return None and set ``note``. Safe to share between threads.
    With a ``backend`` (the local model child) the chat client comes from the backend before
    each call, and a call whose server dies or hangs is abandoned within seconds.
    """

    name: str
    chat: BaseChatModel | None = None
    note: str | None = None
    usage: Usage = field(default_factory=Usage)
    timeout_s: float = DEFAULT_TIMEOUT_S
    backend: ServerBackend | None = None
    notes: list[str] = field(default_factory=list, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @classmethod
    def from_chat(
        cls, name: str, chat: BaseChatModel, *, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> ModelHandle:
        """Wrap any LangChain chat model (tests inject scripted fake models this way)."""
        return cls(name=name, chat=chat, timeout_s=timeout_s)

    @classmethod
    def from_backend(
        cls, name: str, backend: ServerBackend, *, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> ModelHandle:
        """A model served by a managed server process (the local model child)."""
        return cls(name=name, backend=backend, timeout_s=timeout_s)

    @classmethod
    def unavailable(cls, name: str = "none", note: str | None = None) -> ModelHandle:
        """A handle that answers without a model."""
        handle = cls(name=name)
        if note:
            handle.add_note(note)
        return handle

    @property
    def available(self) -> bool:
        """True when a chat model is attached (or a managed server may still serve)."""
        return self.chat is not None or self.backend is not None

    @property
    def kind(self) -> str:
        """The structured-output strategy (ollama | openai | tools), or none."""
        if self.backend is not None:
            return "openai"
        return "none" if self.chat is None else provider_kind(self.chat)

    def add_note(self, note: str) -> None:
        """Record a note (the newest is ``note``; the last 50 are kept in ``notes``)."""
        with self._lock:
            self.note = note
            self.notes.append(note)
            del self.notes[:-_MAX_NOTES]
        log.warning("%s", note)

    def _fail(self, what: str, exc: BaseException) -> None:
        self.usage.record(None, failed=True)
        backend = self.backend
        down = str(exc) if isinstance(exc, ModelDown) else _settled_check(backend)
        if backend is not None and down is not None:
            backend.failed(down)
            note = f"model {self.name} {what} failed: its server {down}; answering without a model"
            self.add_note(note)
            restart = threading.Thread(target=self._recover, args=(backend, note), daemon=True)
            restart.start()
            return
        if isinstance(exc, TimeoutError):
            detail = f"timed out after {self.timeout_s:.0f}s ({_describe(exc)})"
        else:
            detail = f"failed: {_describe(exc)}"
        self.add_note(f"model {self.name} {what} {detail}; answering without a model")

    def _recover(self, backend: ServerBackend, note: str) -> None:
        """Restart a dead server now, so the next investigation finds a fresh one; once it is up
        (loaded and smoke-tested) the death is no longer news: the note is cleared."""
        try:
            backend.chat()
        except Exception as exc:  # the restart failed: the next call reports it
            log.warning("model %s could not be restarted: %s", self.name, exc)
            return
        with self._lock:
            if self.note == note:
                self.note = None

    def _client(self, what: str) -> BaseChatModel | None:
        if self.backend is None:
            return self.chat
        try:
            return self.backend.chat()
        except Exception as exc:  # the server cannot start: a note, and no model for this call
            self.usage.record(None, failed=True)
            note = f"model {self.name} unavailable for {what}: {exc}; answering without a model"
            if note != self.note:
                self.add_note(note)
            return None

    def _call(self, what: str, fn: Callable[[BaseChatModel, threading.Event], R]) -> R | None:
        chat = self._client(what)
        if chat is None:
            return None
        cancel = threading.Event()
        watch = self.backend.check if self.backend is not None else None
        try:
            out = call_with_deadline(lambda: fn(chat, cancel), self.timeout_s + _GRACE_S, cancel, watch)
        except Exception as exc:
            self._fail(what, exc)
            return None
        if self.backend is not None:
            self.backend.succeeded()
        return out

    def structured(self, messages: Sequence[BaseMessage], schema: type[M]) -> M | None:
        """A validated ``schema`` instance from the model, or None (note recorded)."""
        msgs = list(messages)
        out = self._call(
            f"structured output ({schema.__name__})", lambda chat, _: _structured_call(chat, msgs, schema)
        )
        if out is None:
            return None
        obj, raw = out
        self.usage.record(raw)
        return obj

    def text(
        self,
        messages: Sequence[BaseMessage],
        on_token: Callable[[str], None] | None = None,
        enough: Callable[[str], bool] | None = None,
    ) -> str | None:
        """Free text from the model, streaming pieces to ``on_token`` (from a worker thread).
        ``enough(text_so_far)`` returning True ends the generation early (the server stops too)."""
        msgs = list(messages)
        out = self._call("text", lambda chat, cancel: _text_call(chat, msgs, on_token, cancel, enough))
        if out is None:
            return None
        text, raw = out
        self.usage.record(raw)
        return text


def _validated(schema: type[M], value: object) -> M:
    if isinstance(value, schema):
        return value
    if isinstance(value, BaseModel):
        return schema.model_validate(value.model_dump())
    if isinstance(value, str):
        return schema.model_validate_json(value)
    return schema.model_validate(value)


def _structured_call(
    chat: BaseChatModel, messages: list[BaseMessage], schema: type[M]
) -> tuple[M, BaseMessage | None]:
    kind = provider_kind(chat)
    if kind in ("ollama", "openai"):
        runnable = chat.with_structured_output(schema, method="json_schema", include_raw=True)
        out = runnable.invoke(messages)
        raw = out.get("raw") if isinstance(out, dict) else None
        if not isinstance(out, dict):
            return _validated(schema, out), None
        if out.get("parsing_error") is not None:
            raise out["parsing_error"]
        if out.get("parsed") is None:
            raise ValueError("the model returned no structured output")
        return _validated(schema, out["parsed"]), raw
    name = schema.__name__
    msg = chat.bind_tools([schema], tool_choice=name).invoke(messages)
    calls = getattr(msg, "tool_calls", None) or []
    if not calls:
        raise ValueError(f"the model made no {name} tool call")
    call = next((c for c in calls if c.get("name") == name), calls[0])
    try:
        return schema.model_validate(call.get("args") or {}), msg
    except ValidationError as exc:
        raise ValueError(f"{name} arguments failed validation: {exc.error_count()} error(s): {exc}") from exc


def _text_call(
    chat: BaseChatModel,
    messages: list[BaseMessage],
    on_token: Callable[[str], None] | None,
    cancel: threading.Event,
    enough: Callable[[str], bool] | None = None,
) -> tuple[str, BaseMessage | None]:
    if on_token is None and enough is None:
        msg = chat.invoke(messages)
        return message_text(msg), msg
    merged: BaseMessageChunk | None = None
    pieces: list[str] = []
    stream = chat.stream(messages)
    try:
        for chunk in stream:
            if cancel.is_set():
                raise CallTimeout("cancelled after the deadline")
            piece = message_text(chunk)
            if piece:
                pieces.append(piece)
                if on_token is not None:
                    on_token(piece)
            merged = chunk if merged is None else merged + chunk
            if piece and enough is not None and enough("".join(pieces)):
                break
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()  # closes the HTTP response: the server stops generating
    usage = getattr(merged, "usage_metadata", None)
    return "".join(pieces), AIMessage(content="".join(pieces), usage_metadata=usage)
