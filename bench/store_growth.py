"""Benchmark: bytes the store and the checkpoints grow per investigation, for an ordinary question
and for one alert with a 5 MB body (the body is stored once in the store; the graph state carries
the alert without its raw body and with long texts cut, so checkpoints stay small).

Run:  .venv/bin/python bench/store_growth.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.service_common import DEMO, ROOT
from server.app import build_context
from server.investigations import NewInvestigation
from server.settings import ServiceConfig, Settings


def size(path: Path) -> int:
    """The database's bytes after folding its WAL in (what stays on disk)."""
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def big_alert(mb: float) -> bytes:
    body = json.loads((ROOT / "examples/alerts/alertmanager-checkout-blocking.json").read_text())
    body["alerts"][0]["annotations"]["description"] = "x" * int(mb * 1024 * 1024)
    body["alerts"][0]["fingerprint"] = "big-body"
    return json.dumps(body).encode()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="opscopilot-growth-") as tmp:
        settings = Settings(data_dir=Path(tmp), model_spec="none", service=ServiceConfig(workers=0))
        ctx = build_context(settings, scenario=DEMO)
        store, checkpoints = Path(tmp) / "opscopilot.sqlite", Path(tmp) / "checkpoints.sqlite"
        svc = ctx.service
        svc.run(
            svc.create(NewInvestigation(question="warm up", requester="bench", source_ref=ctx.source_ref))
        )
        s0, c0 = size(store), size(checkpoints)
        for i in range(args.runs):
            q = f"Why is checkout timing out on sql-prod-01? ({i})"
            svc.run(
                svc.create(
                    NewInvestigation(question=q, requester="bench", source_ref=ctx.source_ref, now=ctx.clock)
                )
            )
        s1, c1 = size(store), size(checkpoints)
        print(
            f"question: +{(s1 - s0) / args.runs / 1024:.0f} KiB store, "
            f"+{(c1 - c0) / args.runs / 1024:.0f} KiB "
            f"checkpoints per investigation ({args.runs} runs)"
        )
        raw = big_alert(5)
        result = ctx.intake.accept("alertmanager", raw, "bench")
        svc.run(result.investigations_started[0])
        s2, c2 = size(store), size(checkpoints)
        print(
            f"alert with a {len(raw) / 1e6:.1f} MB body: +{(s2 - s1) / 1e6:.2f} MB store (the body, once), "
            f"+{(c2 - c1) / 1024:.0f} KiB checkpoints"
        )
        svc.close()
        ctx.store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
