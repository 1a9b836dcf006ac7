"""Shared by the service benchmarks: start `opscopilot serve` / `worker` on loopback, percentiles."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "evals" / "scenarios" / "demo-checkout-blocking.yaml"
WEBHOOK_TOKEN = "bench-webhook-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def _descendants(pid: int) -> list[int]:
    """Every process below `pid` (children, their children...)."""
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                kids = [int(k) for k in (task / "children").read_text().split()]
            except OSError:
                continue
            found += kids
            todo += kids
    return found


def service_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSCOPILOT_")}
    env.update(
        {
            "OPSCOPILOT_DATA_DIR": str(data_dir),
            "OPSCOPILOT_MODEL_SPEC": "none",
            "OPSCOPILOT_SERVICE__WEBHOOKS": json.dumps(
                {"alertmanager": {"bearer_token": {"env": "BENCH_WEBHOOK_TOKEN"}}}
            ),
            "BENCH_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
            "HF_HUB_OFFLINE": "1",
            "ANONYMIZED_TELEMETRY": "False",
        }
    )
    env.update(extra)
    return env


class Server:
    """`opscopilot serve` in a child process; `.token` is the admin token it printed at first start."""

    def __init__(
        self,
        env: dict[str, str],
        workers: int = 0,
        scenario: Path = DEMO,
        first_start: bool = True,
    ) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        cmd = [
            sys.executable,
            "-m",
            "server.cli",
            "serve",
            "--port",
            str(self.port),
            "--scenario",
            str(scenario),
            "--workers",
            str(workers),
        ]
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.token = ""
        assert self.proc.stdout is not None
        for _ in range(4 if first_start else 0):  # a restart prints no token: do not wait for one
            line = self.proc.stdout.readline()
            if m := re.search(r"oc_\S+", line):
                self.token = m.group(0)
                break
        for _ in range(300):
            try:
                if httpx.get(f"{self.base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)

    def cpu_s(self) -> float:
        """CPU seconds (user + system) the server and its child processes have used so far."""
        ticks = 0
        for pid in [self.proc.pid, *_descendants(self.proc.pid)]:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # gone meanwhile
                continue
            ticks += int(fields[11]) + int(fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")

    def counted(self, metric: str) -> float:
        """The sum of a counter's samples on /metrics (every label set)."""
        text = httpx.get(f"{self.base}/metrics", headers={"Authorization": f"Bearer {self.token}"}).text
        return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(metric))

    def stop(self, sig: int | None = None) -> None:
        if self.proc.poll() is None:
            if sig is None:
                self.proc.terminate()
            else:
                self.proc.send_signal(sig)
            self.proc.wait(30)
