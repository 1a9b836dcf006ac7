"""Benchmark: alert webhook ingest on loopback. Alertmanager bodies (bearer webhook secret), 10 % of
alerts repeat an earlier fingerprint; every 202 means the body and its alerts are stored.

Reports alerts/s durably accepted and p50/p99 acknowledgement time, the CPU the server and this
client spent per alert (both share the machine's 2 cores), then checks that the server counted
what it acknowledged. Target (2-core machine, embedded SQLite store): >= 2,000 alerts/s and
p99 <= 50 ms. `serve` runs with no in-process workers here (ingest only; the queue fills).

The client is a few lines of asyncio over keep-alive connections (requests built beforehand, the
answer's status line and Content-Length read), so that it takes as little of the CPU as it can.
Bounded: --requests posts at most, and at most --seconds of sending.

Run:  .venv/bin/python bench/ingest.py [--requests 6000] [--group 1] [--concurrency 16]
      .venv/bin/python bench/ingest.py --postgres postgresql://postgres@127.0.0.1:5432/ingest_bench \\
          --redis redis://127.0.0.1:6379/0
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.service_common import WEBHOOK_TOKEN, Server, percentile, service_env

TEMPLATE = json.loads(
    (
        Path(__file__).resolve().parent.parent / "examples/alerts/alertmanager-checkout-blocking.json"
    ).read_text()
)
PATH = "/api/v1/alerts/alertmanager"


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


def request(port: int, data: bytes) -> bytes:
    """One complete HTTP/1.1 keep-alive POST of `data`."""
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {WEBHOOK_TOKEN}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


async def post_all(
    port: int, requests: list[tuple[bytes, int]], concurrency: int, seconds: float
) -> tuple[list[float], int, int, float, float]:
    """Send every request over `concurrency` connections; (latencies, alerts accepted, requests
    answered, wall seconds, client CPU seconds)."""
    latencies: list[float] = []
    accepted = answered = 0
    todo = iter(requests)
    deadline = time.perf_counter() + seconds

    async def connection() -> None:
        nonlocal accepted, answered
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for raw, n in todo:
                if time.perf_counter() > deadline:
                    return
                t0 = time.perf_counter()
                writer.write(raw)
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - t0)
                answered += 1
                if head[9:12] == b"202":
                    accepted += n
        finally:
            writer.close()

    cpu0, started = time.process_time(), time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return latencies, accepted, answered, time.perf_counter() - started, time.process_time() - cpu0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=6000)
    ap.add_argument("--seconds", type=float, default=60.0, help="stop sending after this long")
    ap.add_argument("--group", type=int, default=1, help="alerts per webhook body (distinct instances)")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--postgres", help="store (and checkpoints) on this PostgreSQL database")
    ap.add_argument("--redis", help="queue on this Redis (a stream ingest:bench:<random>, deleted after)")
    args = ap.parse_args()
    rng = random.Random(7)
    run = f"{random.getrandbits(32):08x}"  # this run's schema, stream and fingerprints
    extra: dict[str, str] = {}
    with contextlib.ExitStack() as cleanup:
        if args.postgres:
            url = cleanup.enter_context(private_schema(args.postgres, f"ingest_run_{run}"))
            extra |= {"OPSCOPILOT_SERVICE__STORE_URL": url, "OPSCOPILOT_CHECKPOINT_URL": url}
        if args.redis:
            stream = f"ingest:bench:{run}"
            cleanup.callback(lambda: redis.Redis.from_url(args.redis).delete(stream))
            extra |= {"OPSCOPILOT_SERVICE__REDIS_URL": args.redis, "OPSCOPILOT_SERVICE__REDIS_STREAM": stream}
        tmp = cleanup.enter_context(tempfile.TemporaryDirectory(prefix="opscopilot-ingest-"))
        server = Server(service_env(Path(tmp), **extra), workers=0)
        cleanup.callback(server.stop)
        seen: list[str] = []
        bodies: list[tuple[bytes, int]] = []
        for i in range(args.requests):
            alerts = []
            for j in range(args.group):
                if seen and rng.random() < 0.10:
                    fp = rng.choice(seen)  # a repeat: deduplicated, joins its investigation
                else:
                    fp = f"fp-{run}-{i:06d}-{j:02d}"
                    seen.append(fp)
                alerts.append((fp, f"host-{j:02d}:9100"))
            bodies.append((request(server.port, body(alerts)), len(alerts)))
        warm, measured = bodies[:200], bodies[200:]
        asyncio.run(post_all(server.port, warm, args.concurrency, args.seconds))  # not counted
        cpu0 = server.cpu_s()
        latencies, accepted, answered, wall, client_cpu = asyncio.run(
            post_all(server.port, measured, args.concurrency, args.seconds)
        )
        cpu = server.cpu_s() - cpu0
        sent = sum(n for _, n in measured[:answered])
        rate = accepted / wall
        p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
        print(
            f"store: {'postgresql' if args.postgres else 'sqlite'}, "
            f"queue: {'redis' if args.redis else 'store'}; "
            f"{answered} requests x {args.group} alert(s), concurrency {args.concurrency}"
        )
        print(
            f"accepted {accepted}/{sent} alerts in {wall:.2f} s: {rate:,.0f} alerts/s; ack p50 "
            f"{p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms"
        )
        per_alert = cpu / max(accepted, 1)
        print(
            f"server CPU {per_alert * 1000:.3f} ms per alert ({1 / max(per_alert, 1e-9):,.0f} alerts per "
            f"CPU-second); client CPU {client_cpu * 1000 / max(answered, 1):.3f} ms per request "
            f"({client_cpu / max(client_cpu + cpu, 1e-9):.0%} of the CPU both used); "
            f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
        )
        received = server.counted("opscopilot_alerts_received_total")
        warm_alerts = sum(n for _, n in warm)
        print(
            f"server counted {received - warm_alerts:.0f} alerts received (after the warm-up); "
            f"target >= 2,000 alerts/s and p99 <= 50 ms: "
            f"{'met' if rate >= 2000 and p99 <= 0.05 else 'NOT met'}"
        )
    return 0


@contextlib.contextmanager
def private_schema(url: str, schema: str) -> Iterator[str]:
    """A new schema in the database at `url` for one run, dropped after it: the store's URL with
    its search_path set there (so a reused bench database starts empty every time)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


if __name__ == "__main__":
    raise SystemExit(main())
