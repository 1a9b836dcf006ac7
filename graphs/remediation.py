"""What the remediation nodes run with: the policy, the audit log, the execution ledger, the executors,
where outcomes are written back and offered, and a clock. One per process; per-run data stays in the
graph state.

Entry point for the service: build an :class:`ActionRuntime` once (server/actions_wiring.py does it
from the settings), put it in the run context (``Context(actions=...)``), and when a decision is
recorded resume the paused graph with it::

    graph.invoke(Command(resume=ApprovalDecision(...).model_dump(mode="json")), config, context=ctx)

The graph then checks the decision (graphs/proposals.py), runs what is approved exactly once
(graphs/execute.py) and verifies it. Without an ActionRuntime nothing is screened or executed: the
approval is recorded and the run ends, as before.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from graphs.audit import AuditLog
from graphs.ledger import RunLedger
from graphs.policy import Policy
from tools.knowledge.learn import KnowledgeSink


class NoteWriter(Protocol):
    """Writes an outcome to an ITSM record (tools.actions.tickets.WorkNotes)."""

    def writable(self, record: str) -> bool: ...
    def add(self, record: str, text: str) -> tuple[str, list[str]]: ...


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class ActionRuntime:
    policy: Policy
    audit: AuditLog
    ledger: RunLedger
    executors: Mapping[str, Any] = field(default_factory=dict)  # action -> tools.actions Executor
    notes: NoteWriter | None = None
    knowledge: KnowledgeSink | None = None
    clock: Callable[[], datetime] = utc_now
    sleep: Callable[[float], None] = time.sleep
    lease: timedelta = timedelta(minutes=30)  # a claim older than this is stale even if its owner lives
    wait_poll_s: float = 1.0  # how often a second attempt looks whether the first one finished
    longest_wait: timedelta | None = None  # no proposal waits longer (the service's approval limit)
    replay: bool = False  # a replayed scenario: every action is a dry run (nothing real is acted on)

    def for_replay(self, executors: Mapping[str, Any]) -> ActionRuntime:
        """The same policy, audit log and ledger for an investigation of a replayed scenario: its
        `executors` only rehearse against the recorded evidence, and every run is a dry run."""
        return replace(self, executors=executors, notes=None, knowledge=None, replay=True)

    def close(self) -> None:
        for executor in {id(e): e for e in self.executors.values()}.values():
            close = getattr(executor, "close", None)
            if close is not None:
                close()
        self.audit.close()
