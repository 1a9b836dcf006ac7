"""Model provider layer: specs, fallbacks, structured output per provider, GGUF assembly, real model."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any, Literal

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # repo root, until pytest's pythonpath is set
sys.path.insert(0, str(Path(__file__).resolve().parent))  # for standins/

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel, Field
from standins.llm_servers import start_ollama, start_openai

from agents.llm import (
    BUNDLED_GGUF_NAME,
    QWEN_SHA256,
    GGUFIntegrityError,
    ModelConfig,
    ModelHandle,
    build_model,
    default_model_spec,
    ensure_local_gguf,
    gguf,
    parse_spec,
    providers,
)
from agents.llm.child import forget_children

Specialist = Literal["database", "logs", "metrics", "network", "itsm", "knowledge"]


class Route(BaseModel):
    """Which specialists should look at the question."""

    specialists: list[Specialist] = Field(min_length=1, max_length=3)
    reason: str = Field(max_length=300)


MSGS: list[BaseMessage] = [
    SystemMessage("Route the operator's question to specialists. Answer in JSON."),
    HumanMessage("The orders query on SQL Server is slow since 09:00 and the error log shows deadlocks."),
]
ROUTE = {"specialists": ["database", "logs"], "reason": "slow query and deadlocks in the error log"}


def _closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    sock.close()
    return port


# --- specs -----------------------------------------------------------------------------------


def test_parse_spec_accepts_the_four_forms_and_rejects_others() -> None:
    assert str(parse_spec("none")) == "none"
    assert str(parse_spec("local")) == "local"
    assert parse_spec("ollama:qwen2.5:7b").model == "qwen2.5:7b"
    assert parse_spec("openai:gpt-4o-mini").provider == "openai"
    for bad in ["", "gpt-4", "ollama:", "openai", "claude:x", "ollama: x", "local:x"]:
        with pytest.raises(ValueError, match=r"none \| local \| ollama:NAME \| openai:NAME"):
            build_model(bad, ModelConfig())


def test_none_spec_gives_an_unavailable_handle() -> None:
    handle = build_model("none", ModelConfig())
    assert not handle.available and handle.note is None
    assert handle.structured(MSGS, Route) is None and handle.text(MSGS) is None


def test_default_model_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(providers, "llama_cpp_available", lambda: True)
    monkeypatch.setattr(providers, "parts_available", lambda: True)
    assert default_model_spec() == "local"
    monkeypatch.setattr(providers, "llama_cpp_available", lambda: False)
    assert default_model_spec() == "none"


# --- Ollama ----------------------------------------------------------------------------------


def test_ollama_structured_and_streamed_text_against_standin() -> None:
    """Stand-in Ollama server (no Ollama can run here): it checks /api/tags and /api/chat the way
    Ollama does and answers in Ollama's NDJSON shape with prompt_eval_count/eval_count."""

    def reply(body: dict[str, Any]) -> str:
        return json.dumps(ROUTE) if isinstance(body.get("format"), dict) else "Check the plan cache first."

    with start_ollama(reply, ["qwen2.5:latest", "llama3.2:1b"]) as srv:
        cfg = ModelConfig(ollama_base_url=srv.url, request_timeout_s=10)
        handle = build_model("ollama:qwen2.5", cfg)
        assert handle.available and handle.note is None and handle.kind == "ollama"

        route = handle.structured(MSGS, Route)
        assert route == Route.model_validate(ROUTE), handle.note
        body = srv.chats()[0]
        assert body["model"] == "qwen2.5"
        assert body["format"] == Route.model_json_schema()
        assert body["options"]["num_predict"] == cfg.max_tokens
        assert body["options"]["temperature"] == cfg.temperature
        assert [m["role"] for m in body["messages"]] == ["system", "user"]

        tokens: list[str] = []
        text = handle.text([HumanMessage("first step?")], on_token=tokens.append)
        assert text == "Check the plan cache first." and len(tokens) > 1 and "".join(tokens) == text
        assert srv.chats()[1].get("format") in (None, "")
        assert srv.problems == []
    assert handle.usage.snapshot() == {
        "calls": 2,
        "failures": 0,
        "prompt_tokens": 52,
        "completion_tokens": 18,
    }


