"""Debian's Alertmanager delivers a real webhook (v4, bearer credentials) to `opscopilot serve`,
and an investigation starts from it. Both run as processes on free loopback ports."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.api_helpers import DEMO
from tests.conftest import ROOT
from tests.live import unavailable

pytestmark = pytest.mark.live
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {timeout} s")


def test_alertmanager_notification_starts_an_investigation(tmp_path: Path) -> None:
    if not shutil.which(ALERTMANAGER):
        unavailable("prometheus-alertmanager is not installed (scripts/services installs it)")
    serve_port, am_port = free_port(), free_port()
    webhook_token = "am-webhook-token-for-tests"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OPSCOPILOT_")},
        "OPSCOPILOT_DATA_DIR": str(tmp_path / "var"),
        "OPSCOPILOT_MODEL_SPEC": "none",
        "OPSCOPILOT_SERVICE__WEBHOOKS": json.dumps({"alertmanager": {"bearer_token": {"env": "AM_TOKEN"}}}),
        "AM_TOKEN": webhook_token,
        "HF_HUB_OFFLINE": "1",
    }
    serve = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "serve", "--port", str(serve_port), "--scenario", str(DEMO)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    config = tmp_path / "alertmanager.yml"
    config.write_text(
        "route:\n  receiver: opscopilot\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 5s\n"
        "receivers:\n  - name: opscopilot\n    webhook_configs:\n"
        f"      - url: http://127.0.0.1:{serve_port}/api/v1/alerts/alertmanager\n"
        "        send_resolved: true\n"
        f"        http_config:\n          authorization:\n            credentials: {webhook_token}\n"
    )
    am = subprocess.Popen(
        [ALERTMANAGER, f"--config.file={config}", f"--storage.path={tmp_path / 'am-data'}",
         f"--web.listen-address=127.0.0.1:{am_port}", "--cluster.listen-address="],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert serve.stdout is not None
        first_lines = [serve.stdout.readline() for _ in range(2)]
        token = next(m.group(0) for line in first_lines if (m := re.search(r"oc_\S+", line)))
        wait_http(f"http://127.0.0.1:{serve_port}/healthz")
        wait_http(f"http://127.0.0.1:{am_port}/-/ready")
        alert = [{
            "labels": {"alertname": "CheckoutLatencyHigh", "severity": "critical",
                       "instance": "sql-prod-01:1433"},
            "annotations": {"summary": "Checkout requests time out against sql-prod-01"},
            "startsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }]  # fmt: skip
        r = httpx.post(f"http://127.0.0.1:{am_port}/api/v2/alerts", json=alert, timeout=5)
        assert r.status_code == 200, r.text
        headers = {"Authorization": f"Bearer {token}"}
        deadline = time.monotonic() + 60
        found: list[dict] = []
        while time.monotonic() < deadline and not found:
            listed = httpx.get(
                f"http://127.0.0.1:{serve_port}/api/v1/investigations", headers=headers, timeout=5
            )
            found = [
                i
                for i in listed.json()
                if i["kind"] == "alert" and i["status"] not in ("queued", "investigating")
            ]
            time.sleep(0.5)
        assert found, "no investigation started from the Alertmanager notification"
        inv = found[0]
        assert inv["requester"] == "webhook:alertmanager" and inv["route"][:1] == ["database"]
        assert "sql-prod-01" in inv["request"]
    finally:
        am.terminate()
        serve.terminate()
        am.wait(10)
        serve.wait(20)
