"""The kinds of problem a view tool can see (`Concern`): what a report may, and may not, call healthy."""

from __future__ import annotations

from typing import Literal, get_args

Concern = Literal[
    "blocking",  # sessions blocked by other sessions' locks
    "open_transactions",  # transactions left open by idle sessions
    "long_running",  # active statements running for a long time
    "deadlocks",  # deadlock cycles (live, counters, or the latest deadlock report)
    "waits",  # what sessions are waiting on (wait profile)
    "regressions",  # statements slower than their baseline, or slow in absolute terms
    "connections",  # connection and worker saturation against the configured maximum
    "space",  # data/log files, volumes and disks filling up
    "log_reuse",  # transaction log / WAL / binlog that cannot be reused
    "replication",  # replica or availability-group lag
    "memory_grants",  # queries waiting for query memory, or spilling to disk for want of it
    "version_store",  # sessions keeping old row versions alive (tempdb version store, xmin horizon, undo)
    "wraparound",  # transaction ID wraparound and purge lag (age(datfrozenxid), history list length)
    "errors",  # error lines, error codes and error bursts in logs
    "latency",  # response times (metric series or slow calls in logs)
    "resource_usage",  # CPU, memory, I/O and other metric anomalies
    "forecast",  # time until a bounded resource is exhausted
    "interfaces",  # network interface state, errors, discards and utilisation
    "device_health",  # device reboots and uptime
    "changes",  # changes (ITSM) overlapping the window
    "incidents",  # open incidents and who is on call
    "history",  # similar past incidents
]
CONCERNS: tuple[str, ...] = get_args(Concern)

CONCERN_WORDS: dict[str, str] = {
    "blocking": "blocking",
    "open_transactions": "open transactions",
    "long_running": "long-running statements",
    "deadlocks": "deadlocks",
    "waits": "waits",
    "regressions": "query regressions",
    "connections": "connection saturation",
    "space": "space",
    "log_reuse": "log reuse",
    "replication": "replication lag",
    "memory_grants": "memory grants",
    "version_store": "row-version cleanup",
    "wraparound": "wraparound and purge lag",
    "errors": "log errors",
    "latency": "latency",
    "resource_usage": "resource usage",
    "forecast": "capacity forecasts",
    "interfaces": "interfaces",
    "device_health": "device health",
    "changes": "changes",
    "incidents": "open incidents",
    "history": "past incidents",
}
