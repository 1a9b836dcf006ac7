"""Benchmark: log templates from the hand-rolled masker (tools.logs.analysis.message_template) against
Drain3 (PyPI `drain3`, default settings), on every log line of the scenario worlds.

Per entity, both group the lines into templates. Printed per method:
- templates: how many groups (fewer = more compression) and distinct messages for scale;
- bad merges: groups mixing lines with different recognised error codes, or error-or-worse lines with
  info lines (a merge that would hide an error among routine messages);
- unstable: entities whose grouping changes when the same lines arrive in another order (Drain3 is a
  streaming miner; the masker is order-free);
- time per 1,000 lines.

Run:  .venv/bin/python bench/templates.py [folders...]    (default: evals/scenarios evals/holdout
      ../shared/scenarios/examples ../shared/external/opensre-rds-postgres). Needs `pip install drain3`.
"""

from __future__ import annotations

import random
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from evals.loader import load_scenarios  # noqa: E402
from tools.logs.analysis import LEVEL_RANK, known_codes, message_template  # noqa: E402
from tools.world import LogRecord  # noqa: E402

Grouper = Callable[[list[LogRecord]], list[int]]


def hand(records: list[LogRecord]) -> list[int]:
    ids: dict[str, int] = {}
    return [
        ids.setdefault(message_template(r.message, [c.code for c in known_codes(r)]), len(ids))
        for r in records
    ]


def drain(records: list[LogRecord]) -> list[int]:
    from drain3 import TemplateMiner
    from drain3.template_miner_config import TemplateMinerConfig

    cfg = TemplateMinerConfig()
    cfg.profiling_enabled = False
    miner = TemplateMiner(config=cfg)
    clusters = [miner.add_log_message(r.message)["cluster_id"] for r in records]
    return clusters


def partition(records: list[LogRecord], labels: list[int]) -> frozenset[frozenset[str]]:
    groups: dict[int, set[str]] = defaultdict(set)
    for r, g in zip(records, labels, strict=True):
        groups[g].add(r.message)
    return frozenset(frozenset(v) for v in groups.values())


def score(name: str, grouper: Grouper, by_entity: dict[str, list[LogRecord]]) -> None:
    templates = bad = unstable = lines = 0
    started = time.perf_counter()
    for records in by_entity.values():
        labels = grouper(records)
        lines += len(records)
        groups: dict[int, list[LogRecord]] = defaultdict(list)
        for r, g in zip(records, labels, strict=True):
            groups[g].append(r)
        templates += len(groups)
        for members in groups.values():
            codes = {tuple(sorted(c.label for c in known_codes(r))) for r in members}
            errors = {LEVEL_RANK[r.severity] >= LEVEL_RANK["error"] for r in members}
            bad += len(codes) > 1 or len(errors) > 1
        shuffled = records[:]
        random.Random(7).shuffle(shuffled)
        if partition(records, labels) != partition(shuffled, grouper(shuffled)):
            unstable += 1
    elapsed = time.perf_counter() - started
    distinct = sum(len({r.message for r in rs}) for rs in by_entity.values())
    print(
        f"{name:6} templates {templates:5} (distinct messages {distinct}), bad merges {bad:3}, "
        f"unstable entities {unstable:3} of {len(by_entity)}, "
        f"{1e6 * elapsed / max(lines, 1) / 2:.1f} ms per 1,000 lines"
    )


def main(argv: list[str]) -> None:
    folders = [Path(a) for a in argv] or [
        ROOT / "evals/scenarios",
        ROOT / "evals/holdout",
        ROOT / "../shared/scenarios/examples",
        ROOT / "../shared/external/opensre-rds-postgres",
    ]
    by_entity: dict[str, list[LogRecord]] = defaultdict(list)
    for sc in load_scenarios([f for f in folders if f.exists()]):
        for r in sorted(sc.world.logs, key=lambda r: r.timestamp):
            by_entity[f"{sc.id}/{r.entity}"].append(r)
    print(f"{sum(len(v) for v in by_entity.values())} log lines, {len(by_entity)} entity logs")
    score("hand", hand, by_entity)
    score("drain3", drain, by_entity)


if __name__ == "__main__":
    main(sys.argv[1:])
