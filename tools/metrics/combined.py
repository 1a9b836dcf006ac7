"""One MetricSource over several backends (InfluxDB, Prometheus, ...): merged answers, isolated failures."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from tools.sources import Checkable, MetricSource, SourceCheck, SourceError
from tools.world import Series

log = logging.getLogger(__name__)


def backend_name(source: MetricSource) -> str:
    return str(getattr(source, "name", type(source).__name__))


class CombinedMetrics:
    """Catalogs and series of every backend, merged (the first backend wins a duplicate series).

    A backend that fails is left out of the answer: its error is kept in `errors` (by backend
    name, until it answers again) and, when a `notes` list is given (e.g. `Sources.notes`), noted
    there, so the gap is visible. Only when every backend fails does the call raise SourceError.
    """

    def __init__(self, backends: Sequence[MetricSource], notes: list[str] | None = None) -> None:
        if not backends:
            raise ValueError("CombinedMetrics needs at least one backend")
        names = [backend_name(b) for b in backends]
        if len(set(names)) != len(names):
            raise ValueError(f"metric backends need distinct names, got {names}")
        self._backends = list(backends)
        self._notes = notes
        self.errors: dict[str, str] = {}

    def _each(self, what: str, call: Callable[[MetricSource], list[Series]]) -> list[Series]:
        merged: dict[str, Series] = {}
        failures: list[str] = []
        answered = 0
        for backend in self._backends:
            name = backend_name(backend)
            try:
                found = call(backend)
            except SourceError as exc:
                log.warning("metrics %s: %s failed: %s", name, what, exc)
                self.errors[name] = str(exc)
                failures.append(f"{name}: {exc}")
                continue
            answered += 1
            self.errors.pop(name, None)
            for s in found:
                merged.setdefault(s.label, s)
        if not answered:
            raise SourceError("every metric backend failed: " + " | ".join(failures))
        if failures and self._notes is not None:
            for failure in failures:
                note = f"metrics from {failure}"
                if note not in self._notes:
                    self._notes.append(note)
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
