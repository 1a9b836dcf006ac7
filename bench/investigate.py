"""Benchmark: wall time per scenario investigation (p50/p95) for each model, and peak memory.

Run:  .venv/bin/python bench/investigate.py [--models none,local] [--reps 3] [PATH ...]
Targets on the 2-core reference machine: p50 <= 1 s with `none`, <= 15 s with `local` (child warm).
For `local` the cold start is reported apart: starting the model child (load + one-token smoke
generation) and the first investigation (embeddings, imports, prompt cache empty). The load
average is printed before and after: on a shared machine the figures move with it.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

from evals.loader import load_scenarios  # noqa: E402
from evals.runner import run_scenario  # noqa: E402
from server import runtime  # noqa: E402
from server.settings import load_settings  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "paths",
        nargs="*",
        type=Path,
        default=[ROOT / "evals" / "scenarios", ROOT.parent / "shared" / "scenarios" / "examples"],
    )
    parser.add_argument(
        "--models", default="none,local", help="comma-separated model specs (default none,local)"
    )
    parser.add_argument("--reps", type=int, default=3, help="runs per scenario for `none` (models run once)")
    args = parser.parse_args()

    settings = load_settings(None)
    scenarios = load_scenarios([p for p in args.paths if p.exists()])
    options = runtime.run_options(settings)
    factory = runtime.knowledge_factory(settings)
    print(f"{len(scenarios)} scenarios; machine: {os.cpu_count()} cores; load average {load()}")
    for spec in args.models.split(","):
        t0 = time.perf_counter()
        handle = runtime.open_model(settings, spec)
        if spec != "none" and not handle.available:
            print(f"[{spec}] unavailable: {handle.note}")
            continue
        child = getattr(handle.backend, "child", None)
        if child is not None:
            t_child = time.perf_counter()
            child.ensure()
            started = time.perf_counter() - t_child
            info = child.info
            print(
                f"[{spec}] cold: model child started in {started:.1f}s (model load "
                f"{info.get('load_s', 0):.2f}s, smoke generation {info.get('smoke_s', 0):.2f}s; "
                f"{info.get('engine', '')})"
            )
        first = run_scenario(scenarios[0], handle, options, factory)  # embeddings, imports, empty caches
        warm = time.perf_counter() - t0
        print(f"[{spec}] cold: first investigation {first.wall_s:.1f}s; open + first in all {warm:.1f}s")
        reps = args.reps if spec == "none" else 1
        walls: dict[str, list[float]] = {}
        passed = kept = dropped = 0
        for s in scenarios:
            for _ in range(reps):
                r = run_scenario(s, handle, options, factory)
                walls.setdefault(s.id, []).append(r.wall_s)
            passed += r.passed
            kept += r.explanation_sentences
            dropped += r.explanation_dropped
        every = [w for ws in walls.values() for w in ws]
        print(f"\n[{spec}] warm: {reps} run(s) per scenario, {passed}/{len(scenarios)} passed")
        print(f"{'scenario':<48} {'p50 s':>8} {'p95 s':>8}")
        for sid, ws in walls.items():
            print(f"{sid:<48} {percentile(ws, 0.5):8.3f} {percentile(ws, 0.95):8.3f}")
        print(f"{'ALL':<48} {percentile(every, 0.5):8.3f} {percentile(every, 0.95):8.3f}")
        print(
            f"[{spec}] warm p50 {percentile(every, 0.5):.3f} s, p95 {percentile(every, 0.95):.3f} s, "
            f"peak RSS {peak_rss_mb():.0f} MB (this process; the model child is separate)"
        )
        if spec != "none":
            print(f"[{spec}] explanation sentences kept {kept}, dropped {dropped}; load average {load()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
