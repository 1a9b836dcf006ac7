"""Helpers for the HTTP API tests: an app on a temp store, tokens, SSE parsing, waiting for workers."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from server.app import build_context, create_app
from server.settings import Settings
from tests.conftest import ROOT

DEMO = ROOT / "evals" / "scenarios" / "demo-checkout-blocking.yaml"
ALERT_FILE = ROOT / "examples" / "alerts" / "alertmanager-checkout-blocking.json"


def settings_for(tmp_path: Path, checkpoint_url: str | None = None, **service: Any) -> Settings:
    # the service section as a settings file gives it: Settings resolves its secret references
    sections: dict[str, Any] = {"service": {"workers": 1, **service}}
    return Settings(data_dir=tmp_path / "var", model_spec="none", checkpoint_url=checkpoint_url, **sections)


@contextmanager
def api(
    tmp_path: Path,
    *,
    no_auth: bool = False,
    scenario: Path = DEMO,
    checkpoint_url: str | None = None,
    **service: Any,
) -> Iterator[tuple[TestClient, Any]]:
    ctx = build_context(settings_for(tmp_path, checkpoint_url, **service), scenario=scenario, no_auth=no_auth)
    app = create_app(ctx)
    with TestClient(app) as client:
        yield client, ctx


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def sse(text: str) -> list[dict[str, Any]]:
    """The JSON data of each server-sent event."""
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]


def run_input(
    thread: str, run: str, text: str | None = None, resume: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "threadId": thread,
        "runId": run,
        "state": {},
        "messages": [{"id": f"m-{run}", "role": "user", "content": text}] if text else [],
        "tools": [],
        "context": [],
        "forwardedProps": {},
    }
    if resume is not None:
        body["resume"] = resume
    return body


def wait_for(client: TestClient, inv_id: str, headers: dict[str, str], timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        doc = client.get(f"/api/v1/investigations/{inv_id}", headers=headers).json()
        if doc["status"] not in ("queued", "investigating"):
            return doc  # type: ignore[no-any-return]
        time.sleep(0.2)
    raise AssertionError(f"{inv_id} still running after {timeout} s")
