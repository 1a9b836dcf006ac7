"""Stand-in Ollama and OpenAI-compatible HTTP servers for tests (no real server can run here)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.standins.loopback import LoopbackServer, QuietHandler

Reply = Callable[[dict[str, Any]], str]
ROLES = {"system", "user", "assistant", "tool"}


@dataclass
class Seen:
    """One request the stand-in received."""

    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: dict[str, Any] | None


@dataclass
class StandIn:
    """Shared state: what was received, what was wrong with it, how to answer."""

    reply: Reply
    models: list[str]
    api_key: str | None = None
    delay_s: float = 0.0
    fail_status: int | None = None
    seen: list[Seen] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    url: str = ""
    _server: LoopbackServer | None = None

    def chats(self) -> list[dict[str, Any]]:
        """Bodies of the chat requests received."""
        return [s.body for s in self.seen if s.method == "POST" and s.body is not None]

    def __enter__(self) -> StandIn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Shut the server down."""
        if self._server is not None:
            self._server.close()
            self._server = None


class _Handler(QuietHandler):
    state: StandIn
    protocol_version = "HTTP/1.1"

    def _body(self) -> dict[str, Any] | None:
        length = int(self.headers.get("Content-Length") or 0)
        if not length:
            return None
        raw = self.rfile.read(length)
        try:
            data = json.loads(raw)
        except ValueError:
            self.state.problems.append(f"{self.path}: body is not JSON")
            return None
        return data if isinstance(data, dict) else None

    def _send(self, status: int, payload: Any, ctype: str = "application/json") -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
            self.close_connection = True

    def _reject(self, status: int, problem: str) -> None:
        self.state.problems.append(problem)
        self._send(status, self._error(problem))

    def _error(self, message: str) -> dict[str, Any]:
        return {"error": message}

    def _record(self, body: dict[str, Any] | None) -> None:
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.state.seen.append(Seen(self.command, self.path, headers, body))


def _start(handler: type[_Handler], state: StandIn, prefix: str) -> StandIn:
    server = LoopbackServer(type("H", (handler,), {"state": state}), name="standin", daemon_threads=True)
    state._server = server
    state.url = f"{server.url}{prefix}"
    return state


def _check_messages(body: dict[str, Any]) -> str | None:
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        return "messages must be a non-empty list"
    for m in msgs:
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            return f"bad message {m!r}"
    return None


class _OllamaHandler(_Handler):
    def do_GET(self) -> None:
        self._record(None)
        if self.path != "/api/tags":
            return self._reject(404, f"GET {self.path}: not an Ollama endpoint")
        models = [
            {
                "name": m,
                "model": m,
                "modified_at": "2025-01-01T00:00:00Z",
                "size": 397821319,
                "digest": "0" * 64,
                "details": {"format": "gguf", "family": "qwen2"},
            }
            for m in self.state.models
        ]
        self._send(200, {"models": models})

    def do_POST(self) -> None:
        body = self._body()
        self._record(body)
        if self.path != "/api/chat" or body is None:
            return self._reject(404, f"POST {self.path}: not an Ollama endpoint or no JSON body")
        if _tagged(str(body.get("model"))) not in self.state.models:
            return self._reject(404, f"model '{body.get('model')}' not found")
        if problem := _check_messages(body):
            return self._reject(400, problem)
        fmt = body.get("format")
        if fmt not in (None, "", "json") and not (isinstance(fmt, dict) and fmt.get("type") == "object"):
            return self._reject(400, f"format must be '', 'json' or a JSON schema object, got {fmt!r}")
        time.sleep(self.state.delay_s)
        if self.state.fail_status:
            return self._send(self.state.fail_status, self._error("model runner has unexpectedly stopped"))
        content = self.state.reply(body)
        base = {"model": body["model"], "created_at": "2025-01-01T00:00:00.000000Z"}
        final = {
            **base,
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "done_reason": "stop",
            "total_duration": 1_000_000,
            "load_duration": 1000,
            "prompt_eval_count": 26,
            "prompt_eval_duration": 1000,
            "eval_count": 9,
            "eval_duration": 1000,
        }
        if body.get("stream", True) is False:
            final["message"]["content"] = content
            return self._send(200, final)
        lines = [
            {**base, "message": {"role": "assistant", "content": piece}, "done": False}
            for piece in _pieces(content)
        ]
        ndjson = "".join(json.dumps(x) + "\n" for x in [*lines, final]).encode()
        self._send(200, ndjson, "application/x-ndjson")


