"""A query pack: the vetted, read-only SQL an engine runs to produce the analyzers' datasets."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

Dataset = Literal["sessions", "waits", "top_queries", "files", "server", "log_reuse", "replicas", "deadlocks"]
DATASETS: tuple[Dataset, ...] = get_args(Dataset)


@dataclass(frozen=True)
class PackQuery:
    """One vetted statement. `to_rows` maps the cursor's rows (as dicts, lower-case column
    names) into SPEC v1 dataset rows (tools.world models' fields)."""

    dataset: Dataset
    sql: str
    to_rows: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] = field(default=lambda rows: rows)
    requires: str = (
        ""  # the privilege/feature it needs, for doctor ("pg_stat_statements", "VIEW SERVER STATE")
    )
    optional: bool = False  # missing feature -> empty dataset with a note, not an error
    # a better but costlier alternative (e.g. with the Query Store baseline): ANY failure, a timeout
    # included, falls back to the next one and does not count against the instance's circuit breaker
    variant: bool = False


@dataclass(frozen=True)
class QueryPack:
    engine: str
    queries: Sequence[PackQuery]
    session_setup: Sequence[str] = ()  # run once per new connection, e.g. SET statement_timeout
    probe: str = "SELECT 1"
    # waits are cumulative since start (SQL Server, MySQL): the live backend subtracts an earlier sample
    cumulative_waits: bool = True

    def for_dataset(self, dataset: Dataset) -> list[PackQuery]:
        return [q for q in self.queries if q.dataset == dataset]
