"""Absolute thresholds the database analyzers apply where no baseline exists, with their defaults.

Configurable per deployment (settings key `sql_thresholds`, passed to the tools as the run option
`sql_thresholds`); every default is documented here and in the view tools' docstrings.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class SqlThresholds(BaseModel):
    """When a number is a problem even without a baseline to compare it with."""

    model_config = ConfigDict(extra="forbid")

    slow_statement_ms: float = Field(
        default=2_000, gt=0, description="a statement with no baseline averaging this long is slow (warning)"
    )
    very_slow_statement_ms: float = Field(default=30_000, gt=0, description="... and this long is critical")
    lock_wait_ms: float = Field(
        default=30_000, gt=0, description="a session blocked this long makes a blocking chain critical"
    )
    lock_wait_per_s: float = Field(
        default=0.5,
        gt=0,
        description="seconds of lock waits per second of the wait sample (sessions blocked at once, on "
        "average) that make lock waits a warning whatever their share",
    )
    long_running_ms: float = Field(
        default=60_000, gt=0, description="an active statement running this long is long-running (warning)"
    )
    very_long_running_ms: float = Field(default=1_800_000, gt=0, description="... and this long is critical")
    connections_warn_pct: float = Field(
        default=80.0, gt=0, le=100, description="connections or worker threads in use, % of the maximum"
    )
    connections_critical_pct: float = Field(default=95.0, gt=0, le=100)
    replica_lag_s: float = Field(default=30.0, gt=0, description="replica / AG lag that is a warning")
    replica_lag_critical_s: float = Field(default=300.0, gt=0)
    replica_queue_mb: float = Field(
        default=1_024.0, gt=0, description="AG log send / redo queue that is a warning"
    )
    retained_log_mb: float = Field(
        default=1_024.0,
        gt=0,
        description="WAL held by a replication slot, or binlogs kept, that is a warning",
    )
    log_used_pct: float = Field(
        default=75.0, gt=0, le=100, description="a transaction log this full that cannot be reused: warning"
    )
    xid_age_warn_pct: float = Field(
        default=50.0, gt=0, le=100, description="age(datfrozenxid) as % of the 2^31 wraparound limit: warning"
    )
    xid_age_critical_pct: float = Field(default=75.0, gt=0, le=100)
    history_list_length: int = Field(
        default=1_000_000, gt=0, description="InnoDB undo records not yet purged that are a warning"
    )
    version_store_mb: float = Field(
        default=10_240.0, gt=0, description="SQL Server tempdb version store size that is a warning"
    )
    snapshot_age_ms: float = Field(
        default=3_600_000,
        gt=0,
        description="a transaction or snapshot this old holds back the version store / vacuum / purge",
    )
    memory_grant_wait_ms: float = Field(
        default=1_000, gt=0, description="a query waiting this long for its memory grant (warning)"
    )
    deadlocks_critical: int = Field(
        default=10, gt=0, description="deadlocks between two samples that are critical (one is a warning)"
    )

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> SqlThresholds:
        """The run option `sql_thresholds` (a dict or a SqlThresholds), else the defaults."""
        given = options.get("sql_thresholds")
        if isinstance(given, SqlThresholds):
            return given
        return cls.model_validate(given or {})
