"""What the remediation tests share: a controllable clock, an ActionRuntime on a test store, an
executor wrapper that counts calls (around a real executor), and scenario inputs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from evals.loader import Scenario
from graphs.audit import AuditLog
from graphs.copilot import make_input
from graphs.ledger import RunLedger
from graphs.policy import Policy
from graphs.remediation import ActionRuntime
from graphs.state import InvestigationInput
from tools.actions.base import ActionRequest, ExecutionResult
from tools.world import PastIncident


class Clock:
    """Wall time the test moves: `sleep` advances it instead of waiting."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime.now(UTC)
        self.slept: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += timedelta(seconds=seconds)

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


class Counting:
    """Passes every call to a real executor and counts them."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.actions = inner.actions
        self.executed: list[ActionRequest] = []
        self.reconciled: list[ActionRequest] = []

    def execute(self, request: ActionRequest) -> ExecutionResult:
        self.executed.append(request)
        result: ExecutionResult = self.inner.execute(request)
        return result

    def reconcile(self, request: ActionRequest) -> ExecutionResult | None:
        self.reconciled.append(request)
        found: ExecutionResult | None = self.inner.reconcile(request)
        return found


class KnowledgeList:
    """A KnowledgeSink that keeps what it is offered."""

    def __init__(self) -> None:
        self.incidents: list[PastIncident] = []

    def add(self, incident: PastIncident) -> None:
        self.incidents.append(incident)


def action_runtime(
    store: Path | str,
    policy: Policy,
    executors: dict[str, Any],
    clock: Clock,
    *,
    notes: Any = None,
    knowledge: Any = None,
) -> ActionRuntime:
    audit = AuditLog.open(store)
    return ActionRuntime(
        policy=policy,
        audit=audit,
        ledger=RunLedger(audit.db),
        executors=executors,
        notes=notes,
        knowledge=knowledge,
        clock=clock,
        sleep=clock.sleep,
        wait_poll_s=0.05,
    )


def scenario_input(scenario: Scenario, requester: str = "carol", source_ref: str = "") -> InvestigationInput:
    alert = scenario.input.alert
    return make_input(
        question=scenario.input.question,
        alert_source=alert.source if alert else None,
        alert_payload=alert.payload if alert else None,
        now=scenario.now,
        source_ref=source_ref,
        requester=requester,
    )
