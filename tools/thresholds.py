"""Absolute thresholds: what counts as bad when there is no baseline to compare with (documented defaults).

Per run they travel in ToolContext.options["thresholds"] (a dict of these fields); anything not given
keeps its default. Statement latency and lock-wait thresholds belong to tools/sql."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Thresholds(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slow_call_s: float = Field(2.0, description="a call a log line reports as taking this long or longer is slow")
    pool_saturation: float = Field(0.9, description="a pool with this share of its slots in use is saturated")
    error_rate_warning_pct: float = Field(5.0, description="an error-rate series at or above this % is a problem")
    error_rate_critical_pct: float = Field(20.0, description="... and at or above this % a critical one")
    server_error_share: float = Field(0.05, description="5xx responses as a share of status-bearing log lines")
    forecast_horizon_h: float = Field(48.0, description="bounded series (CPU, memory, pools, connections) are "
                                      "forecast to their limit when they reach it within this many hours")


def thresholds(options: dict[str, Any]) -> Thresholds:
    """The run's thresholds: defaults, overridden by options["thresholds"]."""
    given = options.get("thresholds") or {}
    return given if isinstance(given, Thresholds) else Thresholds.model_validate(given)