def test_ollama_model_not_pulled_falls_back() -> None:
    """Stand-in Ollama server (no Ollama can run here) that lists other models only."""
    with start_ollama(lambda body: "", ["llama3.2:1b"]) as srv:
        handle = build_model("ollama:qwen2.5", ModelConfig(ollama_base_url=srv.url))
    assert not handle.available
    assert handle.note is not None and "not pulled" in handle.note and "ollama pull qwen2.5" in handle.note


def test_ollama_failure_mid_run_returns_none_with_note() -> None:
    """Stand-in Ollama server (no Ollama can run here) whose model runner fails with HTTP 500."""
    with start_ollama(lambda body: "", ["qwen2.5:latest"], fail_status=500) as srv:
        handle = build_model("ollama:qwen2.5", ModelConfig(ollama_base_url=srv.url))
        assert handle.available
        assert handle.structured(MSGS, Route) is None
        assert handle.note is not None and "failed" in handle.note and "Route" in handle.note
        assert handle.text(MSGS) is None
    assert handle.usage.snapshot()["failures"] == 2


# --- OpenAI-compatible -----------------------------------------------------------------------


def test_openai_structured_and_streamed_text_against_standin() -> None:
    """Stand-in OpenAI-compatible server (no OpenAI/llama.cpp/vLLM server can run here): it checks
    the Bearer key and response_format.type == json_schema, and answers chat.completion(.chunk)s."""

    def reply(body: dict[str, Any]) -> str:
        return json.dumps(ROUTE) if "response_format" in body else "Look at the deadlock graph."

    with start_openai(reply, ["gpt-4o-mini"], api_key="sk-test") as srv:
        cfg = ModelConfig(openai_base_url=srv.url, openai_api_key="sk-test", request_timeout_s=10)
        handle = build_model("openai:gpt-4o-mini", cfg)
        assert handle.available and handle.note is None and handle.kind == "openai"
        assert srv.seen[0].path == "/v1/models"

        route = handle.structured(MSGS, Route)
        assert route == Route.model_validate(ROUTE), handle.note
        post = next(s for s in srv.seen if s.method == "POST")
        assert post.headers["authorization"] == "Bearer sk-test"
        body = post.body
        assert body is not None
        rf = body["response_format"]
        assert rf["type"] == "json_schema" and rf["json_schema"]["name"] == "Route"
        assert set(rf["json_schema"]["schema"]["properties"]) == {"specialists", "reason"}
        assert body["model"] == "gpt-4o-mini" and body["max_completion_tokens"] == cfg.max_tokens
        assert not body.get("stream")

        tokens: list[str] = []
        text = handle.text(MSGS, on_token=tokens.append)
        assert text == "Look at the deadlock graph." and len(tokens) > 1
        stream_body = srv.chats()[1]
        assert stream_body["stream"] is True and stream_body["stream_options"] == {"include_usage": True}
        assert srv.problems == []
    assert handle.usage.snapshot() == {
        "calls": 2,
        "failures": 0,
        "prompt_tokens": 62,
        "completion_tokens": 24,
    }


def test_openai_wrong_key_falls_back_with_note() -> None:
    """Stand-in OpenAI-compatible server (no OpenAI server can run here) that rejects the key."""
    with start_openai(lambda body: "", ["gpt-4o-mini"], api_key="sk-right") as srv:
        cfg = ModelConfig(openai_base_url=srv.url, openai_api_key="sk-wrong")
        handle = build_model("openai:gpt-4o-mini", cfg)
    assert not handle.available and handle.note is not None and "HTTP 401" in handle.note


def test_openai_slow_answer_times_out_without_hanging() -> None:
    """Stand-in OpenAI-compatible server (no OpenAI server can run here) that answers too late."""
    with start_openai(lambda body: json.dumps(ROUTE), ["m"], api_key="k", delay_s=4) as srv:
        cfg = ModelConfig(openai_base_url=srv.url, openai_api_key="k", request_timeout_s=1)
        handle = build_model("openai:m", cfg)
        started = time.monotonic()
        assert handle.structured(MSGS, Route) is None
        assert time.monotonic() - started < 3.0
    assert handle.note is not None and "answering without a model" in handle.note


