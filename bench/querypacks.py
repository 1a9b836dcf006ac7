"""Benchmark: what one database investigation costs each engine's query pack.

Runs every view tool of the database specialist (blocking, waits, top queries, files, long-running
statements, connections, deadlocks, log reuse, replicas, memory grants, version store, wraparound) in
one investigation after another against real servers: PostgreSQL and MariaDB on this machine, and
SQL Server's pack through Microsoft's ODBC Driver 18 against the TDS test server (tests/live/tds).
Prints, per engine, the time per investigation (p50/p95, and the part spent in queries), queries and
connections per investigation, and the slowest single query. Targets: <= 12 queries, <= 2
connections, each query <= 3 s.

Run:  .venv/bin/python bench/querypacks.py [--runs 20]   (after scripts/services)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import SecretStr

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools.estate import SqlInstanceConfig  # noqa: E402
from tools.sources import Sources, ToolContext  # noqa: E402
from tools.sql.live import OdbcSql  # noqa: E402
from tools.sql.views import DATABASE_TOOLS, NEEDS  # noqa: E402

RO_PASSWORD = os.environ.get("TEST_RO_LOGIN_PASSWORD", "opscopilot-ro-dev")


@contextmanager
def local_engines() -> Iterator[list[SqlInstanceConfig]]:
    common: dict[str, Any] = {
        "host": "127.0.0.1",
        "username": "opscopilot_ro",
        "password": SecretStr(RO_PASSWORD),
    }
    yield [
        SqlInstanceConfig(name="postgresql", engine="postgresql", driver="PostgreSQL Unicode", port=5432,
                          database="test", **common),
        SqlInstanceConfig(name="mariadb", engine="mysql", driver="MariaDB Unicode", port=3306, **common),
    ]  # fmt: skip


@contextmanager
def tds_engine() -> Iterator[list[SqlInstanceConfig]]:
    try:
        from tests.live.tds.bridge import start_dmv_bridge
        from tests.live.tds.driver import find_odbc_driver_18
    except ImportError as exc:
        print(f"mssql: skipped ({exc})")
        yield []
        return
    driver, why = find_odbc_driver_18()
    if driver is None:
        print(f"mssql: skipped ({why})")
        yield []
        return
    bridge = start_dmv_bridge()
    try:
        yield [
            SqlInstanceConfig(
                name="mssql (TDS test server)", engine="mssql", driver=str(driver), host=bridge.host,
                port=bridge.port, database="Sales", username=bridge.user, password=SecretStr(bridge.password),
                odbc_options={"Encrypt": "yes", "TrustServerCertificate": "yes"},
            )
        ]  # fmt: skip
    finally:
        bridge.stop()


def bench(cfg: SqlInstanceConfig, runs: int, wait_sample_s: float) -> None:
    """`runs` investigations, each a fresh ToolContext running every database tool the playbook plans."""
    with OdbcSql([cfg], wait_sample_s=wait_sample_s) as sql:
        totals, query_s, queries, connections, errors = [], [], [], [], []
        for _ in range(runs):
            now = datetime.now(UTC)
            ctx = ToolContext(
                sources=Sources(sql=sql), now=now, start=now - timedelta(hours=6), end=now,
                history_start=now - timedelta(days=7),
            )  # fmt: skip
            before = sql.stats(cfg.name).snapshot()
            started = time.perf_counter()
            for tool in DATABASE_TOOLS:
                if set(NEEDS[tool.spec.name]) <= sql.datasets(cfg.name):
                    result = tool(ctx, cfg.name)
                    errors += [e.error for e in result.evidence if e.error]
            totals.append(time.perf_counter() - started)
            after = sql.stats(cfg.name)
            queries.append(after.queries - before.queries)
            query_s.append(after.seconds - before.seconds)
            connections.append(after.connections_opened)
        stats = sql.stats(cfg.name)
    q = max(queries)
    verdict = "ok" if q <= 12 and stats.connections_opened <= 2 and stats.slowest_s <= 3 else "OVER TARGET"
    print(
        f"{cfg.name:<24} p50 {statistics.median(totals) * 1000:6.0f} ms  "
        f"p95 {sorted(totals)[int(0.95 * (len(totals) - 1))] * 1000:6.0f} ms  "
        f"(in queries: p50 {statistics.median(query_s) * 1000:5.1f} ms)  "
        f"queries/investigation first {queries[0]:2d}, then {statistics.median(queries[1:] or queries):.0f}  "
        f"connections {stats.connections_opened}  "
        f"slowest query {stats.slowest_s * 1000:6.1f} ms ({stats.slowest})  [{verdict}]"
    )
    if errors:
        print(f"  errors: {sorted(set(errors))[:3]}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=20, help="investigations per engine (default 20)")
    parser.add_argument(
        "--wait-sample-s", type=float, default=2.0,
        help="gap between two wait samples (default 2 s, as live); later investigations reuse the last",
    )  # fmt: skip
    args = parser.parse_args()
    print(
        f"{args.runs} investigations per engine ({len(DATABASE_TOOLS)} view tools each, those the pack can "
        "answer); targets: <= 12 queries, <= 2 connections, each query <= 3 s. Wall time includes the pause "
        "between two wait samples when the previous sample is younger than --wait-sample-s."
    )
    with local_engines() as configs, tds_engine() as mssql:
        for cfg in [*configs, *mssql]:
            try:
                bench(cfg, args.runs, args.wait_sample_s)
            except Exception as exc:  # one engine down must not hide the others
                print(f"{cfg.name:<26} failed: {exc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
