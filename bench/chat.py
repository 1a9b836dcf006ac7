"""Benchmark: chat over AG-UI SSE. Time from the request to the first SSE event (and to the plan),
and from a model token leaving the model server to the client receiving it.

The model is a paced OpenAI-compatible stand-in on loopback (30 tokens, one every 20 ms, each
send time recorded) behind `serve --model openai:bench`; structured calls (routing, follow-ups)
answer at once. Target: first event within 50 ms of the request (model excluded).

Run:  .venv/bin/python bench/chat.py [--runs 10]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.service_common import Server, free_port, percentile, service_env

TOKENS, PACE_S = 30, 0.02
SENT: dict[str, float] = {}


def minimal(schema: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, prop in (schema.get("properties") or {}).items():
        if prop.get("type") == "boolean":
            out[name] = False
        elif "enum" in prop:
            out[name] = "done" if "done" in prop["enum"] else prop["enum"][0]
        else:
            out[name] = ""
    return out


class Model(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def _json(self, doc: Any) -> None:
        data = json.dumps(doc).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._json({"object": "list", "data": [{"id": "bench", "object": "model", "owned_by": "bench"}]})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        base = {"id": "c", "created": 1, "model": "bench"}
        usage = {"prompt_tokens": 10, "completion_tokens": TOKENS, "total_tokens": 10 + TOKENS}
        if not body.get("stream"):
            rf = (body.get("response_format") or {}).get("json_schema") or {}
            content = json.dumps(minimal(rf.get("schema") or {}))
            choice = {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
            return self._json({**base, "object": "chat.completion", "choices": [choice], "usage": usage})
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def chunk(doc: Any) -> None:
            data = f"data: {json.dumps(doc) if not isinstance(doc, str) else doc}\n\n".encode()
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        run = f"{time.monotonic_ns() % 100000:05d}"
        for i in range(TOKENS):
            token = f" r{run}w{i}"
            SENT[token] = time.time()
            delta = {"role": "assistant", "content": token}
            chunk(
                {
                    **base,
                    "object": "chat.completion.chunk",
                    "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
                }
            )
            time.sleep(PACE_S)
        chunk(
            {
                **base,
                "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            }
        )
        chunk({**base, "object": "chat.completion.chunk", "choices": [], "usage": usage})
        chunk("[DONE]")
        self.wfile.write(b"0\r\n\r\n")


CLIENT = httpx.Client(timeout=120)  # one keep-alive connection, as a browser holds


def one_chat(base: str, token: str, i: int) -> tuple[float, float, list[float]]:
    body = {
        "threadId": f"bench-{i}",
        "runId": f"r{i}",
        "state": {},
        "tools": [],
        "context": [],
        "forwardedProps": {},
        "messages": [{"id": "m", "role": "user", "content": "Why is checkout timing out on sql-prod-01?"}],
    }
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
    first = plan = 0.0
    lat: list[float] = []
    t0 = time.perf_counter()
    with CLIENT.stream("POST", f"{base}/api/v1/chat", json=body, headers=headers) as r:
        for line in r.iter_lines():
            if not line.startswith("data: "):
                continue
            now, ev = time.time(), json.loads(line[6:])
            if not first:
                first = time.perf_counter() - t0
            if ev["type"] == "STEP_FINISHED" and ev.get("stepName") == "plan" and not plan:
                plan = time.perf_counter() - t0
            if ev["type"] == "TEXT_MESSAGE_CONTENT" and ev["delta"] in SENT:
                lat.append(now - SENT[ev["delta"]])
    return first, plan, lat


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    port = free_port()
    model = ThreadingHTTPServer(("127.0.0.1", port), Model)
    threading.Thread(target=model.serve_forever, daemon=True).start()
    results = {}
    for spec in ("none", "openai:bench"):
        with tempfile.TemporaryDirectory(prefix="opscopilot-chat-") as tmp:
            env = service_env(
                Path(tmp),
                OPSCOPILOT_MODEL_SPEC=spec,
                OPSCOPILOT_MODEL__OPENAI_BASE_URL=f"http://127.0.0.1:{port}/v1",
            )
            server = Server(env, workers=0)
            try:
                one_chat(server.base, server.token, -1)  # warm-up (sources, graph)
                runs = [one_chat(server.base, server.token, i) for i in range(args.runs)]
            finally:
                server.stop()
        results[spec] = runs
        firsts = [r[0] for r in runs]
        plans = [r[1] for r in runs]
        print(
            f"model {spec}: first SSE event p50 {percentile(firsts, 0.5) * 1000:.1f} ms, p95 "
            f"{percentile(firsts, 0.95) * 1000:.1f} ms; "
            f"plan finished p50 {percentile(plans, 0.5) * 1000:.0f} ms"
        )
        lats = [x for r in runs for x in r[2]]
        if lats:
            print(
                f"  model token -> client: {len(lats)} tokens, p50 {percentile(lats, 0.5) * 1000:.1f} ms, "
                f"p99 {percentile(lats, 0.99) * 1000:.1f} ms"
            )
    model.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
