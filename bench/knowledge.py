"""Knowledge retrieval benchmark: recall and MRR on a labelled set, then ingest rate, query latency,
disk and memory at scale.

    .venv/bin/python bench/knowledge.py                    # labelled set + 100,000 incidents
    .venv/bin/python bench/knowledge.py --scale 0          # the labelled set only (about a minute)
    .venv/bin/python bench/knowledge.py --scale 20000      # a smaller scale run

1. Labelled set: 312 past incidents (52 archetypes across SQL Server, PostgreSQL, MySQL, logs,
   metrics, network, ITSM and caches, each on six hosts: bench/knowledge_corpus.py) and 75 queries
   phrased as alerts and engineers phrase them (bench/knowledge_queries.yaml), each with its one
   correct incident. recall@1, recall@5 and MRR (over the top 5) for vector-only, lexical-only
   (BM25) and hybrid retrieval.
2. Scale: the labelled incidents plus N synthetic ones in a persistent store in a temporary
   folder: ingest rate (documents/s, embedding included), query p50/p95 over unique queries
   (query embedding included), the store's size on disk, the process's memory, and recall at scale.
Synthetic data is generated, never stored. The machine's load average is printed: it is shared.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

from bench.knowledge_corpus import Instance, labelled_incidents, synthetic_incidents  # noqa: E402
from tools.knowledge.retrieval import Mode, Query  # noqa: E402
from tools.knowledge.store import KnowledgeStore, knowledge_client  # noqa: E402

MODES: tuple[Mode, ...] = ("vector", "lexical", "hybrid")
K = 5


def load_queries(instances: list[Instance]) -> list[tuple[str, str, list[str]]]:
    """(query text, correct incident id, the other slots' filled texts for latency runs)."""
    by_slot = {(i.archetype, i.slot): i for i in instances}
    out = []
    for q in yaml.safe_load((ROOT / "bench" / "knowledge_queries.yaml").read_text(encoding="utf-8")):
        target = by_slot[(q["archetype"], q["slot"])]
        others = [
            q["q"].format(host=i.host, svc=i.svc)
            for (a, s), i in by_slot.items()
            if a == q["archetype"] and s != q["slot"]
        ]
        out.append((q["q"].format(host=target.host, svc=target.svc), target.doc.id, others))
    return out


def evaluate(store: KnowledgeStore, queries: list[tuple[str, str, list[str]]]) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    for mode in MODES:
        ranks = []
        misses = []
        for text, target, _ in queries:
            ids = [h.doc.id for h in store.retrieve(Query(text=text, k=K, mode=mode))]
            rank = ids.index(target) + 1 if target in ids else None
            ranks.append(rank)
            if rank != 1:
                misses.append((text, target, ids[:3]))
        n = len(ranks)
        results[mode] = {
            "recall@1": sum(r == 1 for r in ranks) / n,
            "recall@5": sum(r is not None for r in ranks) / n,
            "mrr": sum(1 / r for r in ranks if r) / n,
            "misses": misses,
        }
    return results


def print_quality(title: str, results: dict[str, dict[str, Any]], show_misses: bool) -> None:
    print(f"\n{title}")
    print(f"  {'mode':8} {'recall@1':>9} {'recall@5':>9} {'MRR':>6}")
    for mode, r in results.items():
        print(f"  {mode:8} {r['recall@1']:9.3f} {r['recall@5']:9.3f} {r['mrr']:6.3f}")
    if show_misses:
        for text, target, top in results["hybrid"]["misses"]:
            print(f"  hybrid not first: {text!r}: want {target}, got {top}")


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def rss_mb() -> float:
    with open("/proc/self/status", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_s() -> float:
    """CPU seconds this process used (user + system): with other work on a shared machine, the
    wall-clock rate understates what the code does; the CPU-second rate does not."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--scale", type=int, default=100_000, help="synthetic incidents for part 2; 0 skips it"
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="list the hybrid queries not ranked first"
    )
    args = parser.parse_args()
    print(f"machine: {load()}")

    instances = labelled_incidents()
    queries = load_queries(instances)
    docs = [i.doc for i in instances]
    with KnowledgeStore(knowledge_client(), "bench-labelled", owned=True) as store:
        report = store.ingest(docs)
        print(f"labelled set: {len(docs)} incidents, {len(queries)} queries ({report.summary()})")
        print_quality(
            "Retrieval quality on the labelled set (top 5):", evaluate(store, queries), args.verbose
        )

    if args.scale <= 0:
        return
    with tempfile.TemporaryDirectory(prefix="kb-bench-") as tmp:
        folder = Path(tmp)
        client = knowledge_client(type("Loc", (), {"chroma_path": folder / "chroma", "chroma_url": None})())
        store = KnowledgeStore(client, "bench-scale", lexical_dir=folder / "lexical")
        synthetic = synthetic_incidents(args.scale)
        print(f"\nScale: {args.scale} synthetic + {len(docs)} labelled incidents; {load()}")
        done = [0]
        started = time.perf_counter()

        def progress(n: int) -> None:
            done[0] += n
            if done[0] % 10_000 < n:
                rate = done[0] / (time.perf_counter() - started)
                print(f"  {done[0]:>7} ingested, {rate:.0f}/s, RSS {rss_mb():.0f} MB, {load()}", flush=True)

        cpu_before = cpu_s()
        report = store.ingest([*synthetic, *docs], progress=progress)
        cpu = cpu_s() - cpu_before
        total = len(synthetic) + len(docs)
        print(f"  ingest: {report.summary()}")
        print(
            f"  ingest rate: {total / report.seconds:.0f} incidents/s wall clock (embedding included); "
            f"{cpu:.0f} CPU-s used = {total / cpu:.0f} incidents per CPU-second "
            f"(~{2 * total / cpu:.0f}/s on 2 idle cores)"
        )
        again = store.ingest(docs)
        print(f"  re-ingest of the labelled set: {again.summary()}")
        texts = [t for _, _, others in queries for t in others]
        store.retrieve(Query(text="warm up the query path", k=K))
        timings = []
        cpu_timings = []
        for text in texts:  # unique texts: no embedding cache hits
            t0, c0 = time.perf_counter(), cpu_s()
            store.retrieve(Query(text=text, k=K))
            timings.append((time.perf_counter() - t0) * 1000)
            cpu_timings.append((cpu_s() - c0) * 1000)
        timings.sort()
        p95 = timings[int(0.95 * (len(timings) - 1))]
        print(
            f"  query latency over {len(timings)} unique queries (embedding included): "
            f"p50 {statistics.median(timings):.1f} ms, p95 {p95:.1f} ms, max {timings[-1]:.1f} ms"
        )
        cpu_timings.sort()
        print(
            f"  query CPU time: p50 {statistics.median(cpu_timings):.1f} ms, "
            f"p95 {cpu_timings[int(0.95 * (len(cpu_timings) - 1))]:.1f} ms"
        )
        print(
            f"  store on disk: {du(folder / 'chroma') / 2**20:.0f} MB Chroma + "
            f"{du(folder / 'lexical') / 2**20:.0f} MB BM25 index"
        )
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"  process memory: RSS {rss_mb():.0f} MB now, peak {peak:.0f} MB (embedding model included)")
        print_quality(
            f"Retrieval quality with {total} incidents in the store:", evaluate(store, queries), False
        )
        print(f"machine after: {load()}")


if __name__ == "__main__":
    main()
