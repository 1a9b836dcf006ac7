"""Absolute thresholds: what counts as bad when there is no baseline to compare with (documented defaults).

Per run they travel in ToolContext.options["thresholds"] (a dict of these fields); anything not given
keeps its default. Statement latency and lock-wait thresholds belong to tools/sql.

| field | default | meaning |
|---|---|---|
| slow_call_s | 2.0 | a call a log line reports as taking this long (or longer) is slow |
| pool_saturation | 0.9 | a pool with this share of its slots in use is saturated |
| error_rate_warning_pct | 5.0 | an error-rate series at or above this % is a problem |
| error_rate_critical_pct | 20.0 | ... and at or above this % a critical one |
| server_error_share | 0.05 | 5xx responses as a share of the log lines that carry a status code |
| forecast_horizon_h | 48.0 | hours: CPU, memory, pools, connections hitting their limit sooner are forecast |
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class Thresholds(BaseModel):
    """See the module docstring for each field's meaning."""

    model_config = ConfigDict(extra="forbid")

    slow_call_s: float = 2.0
    pool_saturation: float = 0.9
    error_rate_warning_pct: float = 5.0
    error_rate_critical_pct: float = 20.0
    server_error_share: float = 0.05
    forecast_horizon_h: float = 48.0


def thresholds(options: dict[str, Any]) -> Thresholds:
    """The run's thresholds: defaults, overridden by options["thresholds"]."""
    given = options.get("thresholds") or {}
    return given if isinstance(given, Thresholds) else Thresholds.model_validate(given)