class _OpenAIHandler(_Handler):
    def _error(self, message: str) -> dict[str, Any]:
        return {"error": {"message": message, "type": "invalid_request_error", "code": None}}

    def _authorized(self) -> bool:
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or (self.state.api_key and auth != f"Bearer {self.state.api_key}"):
            self._reject(401, "Incorrect API key provided")
            return False
        return True

    def do_GET(self) -> None:
        self._record(None)
        if not self._authorized():
            return None
        if self.path != "/v1/models":
            return self._reject(404, f"GET {self.path}: unknown endpoint")
        data = [
            {"id": m, "object": "model", "created": 1700000000, "owned_by": "standin"}
            for m in self.state.models
        ]
        return self._send(200, {"object": "list", "data": data})

    def do_POST(self) -> None:
        body = self._body()
        self._record(body)
        if not self._authorized():
            return None
        if self.path != "/v1/chat/completions" or body is None:
            return self._reject(404, f"POST {self.path}: unknown endpoint or no JSON body")
        if body.get("model") not in self.state.models:
            return self._reject(404, f"The model `{body.get('model')}` does not exist")
        if problem := _check_messages(body):
            return self._reject(400, problem)
        rf = body.get("response_format")
        if rf is not None:
            js = rf.get("json_schema") if isinstance(rf, dict) else None
            if (
                rf.get("type") != "json_schema"
                or not isinstance(js, dict)
                or not js.get("name")
                or not isinstance(js.get("schema"), dict)
            ):
                return self._reject(400, f"invalid response_format {rf!r}")
        time.sleep(self.state.delay_s)
        if self.state.fail_status:
            return self._send(self.state.fail_status, self._error("The server had an error"))
        content = self.state.reply(body)
        usage = {"prompt_tokens": 31, "completion_tokens": 12, "total_tokens": 43}
        base = {
            "id": "chatcmpl-standin",
            "created": 1700000000,
            "model": body["model"],
            "system_fingerprint": "fp_standin",
        }
        if not body.get("stream"):
            choice = {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
            return self._send(200, {**base, "object": "chat.completion", "choices": [choice], "usage": usage})
        events = [
            {
                **base,
                "object": "chat.completion.chunk",
                "choices": [
                    {
                        "index": 0,
                        "delta": {"role": "assistant", "content": piece},
                        "logprobs": None,
                        "finish_reason": None,
                    }
                ],
            }
            for piece in _pieces(content)
        ]
        events.append(
            {
                **base,
                "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}],
            }
        )
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append({**base, "object": "chat.completion.chunk", "choices": [], "usage": usage})
        sse = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
        return self._send(200, sse.encode(), "text/event-stream")


def _tagged(name: str) -> str:
    """Ollama resolves a bare model name to its :latest tag."""
    return name if ":" in name else f"{name}:latest"


def _pieces(content: str) -> list[str]:
    """Split a reply into token-ish pieces, as servers stream them."""
    out, word = [], ""
    for ch in content:
        word += ch
        if ch in " ,{}":
            out.append(word)
            word = ""
    return [*out, word] if word else out


def start_ollama(reply: Reply, models: list[str], **kw: Any) -> StandIn:
    """An Ollama stand-in at ``.url`` (no path prefix)."""
    return _start(_OllamaHandler, StandIn(reply=reply, models=models, **kw), "")


def start_openai(reply: Reply, models: list[str], api_key: str, **kw: Any) -> StandIn:
    """An OpenAI-compatible stand-in at ``.url`` (ends in /v1)."""
    return _start(_OpenAIHandler, StandIn(reply=reply, models=models, api_key=api_key, **kw), "/v1")
