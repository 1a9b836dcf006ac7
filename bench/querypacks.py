"""Benchmark: what one database investigation costs each engine's query pack.

Runs the database specialist's four view tools (sessions/blocking, waits, top queries, files)
against real servers: PostgreSQL and MariaDB on this machine, and SQL Server's pack through
Microsoft's ODBC Driver 18 against the TDS test server (tests/live/tds). Prints, per engine, the
pack time per investigation (p50/p95), queries and connections per investigation, and the
slowest single query. Targets: <= 12 queries, <= 2 connections, each query <= 3 s.

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
from tools.sql.views import DATABASE_TOOLS  # noqa: E402

RO_PASSWORD = os.environ.get("TEST_RO_LOGIN_PASSWORD", "opscopilot-ro-dev")


@contextmanager
def local_engines() -> Iterator[list[SqlInstanceConfig]]:
    common: dict[str, Any] = {
        "host": "127.0.0.1",
        "username": "opscopilot_ro",
        "password": SecretStr(RO_PASSWORD),
    }
    yield [
        SqlInstanceConfig(
            name="postgresql",
            engine="postgresql",
            driver="PostgreSQL Unicode",
            port=5432,
            database="test",
            **common,
        ),
        SqlInstanceConfig(name="mariadb", engine="mysql", driver="MariaDB Unicode", port=3306, **common),
    ]


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
                name="mssql (TDS test server)",
                engine="mssql",
                driver=str(driver),
                host=bridge.host,
                port=bridge.port,
                database="Sales",
                username=bridge.user,
                password=SecretStr(bridge.password),
                odbc_options={"Encrypt": "yes", "TrustServerCertificate": "yes"},
            )
        ]
    finally:
        bridge.stop()


def bench(cfg: SqlInstanceConfig, runs: int) -> None:
    now = datetime.now(UTC)
    with OdbcSql([cfg]) as sql:
        ctx = ToolContext(
            sources=Sources(sql=sql),
            now=now,
            start=now - timedelta(hours=6),
            end=now,
            history_start=now - timedelta(days=7),
        )
        totals, slowest, queries, connections, errors = [], 0.0, [], [], []
        for i in range(runs):
            before = sql.stats(cfg.name).snapshot()
            per_tool = []
            for tool in DATABASE_TOOLS:
                started = time.perf_counter()
                result = tool(ctx, cfg.name)
                per_tool.append(time.perf_counter() - started)
                errors += [e.error for e in result.evidence if e.error]
            after = sql.stats(cfg.name)
            totals.append(sum(per_tool))
            slowest = max(slowest, *per_tool)
            queries.append(after.queries - before.queries)
            connections.append(
                after.connections_opened - before.connections_opened if i else after.connections_opened
            )
        first_connections = sql.stats(cfg.name).connections_opened
    q = max(queries)
    verdict = "ok" if q <= 12 and first_connections <= 2 and slowest <= 3 else "OVER TARGET"
    print(
        f"{cfg.name:<26} p50 {statistics.median(totals) * 1000:7.1f} ms  "
        f"p95 {sorted(totals)[int(0.95 * (len(totals) - 1))] * 1000:7.1f} ms  "
        f"queries/investigation {q:2d}  connections {first_connections}  "
        f"slowest query {slowest * 1000:6.1f} ms  [{verdict}]"
    )
    if errors:
        print(f"  errors: {sorted(set(errors))[:3]}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=20, help="investigations per engine (default 20)")
    args = parser.parse_args()
    print(
        f"{args.runs} investigations per engine (4 view tools each); targets: <= 12 queries, <= 2 connections"
    )
    with local_engines() as configs, tds_engine() as mssql:
        for cfg in [*configs, *mssql]:
            try:
                bench(cfg, args.runs)
            except Exception as exc:  # one engine down must not hide the others
                print(f"{cfg.name:<26} failed: {exc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
