"""A query pack: the vetted, read-only SQL an engine runs to produce the analyzers' datasets."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Dataset = Literal["sessions", "waits", "top_queries", "files"]
DATASETS: tuple[Dataset, ...] = ("sessions", "waits", "top_queries", "files")


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


@dataclass(frozen=True)
class QueryPack:
    engine: str
    queries: Sequence[PackQuery]
    session_setup: Sequence[str] = ()  # run once per new connection, e.g. SET statement_timeout
    probe: str = "SELECT 1"

    def for_dataset(self, dataset: Dataset) -> list[PackQuery]:
        return [q for q in self.queries if q.dataset == dataset]
