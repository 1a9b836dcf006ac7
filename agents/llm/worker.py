"""The model child: loads the GGUF with llama.cpp and serves an OpenAI-compatible API on loopback.

Started by agents/llm/child.py as ``python -m agents.llm.worker --model PATH ...``. It loads the
model, runs a one-token smoke generation, then prints one JSON line on stdout (``{"ready": true,
"port": ...}``) and serves ``GET /health``, ``GET /v1/models`` and ``POST /v1/chat/completions``
(plain, ``response_format`` ``json_schema`` or ``json_object`` + ``schema``, streamed or not).
Generations are serialised; one whose client hung up stops at the next token. The child exits
when its parent does (stdin closes, or the parent pid changes), on SIGTERM, and never on SIGINT.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import select
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from agents.llm.llamacpp import Generation

DEFAULT_MAX_TOKENS = 256
# A free-text string in a JSON answer ("reason") without a maxLength gets this one: a small model
# otherwise writes a paragraph into it, token by token (~70 ms each on 2 cores), that nobody reads.
FREE_STRING_MAX = 120
DEFAULT_TEMPERATURE = 0.1
SMOKE_PROMPT = [{"role": "user", "content": "Reply with OK."}]


class Engine(Protocol):
    """What the worker needs from a model runtime (llama.cpp, or a test's stand-in)."""

    name: str
    describe: str
    load_s: float

    def generate(
        self,
        messages: list[dict[str, Any]],
        *,
        max_tokens: int,
        temperature: float,
        schema: dict[str, Any] | None,
        stop: list[str],
        result: Generation,
    ) -> Iterator[str]: ...


class BadRequest(ValueError):
    """The request body is not one this server accepts (answered with HTTP 400)."""


def _content(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(
            str(p.get("text", "")) for p in value if isinstance(p, dict) and p.get("type") == "text"
        )
    if value is None:
        return ""
    raise BadRequest(f"message content must be a string or a list of text parts, got {type(value).__name__}")


def parse_request(body: Any, n_ctx: int) -> dict[str, Any]:
    """Validate an OpenAI chat-completions body into the engine's parameters."""
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise BadRequest("messages must be a non-empty list")
    messages = []
    for m in msgs:
        if not isinstance(m, dict) or m.get("role") not in {"system", "user", "assistant", "tool"}:
            raise BadRequest(f"bad message {str(m)[:80]!r}")
        messages.append({"role": m["role"], "content": _content(m.get("content"))})
    schema: dict[str, Any] | None = None
    rf = body.get("response_format")
    if isinstance(rf, dict) and rf.get("type") == "json_schema":
        spec = rf.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
            raise BadRequest("response_format.json_schema.schema must be a JSON schema object")
        schema = spec["schema"]
    elif isinstance(rf, dict) and rf.get("type") == "json_object":
        schema = rf.get("schema") if isinstance(rf.get("schema"), dict) else {"type": "object"}
    elif rf is not None and not (isinstance(rf, dict) and rf.get("type") == "text"):
        raise BadRequest(f"unsupported response_format {str(rf)[:120]!r}")
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens") or DEFAULT_MAX_TOKENS
    stop = body.get("stop") or []
    temperature = body.get("temperature")
    return {
        "messages": messages,
        "schema": cap_strings(schema) if schema is not None else None,
        "max_tokens": max(1, min(int(max_tokens), n_ctx)),
        "temperature": DEFAULT_TEMPERATURE if temperature is None else float(temperature),
        "stop": [stop] if isinstance(stop, str) else [str(s) for s in stop],
        "stream": bool(body.get("stream")),
        "include_usage": bool((body.get("stream_options") or {}).get("include_usage")),
    }


def cap_strings(schema: Any) -> Any:
    """A copy of ``schema`` whose free strings (no maxLength, enum, const, pattern or format) have
    maxLength FREE_STRING_MAX; the grammar compiled from it ends them there."""
    if isinstance(schema, list):
        return [cap_strings(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: cap_strings(v) for k, v in schema.items()}
    free = not ({"maxLength", "enum", "const", "pattern", "format"} & out.keys())
    if out.get("type") == "string" and free:
        out["maxLength"] = FREE_STRING_MAX
    return out


class Worker:
    """The engine plus its lock and counters (shared by the server's request threads)."""

    def __init__(self, engine: Engine, n_ctx: int) -> None:
        self.engine = engine
        self.n_ctx = n_ctx
        self.lock = threading.Lock()
        self.served = 0
        self.cancelled = 0
        self.busy_since: float | None = None
        self.last_token_at: float | None = None
        self.smoke_s = 0.0

    def smoke(self) -> None:
        """One token end to end: a runtime that cannot generate fails here, before 'ready'."""
        started = time.perf_counter()
        result = Generation()
        for _ in self.engine.generate(
            SMOKE_PROMPT, max_tokens=1, temperature=0.0, schema=None, stop=[], result=result
        ):
            pass
        self.smoke_s = time.perf_counter() - started

    def health(self) -> dict[str, Any]:
        now = time.monotonic()
        return {
            "status": "ok",
            "pid": os.getpid(),
            "model": self.engine.name,
            "engine": self.engine.describe,
            "load_s": round(self.engine.load_s, 3),
            "smoke_s": round(self.smoke_s, 3),
            "served": self.served,
            "cancelled": self.cancelled,
            "busy_s": None if self.busy_since is None else round(now - self.busy_since, 3),
            "last_token_age_s": None if self.last_token_at is None else round(now - self.last_token_at, 3),
        }

    def run(self, params: dict[str, Any], gone: Callable[[], bool]) -> Iterator[str]:
        """Generate under the lock; stop early when ``gone()`` says the client hung up."""
        result: Generation = params["result"]
        with self.lock:
            self.busy_since = time.monotonic()
            try:
                pieces = self.engine.generate(
                    params["messages"],
                    max_tokens=params["max_tokens"],
                    temperature=params["temperature"],
                    schema=params["schema"],
                    stop=params["stop"],
                    result=result,
                )
                for piece in pieces:
                    self.last_token_at = time.monotonic()
                    if gone():
                        self.cancelled += 1
                        close = getattr(pieces, "close", None)
                        if close is not None:
                            close()
                        return
                    yield piece
                self.served += 1
            finally:
                self.busy_since = None


class Handler(BaseHTTPRequestHandler):
    worker: Worker
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _send_json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str) -> None:
        self._send_json(status, {"error": {"message": message, "type": "invalid_request_error"}})

    def _client_gone(self) -> bool:
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def do_GET(self) -> None:
        if self.path == "/health":
            return self._send_json(200, self.worker.health())
        if self.path == "/v1/models":
            model = {"id": self.worker.engine.name, "object": "model", "created": 0, "owned_by": "local"}
            return self._send_json(200, {"object": "list", "data": [model]})
        return self._error(404, f"GET {self.path}: unknown endpoint")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.path != "/v1/chat/completions":
            return self._error(404, f"POST {self.path}: unknown endpoint")
        try:
            params = parse_request(json.loads(raw or b"null"), self.worker.n_ctx)
        except (ValueError, TypeError) as exc:
            return self._error(400, str(exc))
        params["result"] = Generation()
        base = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:16]}",
            "created": int(time.time()),
            "model": self.worker.engine.name,
        }
        try:
            if params["stream"]:
                self._stream(params, base)
            else:
                self._complete(params, base)
        except Exception as exc:  # the engine failed: tell the client, keep serving
            if not self.wfile.closed:
                with contextlib.suppress(OSError):
                    self._error(500, f"generation failed: {type(exc).__name__}: {exc}")

    def _usage(self, result: Generation) -> dict[str, int]:
        p, c = result.prompt_tokens, result.completion_tokens
        return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}

    def _complete(self, params: dict[str, Any], base: dict[str, Any]) -> None:
        pieces = list(self.worker.run(params, self._client_gone))
        result: Generation = params["result"]
        if self._client_gone():
            return
        message = {"role": "assistant", "content": "".join(pieces)}
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": result.finish_reason}
        payload = {**base, "object": "chat.completion", "choices": [choice], "usage": self._usage(result)}
        self._send_json(200, payload)

    def _stream(self, params: dict[str, Any], base: dict[str, Any]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        broken = False

        def event(payload: dict[str, Any]) -> None:
            nonlocal broken
            try:
                self.wfile.write(f"data: {json.dumps(payload)}\n\n".encode())
                self.wfile.flush()
            except OSError:
                broken = True

        def gone() -> bool:
            return broken or self._client_gone()

        chunk = {**base, "object": "chat.completion.chunk"}
        for piece in self.worker.run(params, gone):
            delta = {"role": "assistant", "content": piece}
            event({**chunk, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
        if broken:
            return
        result: Generation = params["result"]
        event({**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": result.finish_reason}]})
        if params["include_usage"]:
            event({**chunk, "choices": [], "usage": self._usage(result)})
        if not broken:
            try:
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
            except OSError:
                pass


def load_factory(spec: str) -> Callable[..., Engine]:
    """``module:function`` -> the engine factory (default: llama.cpp)."""
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name or "make_engine")  # type: ignore[no-any-return]


def _exit_with_parent(parent: int) -> None:
    """Leave no orphan: stdin is a pipe from the parent (EOF when it dies), and the pid is watched."""

    def watch_stdin() -> None:
        try:
            while sys.stdin.buffer.read(4096):
                pass
        except (OSError, ValueError):
            pass
        os._exit(0)

    def watch_pid() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch_stdin, name="stdin-eof", daemon=True).start()
    threading.Thread(target=watch_pid, name="parent-pid", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agents.llm.worker", description=__doc__)
    parser.add_argument("--model", required=True, help="path of the GGUF file")
    parser.add_argument("--n-ctx", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--extra-buffers", action="store_true", help="allow llama.cpp's AMX/repack buffers")
    parser.add_argument("--engine", default="agents.llm.llamacpp:make_engine", help="module:factory")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us; a terminal's Ctrl-C does not
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    _exit_with_parent(os.getppid())

    def say(payload: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(payload) + "\n")
        sys.stdout.flush()

    try:
        engine = load_factory(args.engine)(
            args.model, n_ctx=args.n_ctx, n_threads=args.threads, extra_buffers=args.extra_buffers
        )
    except Exception as exc:
        say({"ready": False, "stage": "load", "error": f"{type(exc).__name__}: {exc}"[:500]})
        return 3
    worker = Worker(engine, args.n_ctx)
    try:
        worker.smoke()
    except Exception as exc:
        say({"ready": False, "stage": "smoke", "error": f"{type(exc).__name__}: {exc}"[:500]})
        return 3
    handler = type("BoundHandler", (Handler,), {"worker": worker})
    server = ThreadingHTTPServer((args.host, args.port), handler)
    server.daemon_threads = True
    say({"ready": True, "pid": os.getpid(), "port": server.server_address[1], **worker.health()})
    os.dup2(2, 1)  # the parent reads one line only: anything a library prints later goes to the log
    server.serve_forever(poll_interval=0.5)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
