"""Fault test under load: alerts stream into `serve` (embedded store), two `opscopilot worker`
processes investigate them; midway one worker is killed with SIGKILL, then the server; both are
restarted and the sender retries what got no 202 (as Alertmanager does).

Counts alerts sent, acknowledged, stored, investigated; nothing may be lost and nothing
investigated twice (a run taken over after a kill counts once: it finishes once).

Run:  .venv/bin/python bench/fault.py [--alerts 300]
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.service_common import DEMO, ROOT, WEBHOOK_TOKEN, Server, service_env

TEMPLATE = json.loads((ROOT / "examples/alerts/alertmanager-checkout-blocking.json").read_text())


def body(i: int) -> bytes:
    doc = json.loads(json.dumps(TEMPLATE))
    doc["alerts"][0]["fingerprint"] = f"fault-{i:05d}"
    doc["alerts"][0]["labels"]["instance"] = f"sql-prod-01:{1000 + i}"  # one entity, a distinct alert each
    return json.dumps(doc).encode()


def worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "server.cli", "worker", "--scenario", str(DEMO), "--threads", "1"]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--alerts", type=int, default=300)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="opscopilot-fault-") as tmp:
        env = service_env(Path(tmp), OPSCOPILOT_SERVICE__CLAIM_TIMEOUT_S="5")
        holder = {"server": Server(env, workers=0)}
        workers = [worker(env), worker(env)]
        acked: set[int] = set()
        attempts = {"posts": 0, "refused_or_lost": 0}
        done = threading.Event()

        def send() -> None:
            pending = list(range(args.alerts))
            deadline = time.monotonic() + 300
            while pending and time.monotonic() < deadline:
                i = pending.pop(0)
                attempts["posts"] += 1
                try:
                    r = httpx.post(
                        f"{holder['server'].base}/api/v1/alerts/alertmanager",
                        content=body(i),
                        headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"},
                        timeout=5,
                    )
                    if r.status_code == 202:
                        acked.add(i)
                        time.sleep(0.01)
                        continue
                except httpx.HTTPError:
                    pass
                attempts["refused_or_lost"] += 1
                pending.append(i)  # retried later, as Alertmanager retries
                time.sleep(0.05)
            done.set()

        sender = threading.Thread(target=send)
        sender.start()
        while len(acked) < args.alerts // 3:
            time.sleep(0.05)
        workers[0].send_signal(signal.SIGKILL)
        print(f"kill -9 worker 1 after {len(acked)} acknowledged alerts", flush=True)
        while len(acked) < 2 * args.alerts // 3:
            time.sleep(0.05)
        holder["server"].stop(signal.SIGKILL)
        print(f"kill -9 the server after {len(acked)} acknowledged alerts", flush=True)
        time.sleep(1)
        token = holder["server"].token
        holder["server"] = Server(env, workers=0, first_start=False)
        holder["server"].token = token
        workers[0] = worker(env)
        done.wait(330)
        sender.join()
        from sqlalchemy import create_engine, text

        engine = create_engine(f"sqlite:///{tmp}/opscopilot.sqlite")
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            with engine.connect() as c:
                waiting = c.execute(
                    text("SELECT COUNT(*) FROM investigations WHERE status IN ('queued', 'investigating')")
                ).scalar()
            if not waiting:
                break
            time.sleep(1)
        with engine.connect() as c:
            stored = c.execute(text("SELECT COUNT(DISTINCT fingerprint) FROM alerts")).scalar()
            investigations = c.execute(text("SELECT COUNT(*) FROM investigations")).scalar()
            finished = c.execute(
                text("SELECT COUNT(*) FROM investigations WHERE finished_at IS NOT NULL")
            ).scalar()
            taken_over = c.execute(text("SELECT COUNT(*) FROM investigations WHERE runs > 1")).scalar()
            per_alert = c.execute(
                text(
                    "SELECT MAX(n) FROM (SELECT COUNT(DISTINCT investigation_id) AS n "
                    "FROM alerts GROUP BY fingerprint)"
                )
            ).scalar()
        for w in workers:
            w.terminate()
            w.wait(20)
        holder["server"].stop()
    print(
        f"alerts sent {args.alerts} ({attempts['posts']} posts, "
        f"{attempts['refused_or_lost']} refused or lost "
        f"while the server was down, retried); acknowledged {len(acked)}; stored {stored}; investigations "
        f"{investigations}, finished {finished} (taken over after a kill: {taken_over}); "
        f"investigations per alert "
        f"at most {per_alert}"
    )
    ok = len(acked) == stored == investigations == finished == args.alerts and per_alert == 1
    print("nothing lost, nothing investigated twice" if ok else "MISMATCH: see the counts above")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
