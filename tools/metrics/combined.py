"""One MetricSource over several backends (InfluxDB, Prometheus, ...): merged answers, isolated failures."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from tools.isolation import gather
from tools.sources import Checkable, MetricSource, SourceCheck, SourceError
from tools.world import Series

log = logging.getLogger(__name__)


def backend_name(source: MetricSource) -> str:
    return str(getattr(source, "name", type(source).__name__))


class CombinedMetrics:
    """Catalogs and series of every backend, merged (the first backend wins a duplicate series).

    A backend that fails is left out of the answer: its error is kept in `errors` (by backend
    name, until it answers again) and noted for the current run (`tools.isolation`), so the gap is
    visible in the report. Only when every backend fails does the call raise SourceError.
    """

    def __init__(self, backends: Sequence[MetricSource]) -> None:
        if not backends:
            raise ValueError("CombinedMetrics needs at least one backend")
        names = [backend_name(b) for b in backends]
        if len(set(names)) != len(names):
            raise ValueError(f"metric backends need distinct names, got {names}")
        self._backends = list(backends)
        self.errors: dict[str, str] = {}

    def _each(self, what: str, call: Callable[[MetricSource], list[Series]]) -> list[Series]:
        found = gather(
            [(backend_name(b), functools.partial(call, b)) for b in self._backends],
            f"metrics {what}",
            catch=(SourceError,),
            note_for=lambda name, reason: f"metrics from {name}: {reason}",
        )
        for name in [n for n, _ in found.answers]:
            self.errors.pop(name, None)
        self.errors.update(found.failures)
        if found.all_failed:
            raise SourceError(
                "every metric backend failed: " + " | ".join(f"{n}: {r}" for n, r in found.failures.items())
            )
        merged: dict[str, Series] = {}
        for series in found.values:
            for s in series:
                merged.setdefault(s.label, s)
        return list(merged.values())

    def catalog(self) -> list[Series]:
        return self._each("catalog", lambda b: b.catalog())

    def series(
        self, *, match: dict[str, str] | None, start: datetime, end: datetime, measurement: str | None = None
    ) -> list[Series]:
        return self._each(
            "series", lambda b: b.series(match=match, start=start, end=end, measurement=measurement)
        )

    def doctor(self) -> list[SourceCheck]:
        checks: list[SourceCheck] = []
        for backend in self._backends:
            if isinstance(backend, Checkable):
                checks += backend.doctor()
        return checks
