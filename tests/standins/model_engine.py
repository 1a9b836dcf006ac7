"""A scripted engine for the real model worker process (agents/llm/worker.py) in tests.

The worker, its HTTP API, the child supervision and the OpenAI client are all real; only the
llama.cpp engine is replaced, so process management can be tested without loading a model. The
worker passes its ``--model`` path to the factory: here it is a JSON script:

    {"texts": ["..."],            # answers to free-text requests, in turn (the last one repeats)
     "structured": {"Routing": {...}},  # answers by schema title; otherwise a default from the schema
     "token_delay_s": 0.0,        # pause between streamed pieces
     "smoke": "ok" | "crash" | "fail",  # the one-token smoke generation
     "on_text": {"1": "slow" | "crash" | "hang"},  # what the n-th text request does (counted across children)
     "state_dir": "/tmp/..."}     # where the counter and the "generating" marker live
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agents.llm.llamacpp import Generation


def _default(schema: dict[str, Any]) -> Any:
    kind = schema.get("type")
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    if kind == "boolean":
        return False
    if kind in ("integer", "number"):
        return 0
    if kind == "array":
        return []
    if kind == "object":
        return {k: _default(v) for k, v in (schema.get("properties") or {}).items()}
    return ""


class ScriptedEngine:
    """Answers from a script, streaming word by word."""

    def __init__(self, script_path: str) -> None:
        self.script = json.loads(Path(script_path).read_text())
        self.state = Path(self.script.get("state_dir") or Path(script_path).parent)
        self.name = "scripted"
        self.describe = "scripted stand-in engine"
        self.load_s = 0.0
        self.smoked = False

    def _next_text(self) -> tuple[int, str]:
        counter = self.state / "text-calls"
        n = int(counter.read_text()) + 1 if counter.exists() else 1
        counter.write_text(str(n))
        texts = self.script.get("texts") or ["OK."]
        return n, texts[min(n - 1, len(texts) - 1)]

    def generate(
        self,
        messages: list[dict[str, Any]],
        *,
        max_tokens: int,
        temperature: float,
        schema: dict[str, Any] | None,
        stop: list[str],
        result: Generation,
    ) -> Iterator[str]:
        if not self.smoked:
            self.smoked = True
            smoke = self.script.get("smoke", "ok")
            if smoke == "crash":
                os.kill(os.getpid(), signal.SIGSEGV)
            if smoke == "fail":
                raise RuntimeError("the runtime produced no token")
            result.prompt_tokens, result.completion_tokens, result.finish_reason = 3, 1, "length"
            yield "OK"
            return
        if schema is not None:
            title = str(schema.get("title", ""))
            answer = self.script.get("structured", {}).get(title, _default(schema))
            text = json.dumps(answer)
            action = "ok"
        else:
            n, text = self._next_text()
            action = (self.script.get("on_text") or {}).get(str(n), "ok")
            (self.state / f"generating-{n}").write_text(str(os.getpid()))
        delay = float(self.script.get("token_delay_s", 0.0))
        words = text.split(" ")
        for i, word in enumerate(words[:max_tokens]):
            if action == "crash" and i == 2:
                os.kill(os.getpid(), signal.SIGKILL)
            if action == "hang" and i == 2:
                os.kill(os.getpid(), signal.SIGSTOP)
            time.sleep(delay if action != "slow" else max(delay, 0.2))
            yield word if i == 0 else " " + word
        result.prompt_tokens = sum(len(m["content"].split()) for m in messages)
        result.completion_tokens = min(len(words), max_tokens)
        result.finish_reason = "stop" if len(words) <= max_tokens else "length"


def make_engine(model_path: str, **_: Any) -> ScriptedEngine:
    """The worker's engine factory: ``--engine tests.standins.model_engine:make_engine``."""
    return ScriptedEngine(model_path)
