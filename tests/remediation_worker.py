"""A worker process for the crash tests: it resumes a paused investigation with a decision, and its
executor kills the process (os._exit) right after the real side effect, before the ledger or the
checkpoint records anything, as a worker killed at the worst moment would.

    python -m tests.remediation_worker CHECKPOINTS STORE THREAD SERVICENOW_URL SCENARIO DECISION POLICY
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from pathlib import Path

from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.types import Command
from pydantic import SecretStr

from agents.llm import ModelHandle
from evals.loader import load_scenario
from graphs.context import Context
from graphs.copilot import build_graph
from graphs.policy import Policy
from tests.remediation_support import Clock, action_runtime
from tools.actions.base import ActionRequest, ExecutionResult
from tools.actions.config import TicketsConfig
from tools.actions.tickets import ServiceNowTickets
from tools.estate import ServiceNowConfig
from tools.replay import replay_sources

DIED = 17


class DieAfterTheSideEffect:
    def __init__(self, inner: ServiceNowTickets) -> None:
        self.inner, self.actions = inner, inner.actions

    def execute(self, request: ActionRequest) -> ExecutionResult:
        self.inner.execute(request)
        os._exit(DIED)

    def reconcile(self, request: ActionRequest) -> ExecutionResult | None:
        return self.inner.reconcile(request)


def main() -> None:
    checkpoints, store, thread, url, scenario_path, decision, policy = sys.argv[1:8]
    scenario = load_scenario(Path(scenario_path))
    tickets = ServiceNowTickets(
        ServiceNowConfig(url=url, username="opscopilot", password=SecretStr("s3cret")), TicketsConfig()
    )
    clock = Clock()
    rt = action_runtime(
        store, Policy.model_validate_json(policy), {"create_ticket": DieAfterTheSideEffect(tickets)}, clock
    )
    ctx = Context(
        sources=replay_sources(scenario.world, None),
        model=ModelHandle.unavailable(),
        semantic_routing=False,
        actions=rt,
    )
    conn = sqlite3.connect(checkpoints, check_same_thread=False)
    graph = build_graph(SqliteSaver(conn))
    graph.invoke(Command(resume=json.loads(decision)), {"configurable": {"thread_id": thread}}, context=ctx)
    sys.exit(0)  # not reached: the executor ends the process


if __name__ == "__main__":
    main()