# --- unreachable -----------------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["ollama:qwen2.5", "openai:gpt-4o-mini"])
def test_unreachable_server_gives_none_handle_quickly(spec: str) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    cfg = ModelConfig(ollama_base_url=url, openai_base_url=url + "/v1")
    started = time.monotonic()
    handle = build_model(spec, cfg)
    assert time.monotonic() - started < 5.0
    assert not handle.available and handle.chat is None
    assert (
        handle.note == f"model {spec} unreachable at {url}{'/v1' if 'openai' in spec else ''} "
        "(connection refused); answering without a model"
    )
    assert handle.structured(MSGS, Route) is None


def test_silent_server_probe_times_out_quickly() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # accepts connections at the TCP level, never answers
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        started = time.monotonic()
        handle = build_model("ollama:qwen2.5", ModelConfig(ollama_base_url=url, probe_timeout_s=0.5))
        assert time.monotonic() - started < 5.0
    finally:
        listener.close()
    assert not handle.available and handle.note is not None and "timed out" in handle.note


# --- any other chat model: forced tool call --------------------------------------------------


class ScriptedToolModel(GenericFakeChatModel):
    """A fake chat model whose bind_tools records the request and returns itself."""

    bound: list[dict[str, Any]] = Field(default_factory=list)

    def bind_tools(self, tools: Any, *, tool_choice: str | None = None, **kwargs: Any) -> Any:
        self.bound.append({"tools": [convert_to_openai_tool(t) for t in tools], "tool_choice": tool_choice})
        return self


def _tool_call(args: dict[str, Any]) -> AIMessage:
    return AIMessage(
        content="",
        tool_calls=[{"name": "Route", "args": args, "id": "call_1", "type": "tool_call"}],
        usage_metadata={"input_tokens": 40, "output_tokens": 15, "total_tokens": 55},
    )


def test_fake_model_structured_via_forced_tool_call() -> None:
    chat = ScriptedToolModel(messages=iter([_tool_call(ROUTE), "Start with the deadlock graph."]))
    handle = ModelHandle.from_chat("fake", chat)
    assert handle.kind == "tools"
    assert handle.structured(MSGS, Route) == Route.model_validate(ROUTE)
    assert chat.bound[0]["tool_choice"] == "Route"
    assert chat.bound[0]["tools"][0]["function"]["name"] == "Route"
    tokens: list[str] = []
    assert handle.text(MSGS, on_token=tokens.append) == "Start with the deadlock graph."
    assert len(tokens) > 1
    assert handle.usage.snapshot() == {
        "calls": 2,
        "failures": 0,
        "prompt_tokens": 40,
        "completion_tokens": 15,
    }


def test_fake_model_invalid_args_give_none_and_note() -> None:
    bad = {"specialists": ["dba-oracle"], "reason": "x"}
    chat = ScriptedToolModel(messages=iter([_tool_call(bad), AIMessage(content="no tool call")]))
    handle = ModelHandle.from_chat("fake", chat)
    assert handle.structured(MSGS, Route) is None
    assert handle.note is not None and "Route arguments failed validation" in handle.note
    assert handle.structured(MSGS, Route) is None
    assert handle.note is not None and "made no Route tool call" in handle.note
    assert len(handle.notes) == 2 and handle.usage.snapshot()["failures"] == 2


class SleepyModel(BaseChatModel):
    """A chat model that takes far longer than any timeout."""

    @property
    def _llm_type(self) -> str:
        return "sleepy"

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        time.sleep(3)
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content="late"))])


def test_hanging_model_is_abandoned_after_timeout() -> None:
    handle = ModelHandle.from_chat("sleepy", SleepyModel(), timeout_s=0.2)
    started = time.monotonic()
    assert handle.text(MSGS) is None
    assert time.monotonic() - started < 2.0
    assert handle.note is not None and "timed out" in handle.note


