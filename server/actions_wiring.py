"""Wiring for remediations: settings -> policy, audit log and ledger in the store, executors, work
notes. The only place outside graphs/execute.py that builds the executors' layer."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

from graphs.audit import AuditLog
from graphs.ledger import RunLedger
from graphs.policy import Policy, default_policy, load_policy
from graphs.remediation import ActionRuntime, KnowledgeSink
from server.settings import Settings
from tools.actions.base import ActionRequest, ExecutionResult
from tools.world import PastIncident

log = logging.getLogger(__name__)

DEFAULT_POLICY = Path("config/policy.yaml")


def policy_path(settings: Settings) -> Path | None:
    """`actions.policy_file`, else config/policy.yaml when it exists, else None (the built-in default)."""
    if settings.actions.policy_file is not None:
        return settings.actions.policy_file
    return DEFAULT_POLICY if DEFAULT_POLICY.is_file() else None


def load_action_policy(settings: Settings) -> Policy:
    """The policy in force; PolicyError (exit 2 on the CLI) when its file is invalid."""
    path = policy_path(settings)
    return load_policy(path) if path is not None else default_policy()


def store_target(settings: Settings) -> str:
    """Where the audit log and the execution ledger live: next to the service's tables, in its store
    (`service.store_url`, else the SQLite file in data_dir). One connection setting for both."""
    from server.runtime import store_path

    return settings.service.store_url or str(store_path(settings))


def open_audit(settings: Settings, store: str | None = None) -> AuditLog:
    return AuditLog.open(store or store_target(settings))


class Unavailable:
    """Stands in for an executor whose settings cannot work: every request is refused with the reason."""

    def __init__(self, actions: tuple[str, ...], reason: str) -> None:
        self.actions, self.reason = actions, reason

    def execute(self, request: ActionRequest) -> ExecutionResult:
        return ExecutionResult(
            outcome="refused",
            action=request.proposal.action,
            target=request.proposal.display_target(),
            detail=f"{request.proposal.action} cannot run here: {self.reason}",
        )

    def reconcile(self, request: ActionRequest) -> ExecutionResult | None:
        return None


def build_executors(settings: Settings) -> tuple[dict[str, Any], Any]:
    """(action -> executor, work-note writer) for what the settings configure."""
    from tools.actions.sql import SqlKillSession
    from tools.actions.tickets import JiraTickets, ServiceNowTickets, WorkNotes

    est, cfg = settings.estate, settings.actions
    executors: dict[str, Any] = {"kill_session": SqlKillSession(est.sql)}

    def build(actions: tuple[str, ...], make: Any, what: str) -> None:
        try:
            executor = make()
        except ValueError as exc:
            log.warning("%s: %s", what, exc)
            executor = Unavailable(actions, f"{what} is misconfigured: {exc}")
        for action in actions:
            executors[action] = executor

    if cfg.awx is not None:
        from tools.actions.awx import AwxJobs

        awx = cfg.awx
        build(("run_playbook", "restart_service"), lambda: AwxJobs(awx), "actions.awx")
    if cfg.terraform is not None:
        from tools.actions.terraform import TerraformScaleOut

        tfc = cfg.terraform
        build(("scale_out",), lambda: TerraformScaleOut(tfc), "actions.terraform")
    if cfg.pagerduty_events is not None:
        from tools.actions.pagerduty import PagerDutyPage

        pd = cfg.pagerduty_events
        build(("page_oncall",), lambda: PagerDutyPage(pd), "actions.pagerduty_events")
    servicenow = jira = None
    if est.servicenow is not None:
        sn_cfg = est.servicenow
        try:
            servicenow = ServiceNowTickets(sn_cfg, cfg.tickets)
        except ValueError as exc:
            log.warning("estate.servicenow: %s", exc)
    if est.jira is not None:
        try:
            jira = JiraTickets(est.jira, cfg.tickets)
        except ValueError as exc:
            log.warning("estate.jira: %s", exc)
    ticketing = servicenow if cfg.tickets.system == "servicenow" else jira
    if ticketing is not None:
        executors["create_ticket"] = ticketing
    else:
        executors["create_ticket"] = Unavailable(
            ("create_ticket",), f"no estate.{cfg.tickets.system} is configured for tickets"
        )
    notes = WorkNotes(servicenow, jira) if servicenow or jira else None
    return executors, notes


def replay_executors() -> dict[str, Any]:
    """The executors of a replayed scenario: each action rehearsed against the recorded evidence."""
    from tools.actions.replay import RecordedWorld

    rehearsal = RecordedWorld()
    return dict.fromkeys(rehearsal.actions, rehearsal)


def build_action_runtime(settings: Settings, knowledge: KnowledgeSink | None = None) -> ActionRuntime:
    """Everything the remediation nodes need, from the settings; build it once per process. `knowledge`
    receives remediated incidents as past incidents (the knowledge base's ingest; None = not offered)."""
    policy = load_action_policy(settings)
    audit = open_audit(settings)
    executors, notes = build_executors(settings)
    return ActionRuntime(
        policy=policy,
        audit=audit,
        ledger=RunLedger(audit.db),
        executors=executors,
        notes=notes,
        knowledge=knowledge,
        longest_wait=timedelta(minutes=settings.service.approval_ttl_minutes),
    )


class TeamKnowledge:
    """The team's knowledge store (server/knowledge.py) as the remediations' KnowledgeSink, opened on
    the first outcome it receives: building the action runtime never loads Chroma or the embedding
    model, and a store that cannot be opened fails that one offer (audited), not the process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._store: Any = None
        self._lock = threading.Lock()

    def add(self, incident: PastIncident) -> None:
        with self._lock:
            if self._store is None:
                from server.knowledge import knowledge_store

                self._store = knowledge_store(self.settings)
            self._store.add(incident)


def knowledge_sink(settings: Settings) -> KnowledgeSink:
    """Where the outcomes of live remediations are learned as past incidents: the team's knowledge
    store (`knowledge.chroma_path` / `chroma_url`, else data_dir/knowledge), the one `kb ingest` fills
    and live investigations search. Replayed scenarios offer nothing."""
    return TeamKnowledge(settings)
