"""An OpenAI-compatible stand-in that streams its reply slowly, token by token, as a real server does.

It is the OpenAI stand-in of llm_servers.py (same request checks: bearer key, known model, well-formed
messages and response_format) with one difference: a streamed completion is written as chunked
server-sent events, one chunk every `pace_s`, so a client can watch tokens arrive. Structured calls
(routing, follow-ups) answer at once with the smallest JSON the schema allows.
"""

from __future__ import annotations

import json
import time
from typing import Any

from tests.standins.llm_servers import StandIn, _OpenAIHandler, _start


def minimal(schema: dict[str, Any]) -> dict[str, Any]:
    """The smallest object a JSON schema accepts: empty strings and lists, false, a `done`-like enum."""
    out: dict[str, Any] = {}
    for name, prop in (schema.get("properties") or {}).items():
        kind = prop.get("type")
        if "enum" in prop:
            out[name] = "done" if "done" in prop["enum"] else prop["enum"][0]
        elif kind == "boolean":
            out[name] = False
        elif kind == "array":
            out[name] = []
        elif kind in ("integer", "number"):
            out[name] = 0
        elif kind == "object":
            out[name] = {}
        else:
            out[name] = ""
    return out


class _PacedHandler(_OpenAIHandler):
    pace_s = 0.05

    def _send(self, status: int, payload: Any, ctype: str = "application/json") -> None:
        if ctype != "text/event-stream":
            return super()._send(status, payload, ctype)
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for event in payload.decode().split("\n\n"):
                if not event:
                    continue
                data = (event + "\n\n").encode()
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()
                time.sleep(self.pace_s)
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


def start_paced_openai(text: str, model: str, api_key: str, pace_s: float = 0.05) -> StandIn:
    """Streams `text` (split into token-ish pieces) at one piece per `pace_s`; at `.url` (ends in /v1)."""

    def reply(body: dict[str, Any]) -> str:
        fmt = body.get("response_format") or {}
        if fmt.get("type") == "json_schema":
            return json.dumps(minimal(fmt["json_schema"]["schema"]))
        return text

    handler = type("Paced", (_PacedHandler,), {"pace_s": pace_s})
    return _start(handler, StandIn(reply=reply, models=[model], api_key=api_key), "/v1")
