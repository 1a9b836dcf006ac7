"""Live tests: real servers on this machine (PostgreSQL, MariaDB, snmpd, Prometheus, InfluxDB 1.6,
an OpenSearch-API server, a TDS server with Microsoft's ODBC Driver 18) and stand-ins only where
nothing real can run (InfluxDB 2, ServiceNow, Jira, PagerDuty)."""

from __future__ import annotations

import os

import pytest


def unavailable(reason: str) -> None:
    """Skip with a clear reason, except where servers must run (CI sets LIVE_TESTS_REQUIRED=1)."""
    if os.environ.get("LIVE_TESTS_REQUIRED") == "1" or os.environ.get("CI") == "true":
        pytest.fail(f"live server required but unavailable: {reason}")
    pytest.skip(reason)