class FixedToolModel(BaseChatModel):
    """Always answers the same Route tool call (safe to call from many threads)."""

    @property
    def _llm_type(self) -> str:
        return "fixed"

    def bind_tools(self, tools: Any, *, tool_choice: str | None = None, **kwargs: Any) -> Any:
        return self

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=_tool_call(ROUTE))])


def test_usage_counters_are_thread_safe() -> None:
    handle = ModelHandle.from_chat("fixed", FixedToolModel())
    results: list[Route | None] = []

    def work() -> None:
        for _ in range(20):
            results.append(handle.structured(MSGS, Route))

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 120 and all(isinstance(r, Route) for r in results)
    assert handle.usage.snapshot() == {
        "calls": 120,
        "failures": 0,
        "prompt_tokens": 40 * 120,
        "completion_tokens": 15 * 120,
    }


# --- GGUF assembly ---------------------------------------------------------------------------


def _fake_parts(tmp_path: Path) -> tuple[list[Path], bytes]:
    chunks = [b"GGUF" + bytes([i]) * 3000 if i == 0 else bytes([i]) * (1000 + i) for i in range(6)]
    parts = []
    for i, chunk in enumerate(chunks):
        # names sort opposite to join order, so the join must follow the locator, not the names
        path = tmp_path / "parts" / f"z{9 - i}.bin"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(chunk)
        parts.append(path)
    return parts, b"".join(chunks)


def test_gguf_joined_in_order_verified_and_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parts, whole = _fake_parts(tmp_path)
    digest = hashlib.sha256(whole).hexdigest()
    monkeypatch.setattr(gguf, "locate_parts", lambda: parts)
    cfg = ModelConfig(cache_dir=tmp_path / "cache", local_gguf_sha256=digest)

    path = ensure_local_gguf(cfg)
    assert path == tmp_path / "cache" / BUNDLED_GGUF_NAME and path.read_bytes() == whole
    assert sorted(p.name for p in path.parent.iterdir()) == [
        BUNDLED_GGUF_NAME,
        BUNDLED_GGUF_NAME + ".sha256.json",
    ]
    mtime = path.stat().st_mtime_ns

    def no_rejoin() -> list[Path]:
        raise AssertionError("parts were joined again")

    hashed: list[Path] = []
    real_hash = gguf.sha256_file
    monkeypatch.setattr(gguf, "locate_parts", no_rejoin)

    def counting_hash(p: Path) -> str:
        hashed.append(p)
        return real_hash(p)

    monkeypatch.setattr(gguf, "sha256_file", counting_hash)
    assert ensure_local_gguf(cfg) == path and path.stat().st_mtime_ns == mtime
    assert hashed == []  # verified once already in this process (when it was joined)

    gguf._verified.clear()  # as in a new process: hashed once, then remembered
    assert ensure_local_gguf(cfg) == path and ensure_local_gguf(cfg) == path
    assert hashed == [path]

    gguf._verified.clear()  # a new process that trusts the sidecar does not re-hash
    trusting = cfg.model_copy(update={"trust_digest_sidecar": True})
    assert ensure_local_gguf(trusting) == path and hashed == [path]


def test_gguf_digest_mismatch_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parts, whole = _fake_parts(tmp_path)
    monkeypatch.setattr(gguf, "locate_parts", lambda: parts)
    cache = tmp_path / "cache"
    with pytest.raises(GGUFIntegrityError) as info:
        ensure_local_gguf(ModelConfig(cache_dir=cache))  # expects the real QWEN_SHA256
    message = str(info.value)
    target = cache / BUNDLED_GGUF_NAME
    assert str(target) in message and QWEN_SHA256 in message
    assert hashlib.sha256(whole).hexdigest() in message and "refusing to load" in message
    assert list(cache.iterdir()) == []  # temp file removed, nothing renamed into place


