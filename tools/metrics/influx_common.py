"""What both InfluxDB backends share: the error they raise, and the Series they build with Telegraf units."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from tools.sources import BackendError
from tools.world import Series

_BYTES_FIELDS = re.compile(r"(^|_)(bytes|free|used|total|available|buffered|cached)$")


class InfluxError(BackendError):
    """InfluxDB could not answer; `status` is the HTTP status when there was one, `fix` what to do,
    `denied` when the database, org or bucket is missing or may not be read."""

    def __init__(
        self,
        message: str,
        *,
        fix: str = "",
        status: int | None = None,
        denied: bool = False,
        kind: str | None = None,
    ) -> None:
        super().__init__(message, fix=fix, status=status, kind=kind)
        self.denied = denied


def telegraf_unit(measurement: str, field: str) -> str | None:
    """The unit of a Telegraf-style field: `used_percent`, `usage_idle` (cpu) -> percent, `free` -> bytes."""
    if field.endswith(("percent", "_pct")) or (measurement == "cpu" and field.startswith("usage_")):
        return "percent"
    if measurement in ("disk", "mem", "swap") and _BYTES_FIELDS.search(field):
        return "bytes"
    return "bytes" if field.endswith("_bytes") else None


def iso_ms(ts: datetime) -> str:
    """RFC 3339 in UTC with milliseconds, as both query languages take a time."""
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def influx_series(
    measurement: str, tags: dict[str, Any], field: str, points: list[tuple[datetime, float]]
) -> Series:
    """A Series with empty tags dropped and the field's Telegraf unit."""
    clean = {k: str(v) for k, v in tags.items() if v not in (None, "")}
    unit = telegraf_unit(measurement, field)
    return Series(measurement=measurement, tags=clean, field=field, unit=unit, points=points)
