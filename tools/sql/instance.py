"""One configured SQL instance's state in the live backend: its pack, breaker, pool, counters, the query
alternatives that worked, and the previous samples of cumulative datasets."""

from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass, field
from typing import Any

import pyodbc

from tools.estate import SqlInstanceConfig
from tools.resilience import BoundedPool, CircuitBreaker
from tools.sql.packs.base import QueryPack
from tools.world import Engine


@dataclass
class SqlStats:
    """What one instance cost: for the benchmark and for `opscopilot doctor`."""

    queries: int = 0  # pack queries (and run_query calls) sent
    setup_statements: int = 0  # session setup statements sent on new connections
    connections_opened: int = 0
    failures: int = 0
    seconds: float = 0.0  # wall time of calls, connecting included
    slowest_s: float = 0.0  # the slowest single call
    slowest: str = ""  # its dataset

    def snapshot(self) -> SqlStats:
        return SqlStats(**self.__dict__)


@dataclass
class OdbcInstance:
    """One configured instance: its pack, breaker, pool, counters, and which query alternatives worked."""

    cfg: SqlInstanceConfig
    pack: QueryPack
    breaker: CircuitBreaker
    pool: BoundedPool[pyodbc.Connection]
    connection_string: str  # with PWD: never logged
    target: str
    stats: SqlStats = field(default_factory=SqlStats)
    choice: dict[str, int] = field(default_factory=dict)  # dataset -> index of the alternative that worked
    notes: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # the previous sample of cumulative datasets (waits, server): (time.monotonic(), rows)
    kept: dict[str, tuple[float, list[Any]]] = field(default_factory=dict)


def default_pack(engine: Engine) -> QueryPack:
    """tools.sql.packs.<engine>.PACK (mssql, postgresql, mysql)."""
    try:
        module = importlib.import_module(f"tools.sql.packs.{engine}")
    except ImportError as exc:
        raise ValueError(f"no query pack for engine {engine!r} (tools/sql/packs/{engine}.py)") from exc
    pack: QueryPack = module.PACK
    return pack