def test_corrupted_cached_gguf_is_rejoined(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parts, whole = _fake_parts(tmp_path)
    monkeypatch.setattr(gguf, "locate_parts", lambda: parts)
    cfg = ModelConfig(cache_dir=tmp_path / "cache", local_gguf_sha256=hashlib.sha256(whole).hexdigest())
    target = tmp_path / "cache" / BUNDLED_GGUF_NAME
    target.parent.mkdir()
    target.write_bytes(b"GGUF tampered")
    assert ensure_local_gguf(cfg).read_bytes() == whole


def test_explicit_gguf_path_verified_only_with_digest(tmp_path: Path) -> None:
    mine = tmp_path / "mine.gguf"
    mine.write_bytes(b"GGUF mine")
    assert ensure_local_gguf(ModelConfig(local_gguf_path=mine)) == mine
    good = hashlib.sha256(b"GGUF mine").hexdigest()
    assert ensure_local_gguf(ModelConfig(local_gguf_path=mine, local_gguf_sha256=good)) == mine
    with pytest.raises(GGUFIntegrityError, match=r"mine\.gguf"):
        ensure_local_gguf(ModelConfig(local_gguf_path=mine, local_gguf_sha256="0" * 64))


def test_local_spec_refuses_tampered_model_and_reports_missing_llama(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parts, _ = _fake_parts(tmp_path)
    monkeypatch.setattr(gguf, "locate_parts", lambda: parts)
    monkeypatch.setattr(providers, "llama_cpp_available", lambda: True)
    handle = build_model("local", ModelConfig(cache_dir=tmp_path / "cache"))
    assert not handle.available and handle.note is not None
    assert "refusing to load" in handle.note and QWEN_SHA256 in handle.note

    monkeypatch.setattr(providers, "llama_cpp_available", lambda: False)
    handle = build_model("local", ModelConfig(cache_dir=tmp_path / "cache"))
    assert not handle.available and handle.note is not None and "pip install -e '.[local]'" in handle.note


# --- the real bundled model ------------------------------------------------------------------


@pytest.mark.slow
def test_real_bundled_model_structured_and_text(tmp_path: Path) -> None:
    """Joins the six real parts, verifies the real sha256, starts the model child (llama.cpp with
    Qwen2.5-Coder-0.5B-Instruct Q4_K_M) and gets a grammar-constrained Route through the OpenAI
    client's json_schema response format, plus a short streamed answer."""
    pytest.importorskip("llama_cpp")
    if not gguf.parts_available():
        pytest.skip("model part packages not installed (pip install -e '.[local]')")
    cfg = ModelConfig(cache_dir=tmp_path, request_timeout_s=120)

    t0 = time.perf_counter()
    path = ensure_local_gguf(cfg)
    join_s = time.perf_counter() - t0
    assert gguf.file_digest(path) == QWEN_SHA256

    handle = build_model("local", cfg)
    assert handle.available and handle.kind == "openai", handle.note  # the child speaks OpenAI's API
    t0 = time.perf_counter()
    child = handle.backend.child  # type: ignore[union-attr]
    child.ensure()  # starts the model child: load plus the one-token smoke generation
    load_s = time.perf_counter() - t0
    assert child.pid != os.getpid() and child.info["smoke_s"] > 0

    t0 = time.perf_counter()
    route = handle.structured(MSGS, Route)
    route_s = time.perf_counter() - t0
    assert isinstance(route, Route), handle.note
    after_route = handle.usage.snapshot()

    tokens: list[str] = []
    t0 = time.perf_counter()
    text = handle.text([HumanMessage("In one sentence: what does an index seek do?")], on_token=tokens.append)
    text_s = time.perf_counter() - t0
    assert text and tokens and "".join(tokens) == text, handle.note
    usage = handle.usage.snapshot()
    assert usage["calls"] == 2 and usage["failures"] == 0 and usage["completion_tokens"] > 0
    forget_children()
    print(
        f"\njoin+verify {join_s:.2f}s, child start {load_s:.2f}s, route {route_s:.2f}s "
        f"({after_route['prompt_tokens']} prompt + {after_route['completion_tokens']} completion tokens) "
        f"-> {route.model_dump()}\ntext {text_s:.2f}s ({len(tokens)} tokens): {text!r}\nusage {usage}"
    )
