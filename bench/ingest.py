"""Benchmark: alert webhook ingest on loopback. Alertmanager bodies (bearer webhook secret), 10 % of
alerts repeat an earlier fingerprint; every 202 means the body and its alerts are stored.

Reports alerts/s durably accepted and p50/p99 acknowledgement time, then checks the store holds
what was acknowledged. Target (2-core machine, embedded SQLite store): >= 2,000 alerts/s and
p99 <= 50 ms. `serve` runs with no in-process workers here (ingest only; the queue fills).

Run:  .venv/bin/python bench/ingest.py [--requests 3000] [--group 1] [--concurrency 16]
      .venv/bin/python bench/ingest.py --postgres postgresql://postgres@127.0.0.1:5432/DB --redis redis://127.0.0.1:6379/0
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.service_common import WEBHOOK_TOKEN, Server, percentile, service_env

TEMPLATE = json.loads(
    (
        Path(__file__).resolve().parent.parent / "examples/alerts/alertmanager-checkout-blocking.json"
    ).read_text()
)


def body(alerts: list[tuple[str, str]]) -> bytes:
    doc = dict(TEMPLATE)
    items = []
    for fingerprint, instance in alerts:
        a = json.loads(json.dumps(TEMPLATE["alerts"][0]))
        a["fingerprint"] = fingerprint
        a["labels"]["instance"] = instance
        items.append(a)
    doc["alerts"] = items
    return json.dumps(doc).encode()


async def run(base: str, bodies: list[tuple[bytes, int]], concurrency: int) -> tuple[list[float], int, float]:
    latencies: list[float] = []
    accepted = 0
    queue: asyncio.Queue[tuple[bytes, int]] = asyncio.Queue()
    for b in bodies:
        queue.put_nowait(b)
    headers = {"Authorization": f"Bearer {WEBHOOK_TOKEN}", "Content-Type": "application/json"}
    url = f"{base}/api/v1/alerts/alertmanager"

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal accepted
        while not queue.empty():
            data, n = queue.get_nowait()
            t0 = time.perf_counter()
            async with session.post(url, data=data, headers=headers) as resp:
                await resp.read()
                if resp.status == 202:
                    accepted += n
            latencies.append(time.perf_counter() - t0)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        c0 = time.process_time()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        wall = time.perf_counter() - started
        print(f"client CPU {(time.process_time() - c0) * 1000 / max(len(latencies), 1):.3f} ms/request")
    return latencies, accepted, wall


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--group", type=int, default=1, help="alerts per webhook body (distinct instances)")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--postgres", help="store (and checkpoints) on this PostgreSQL database")
    ap.add_argument("--redis", help="queue on this Redis")
    args = ap.parse_args()
    rng = random.Random(7)
    extra: dict[str, str] = {}
    if args.postgres:
        extra |= {"OPSCOPILOT_SERVICE__STORE_URL": args.postgres, "OPSCOPILOT_CHECKPOINT_URL": args.postgres}
    if args.redis:
        extra |= {
            "OPSCOPILOT_SERVICE__REDIS_URL": args.redis,
            "OPSCOPILOT_SERVICE__REDIS_STREAM": f"bench:{rng.getrandbits(32):08x}",
        }
    with tempfile.TemporaryDirectory(prefix="opscopilot-ingest-") as tmp:
        server = Server(service_env(Path(tmp), **extra), workers=0)
        try:
            seen: list[str] = []
            bodies: list[tuple[bytes, int]] = []
            for i in range(args.requests):
                alerts = []
                for j in range(args.group):
                    if seen and rng.random() < 0.10:
                        fp = rng.choice(seen)  # a repeat: deduplicated, joins its investigation
                    else:
                        fp = f"fp-{i:06d}-{j:02d}"
                        seen.append(fp)
                    alerts.append((fp, f"host-{j:02d}:9100"))
                bodies.append((body(alerts), len(alerts)))
            asyncio.run(run(server.base, bodies[:200], args.concurrency))  # warm-up (not counted)
            cpu0 = server.cpu_s()
            latencies, accepted, wall = asyncio.run(run(server.base, bodies[200:], args.concurrency))
            cpu = server.cpu_s() - cpu0
            sent = sum(n for _, n in bodies[200:])
            rate = accepted / wall
            print(
                f"store: {'postgresql' if args.postgres else 'sqlite'}, "
                f"queue: {'redis' if args.redis else 'store'}; "
                f"{len(latencies)} requests x {args.group} alert(s), concurrency {args.concurrency}"
            )
            print(
                f"accepted {accepted}/{sent} alerts in {wall:.2f} s: {rate:,.0f} alerts/s; ack p50 "
                f"{percentile(latencies, 0.5) * 1000:.1f} ms, p99 {percentile(latencies, 0.99) * 1000:.1f} ms"
            )
            load = os.getloadavg()[0]
            print(
                f"server CPU {cpu * 1000 / max(accepted, 1):.2f} ms per alert "
                f"({1 / max(cpu / max(accepted, 1), 1e-9):,.0f} alerts per CPU-second of the server); "
                f"machine load average {load:.1f} on {os.cpu_count()} cores"
            )
            headers = {"Authorization": f"Bearer {server.token}"}
            import httpx

            metrics = httpx.get(f"{server.base}/metrics", headers=headers).text
            received = sum(
                float(line.split()[-1])
                for line in metrics.splitlines()
                if line.startswith("opscopilot_alerts_received_total")
            )
            print(
                f"server counted {received:.0f} alerts received; target >= 2,000 alerts/s and p99 <= 50 ms: "
                f"{'met' if rate >= 2000 and percentile(latencies, 0.99) <= 0.05 else 'NOT met'}"
            )
        finally:
            server.stop()
            if args.redis:  # the bench's own stream key
                import redis

                redis.Redis.from_url(args.redis).delete(extra["OPSCOPILOT_SERVICE__REDIS_STREAM"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
