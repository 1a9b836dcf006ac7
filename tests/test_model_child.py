"""The managed model child: real worker processes, the real OpenAI client, real signals.

The worker (agents/llm/worker.py), its HTTP API, the supervision (agents/llm/child.py) and the
langchain-openai client are the production code; the llama.cpp engine inside the worker is
replaced by a scripted stand-in (tests/standins/model_engine.py) so the tests need no model and
can crash, hang and kill the child on cue. tests/test_local_model_e2e.py runs the real model.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import HumanMessage, SystemMessage
from pydantic import BaseModel

from agents.llm import ModelConfig, ModelHandle
from agents.llm.child import ChildSpec, ModelChild, forget_children, shared_child
from agents.llm.providers import LocalChildBackend
from evals.loader import load_scenario
from evals.runner import RunOptions, investigate_scenario
from tests.conftest import EXAMPLES, ROOT

ENGINE = "tests.standins.model_engine:make_engine"
GROUNDED = "Session 57 on sql-prod-01 is the head blocker and blocks 3 sessions [E1]."
LONG = " ".join(["The blocking chain on sql-prod-01 keeps checkout waiting."] * 40)


class Route(BaseModel):
    database: bool
    logs: bool


@pytest.fixture(autouse=True)
def _fresh_children() -> Iterator[None]:
    forget_children()
    yield
    forget_children()


def _spec(tmp_path: Path, script: dict[str, Any]) -> ChildSpec:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "script.json"
    path.write_text(json.dumps({"state_dir": str(tmp_path), **script}))
    return ChildSpec(model_path=str(path), engine=ENGINE, state_dir=tmp_path / "state", startup_timeout_s=30)


def _handle(spec: ChildSpec, timeout_s: float = 30) -> tuple[ModelHandle, ModelChild]:
    child = shared_child(spec)
    backend = LocalChildBackend(child, ModelConfig(request_timeout_s=timeout_s))
    return ModelHandle.from_backend("local", backend, timeout_s=timeout_s), child


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as fh:  # a zombie is dead too
        return fh.read().split()[2] != "Z"


def _wait(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _child_code(spec: ChildSpec, then: str) -> str:
    """A Python program that gets the shared child for ``spec`` as ``c``, then runs ``then``."""
    return (
        "import json, time; from pathlib import Path; from agents.llm.child import ChildSpec, shared_child; "
        f"c = shared_child(ChildSpec(model_path={spec.model_path!r}, engine={ENGINE!r}, "
        f"state_dir=Path({str(spec.state_dir)!r}))); {then}"
    )


MSGS = [SystemMessage("Route. JSON only."), HumanMessage("checkout is slow on sql-prod-01")]


def test_the_child_answers_structured_and_streamed_text_through_the_openai_client(tmp_path: Path) -> None:
    script = {"structured": {"Route": {"database": True, "logs": False}}, "texts": ["It is X."]}
    spec = _spec(tmp_path, script)
    handle, child = _handle(spec)
    assert handle.available and handle.kind == "openai" and child.pid is None  # starts on first use
    assert handle.structured(MSGS, Route) == Route(database=True, logs=False), handle.note
    pid = child.pid
    assert pid is not None and _alive(pid) and pid != os.getpid()
    tokens: list[str] = []
    assert handle.text(MSGS, on_token=tokens.append) == "It is X." and len(tokens) == 3
    assert handle.usage.snapshot()["failures"] == 0 and handle.usage.snapshot()["completion_tokens"] > 0
    assert "smoke_s" in child.info and child.info["model"] == "scripted"
    child.stop()
    assert _wait(lambda: not _alive(pid), 5)


def test_two_investigations_at_once_share_one_child_and_both_finish(
    tmp_path: Path,
    knowledge_factory,  # type: ignore[no-untyped-def]
) -> None:
    spec = _spec(tmp_path, {"texts": [GROUNDED], "token_delay_s": 0.02})
    handle, child = _handle(spec)
    scenario = load_scenario(EXAMPLES / "mssql-blocking-01.yaml")
    knowledge_factory(scenario.world)  # Chroma's first in-memory client is not safe to create from 2 threads
    results: list[Any] = []

    def run() -> None:
        options = RunOptions(semantic_routing=False)
        results.append(investigate_scenario(scenario, handle, options, knowledge_factory))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(results) == 2
    assert child.starts == 1  # one child served both
    for run_ in results:
        report = run_.values["report"]
        assert report["explanation"] == GROUNDED, (report["notes"], report["explanation_dropped_reasons"])
        assert report["explanation_sentences"] == 1 and report["explanation_dropped"] == 0
        assert "head blocker session 57" in run_.values["answer"]
    assert int((tmp_path / "text-calls").read_text()) == 2


def test_a_second_process_uses_the_running_child(tmp_path: Path) -> None:
    spec = _spec(tmp_path, {"texts": ["Shared."]})
    handle, child = _handle(spec)
    assert handle.text(MSGS) == "Shared."
    code = _child_code(spec, "c.ensure(); print(json.dumps([c.pid, c.starts]))")
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    pid, starts = json.loads(out.stdout.strip().splitlines()[-1])
    assert pid == child.pid and starts == 0  # adopted, not started again
    assert _alive(pid)  # the other process exiting does not stop a child it did not start


def test_the_child_exits_when_its_parent_is_killed(tmp_path: Path) -> None:
    spec = _spec(tmp_path, {})
    code = _child_code(spec, "c.ensure(); print(c.pid, flush=True); time.sleep(120)")
    parent = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        child_pid = int(parent.stdout.readline())
        assert _alive(child_pid)
        parent.kill()  # SIGKILL: no atexit, no cleanup
        parent.wait(timeout=10)
        assert _wait(lambda: not _alive(child_pid), 5), "the model child outlived its parent"
    finally:
        parent.kill()


def test_killed_mid_generation_the_investigation_completes_and_the_next_gets_a_fresh_child(
    tmp_path: Path,
    knowledge_factory,  # type: ignore[no-untyped-def]
) -> None:
    spec = _spec(tmp_path, {"texts": [LONG, GROUNDED], "on_text": {"1": "slow"}})
    handle, child = _handle(spec)
    scenario = load_scenario(EXAMPLES / "mssql-blocking-01.yaml")
    killed: list[int] = []

    def kill_when_generating() -> None:
        if _wait(lambda: (tmp_path / "generating-1").exists(), 60):
            pid = int((tmp_path / "generating-1").read_text())
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    killer = threading.Thread(target=kill_when_generating)
    killer.start()
    started = time.monotonic()
    first = investigate_scenario(scenario, handle, RunOptions(semantic_routing=False), knowledge_factory)
    elapsed = time.monotonic() - started
    killer.join()
    assert killed, "the generation never started"
    report = first.values["report"]
    assert report["explanation"] is None
    assert any("killed by SIGKILL" in n for n in report["notes"]), report["notes"]
    assert "head blocker session 57" in first.values["answer"]  # the analyzers' findings are all there
    assert [p["target"] for p in first.values["proposals"]] == ["sql-prod-01 session 57"]
    assert elapsed < 30

    assert _wait(lambda: handle.note is None, 30), handle.note  # restarted in the background
    second = investigate_scenario(scenario, handle, RunOptions(semantic_routing=False), knowledge_factory)
    assert child.pid is not None and child.pid != killed[0] and child.starts == 2
    assert second.values["report"]["explanation"] == GROUNDED
    assert not any("SIGKILL" in n for n in second.values["report"]["notes"])


def test_a_failing_smoke_generation_is_a_note_and_a_fallback(tmp_path: Path) -> None:
    handle, child = _handle(_spec(tmp_path, {"smoke": "crash"}))
    started = time.monotonic()
    assert handle.structured(MSGS, Route) is None
    assert time.monotonic() - started < 20
    assert handle.note is not None and "killed by SIGSEGV" in handle.note and "smoke" in handle.note
    assert "answering without a model" in handle.note
    assert handle.text(MSGS) is None and child.starts == 1  # not started again and again

    refused, _ = _handle(_spec(tmp_path / "b", {"smoke": "fail"}))
    assert refused.text(MSGS) is None
    assert refused.note is not None and "failed its smoke generation: RuntimeError" in refused.note


def test_a_hung_child_is_abandoned_within_seconds(tmp_path: Path) -> None:
    handle, child = _handle(_spec(tmp_path, {"texts": [LONG], "on_text": {"1": "hang"}}), timeout_s=60)
    assert handle.structured(MSGS, Route) is not None  # up and answering
    pid = child.pid
    assert pid is not None
    started = time.monotonic()
    assert handle.text(MSGS, on_token=lambda _: None) is None
    assert time.monotonic() - started < 20  # the health check noticed, not the 60 s timeout
    assert handle.notes and "stopped answering its health check" in handle.notes[-1]
    assert _wait(lambda: not _alive(pid), 10)  # the stopped process was killed, not left behind


def test_the_worker_answers_like_an_openai_server_and_refuses_malformed_requests(tmp_path: Path) -> None:
    import httpx

    _, child = _handle(_spec(tmp_path, {"texts": ["Fine."]}))
    url = child.ensure()
    assert httpx.get(f"{url}/v1/models").json()["data"][0]["id"] == "scripted"
    health = httpx.get(f"{url}/health").json()
    assert health["status"] == "ok" and health["pid"] == child.pid
    msgs = [{"role": "user", "content": "hi"}]
    bad = {"model": "local", "messages": msgs, "response_format": {"type": "xml"}}
    resp = httpx.post(f"{url}/v1/chat/completions", json=bad)
    assert resp.status_code == 400 and "unsupported response_format" in resp.json()["error"]["message"]
    assert httpx.post(f"{url}/v1/chat/completions", json={"messages": []}).status_code == 400
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "title": "Answer"}
    for rf in (
        {"type": "json_schema", "json_schema": {"name": "Answer", "schema": schema}},
        {"type": "json_object", "schema": schema},
    ):
        body = httpx.post(f"{url}/v1/chat/completions", json={"messages": msgs, "response_format": rf}).json()
        assert json.loads(body["choices"][0]["message"]["content"]) == {"ok": False}
        assert body["usage"]["completion_tokens"] >= 1
