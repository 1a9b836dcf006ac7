"""For the console's browser tests: `opscopilot serve` in a child process, Debian's Chromium via
Playwright (never a downloaded browser), signing in, and where screenshots go."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import ROOT

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
ARTIFACTS = ROOT / "var" / "artifacts" / "console"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
DEMO = ROOT / "evals" / "scenarios" / "demo-checkout-blocking.yaml"
DISK = ROOT / "evals" / "scenarios" / "metrics-disk-forecast-pg-archive.yaml"
ALERT_FILE = ROOT / "examples" / "alerts" / "alertmanager-checkout-blocking.json"
DEMO_QUESTION = "Why is checkout timing out on sql-prod-01?"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    base: str
    tokens: dict[str, str] = field(default_factory=dict)
    log: Path | None = None

    def auth(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[name]}"}


def make_tokens(data_dir: Path, users: dict[str, str]) -> dict[str, str]:
    """API tokens in the store `serve` will open (so it prints no first-start sign-in link)."""
    from server import runtime
    from server.auth import Auth
    from server.settings import Settings

    store = runtime.open_store(Settings(data_dir=data_dir, model_spec="none"))
    try:
        auth = Auth(store, {})
        return {name: auth.create(name, role) for name, role in users.items()}
    finally:
        store.close()


@contextmanager
def serve(
    tmp: Path,
    scenario: Path,
    users: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
    no_auth: bool = False,
) -> Iterator[Served]:
    """`opscopilot serve --scenario` on a free loopback port with its own data dir, until the block ends."""
    data_dir = tmp / "var"
    data_dir.mkdir(parents=True, exist_ok=True)
    tokens = make_tokens(data_dir, users or {})
    port = free_port()
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("OPSCOPILOT_")}
    child_env |= {
        "OPSCOPILOT_DATA_DIR": str(data_dir),
        "OPSCOPILOT_MODEL_SPEC": "none",
        "HF_HUB_OFFLINE": "1",
        "ANONYMIZED_TELEMETRY": "False",
        **(env or {}),
    }
    cmd = [sys.executable, "-m", "server.cli", "serve", "--port", str(port), "--scenario", str(scenario)]
    cmd += ["--workers", "1"] + (["--no-auth"] if no_auth else [])
    log = tmp / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=child_env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"serve exited with {proc.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"serve did not become ready in 90 s:\n{log.read_text()}")
            time.sleep(0.2)
        yield Served(base=base, tokens=tokens, log=log)
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def launch(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


def signed_in(browser: Any, served: Served, user: str | None, viewport: dict[str, int] = DESKTOP) -> Any:
    """A browser context with `user`'s session cookie (exchanged from their API token by the API)."""
    context = browser.new_context(viewport=viewport)
    if user is not None:
        res = context.request.post(f"{served.base}/api/v1/auth/session", headers=served.auth(user))
        assert res.status == 200, res.text()
    return context


def screenshot(page: Any, name: str, full_page: bool = False) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path
