"""Wiring: settings -> model handle, sources, context, checkpointer paths. The only place that joins them."""

from __future__ import annotations

import logging
from pathlib import Path

from agents.llm import ModelHandle, build_model, default_model_spec
from evals.loader import Scenario, load_scenario
from evals.runner import RunOptions
from graphs.context import Context
from server.knowledge import knowledge_configured
from server.settings import Settings
from tools.replay import replay_sources
from tools.sources import Checkable, KnowledgeSource, SourceCheck, Sources
from tools.world import World

log = logging.getLogger(__name__)

DEMO_SCENARIO = Path(__file__).resolve().parent.parent / "evals" / "scenarios" / "demo-checkout-blocking.yaml"


def model_spec(settings: Settings, override: str | None) -> str:
    return override or settings.model_spec or default_model_spec()


def open_model(settings: Settings, override: str | None) -> ModelHandle:
    """Build the configured model; unreachable models come back as `none` with a note."""
    return build_model(model_spec(settings, override), settings.model)


def knowledge_factory(settings: Settings):  # type: ignore[no-untyped-def]
    """Past incidents of a replayed world go into a throwaway in-memory Chroma collection (never into
    the team's store)."""

    def make(world: World):  # type: ignore[no-untyped-def]
        from tools.knowledge.store import ChromaKnowledge

        return ChromaKnowledge(world.past_incidents, embedding_model_path=settings.knowledge.embedding)

    return make


def scenario_sources(settings: Settings, scenario: Scenario) -> Sources:
    return replay_sources(scenario.world, knowledge_factory(settings), label=f"scenario {scenario.id}")


def run_options(settings: Settings) -> RunOptions:
    return RunOptions(
        lookback_minutes=settings.lookback_minutes,
        history_days=settings.history_days,
        step_budget=settings.step_budget,
        knowledge_min_score=settings.knowledge.min_score,
        knowledge_top_k=settings.knowledge.top_k,
    )


def make_context(settings: Settings, sources: Sources, model: ModelHandle) -> Context:
    opts = run_options(settings)
    return Context(
        sources=sources,
        model=model,
        lookback_minutes=opts.lookback_minutes,
        history_days=opts.history_days,
        step_budget=opts.step_budget,
        knowledge_min_score=opts.knowledge_min_score,
        knowledge_top_k=opts.knowledge_top_k,
        extra={"tool_options": {"sql_thresholds": settings.sql_thresholds.model_dump()}},
        knowledge_hyde=settings.knowledge.hyde,
    )


def sources_for_ref(settings: Settings, source_ref: str) -> Sources:
    """Rebuild the sources an investigation ran against (on resume, from a fresh process): the
    scenario's recorded world, or the live estate of the settings (real clients, not empty ones)."""
    if source_ref.startswith("scenario-file:"):
        return scenario_sources(settings, load_scenario(Path(source_ref.removeprefix("scenario-file:"))))
    if source_ref == "live":
        return live_sources(settings)
    raise ValueError(f"unknown source reference {source_ref!r} (expected scenario-file:PATH or live)")


def scenario_ref(path: Path) -> str:
    return f"scenario-file:{path.resolve()}"


def open_store(settings: Settings):  # type: ignore[no-untyped-def]
    """The service store of the settings (SQLite in data_dir, or service.store_url)."""
    from server.store import Store

    return Store(settings.service.store_url, settings.data_dir)


def checkpoint_path(settings: Settings) -> Path:
    return settings.data_dir / "checkpoints.sqlite"


def store_path(settings: Settings) -> Path:
    return settings.data_dir / "opscopilot.sqlite"


class NoLiveSources(ValueError):
    """Nothing is configured under `estate` in the settings."""


def live_sources(settings: Settings) -> Sources:
    """The configured estate's live backends (imported only when configured)."""
    est = settings.estate
    has_knowledge = knowledge_configured(settings)
    if est.empty and not has_knowledge:
        raise NoLiveSources(
            "no live sources are configured: add an `estate` section to the settings "
            "(see config/settings.yaml), or replay a recorded world with --scenario FILE"
        )
    sources = Sources(label="live", aliases=dict(est.aliases))
    if est.sql:
        from tools.sql.live import OdbcSql

        sources.sql = OdbcSql(est.sql)
    if est.elastic:
        from tools.logs.elastic import ElasticLogs

        sources.logs = ElasticLogs(est.elastic)
    metric_backends: list[object] = []
    if est.influx:
        from tools.metrics.influx import InfluxMetrics

        metric_backends += [InfluxMetrics(c) for c in est.influx]
    if est.prometheus:
        from tools.metrics.prometheus import PrometheusMetrics

        metric_backends += [PrometheusMetrics(c) for c in est.prometheus]
    if metric_backends:
        from tools.metrics.combined import CombinedMetrics

        sources.metrics = CombinedMetrics(metric_backends)  # type: ignore[arg-type]
    if est.snmp:
        from tools.network.snmp import SnmpPoller

        sources.snmp = SnmpPoller(est.snmp)
    if est.servicenow or est.jira or est.pagerduty:
        from tools.itsm.live import LiveItsm

        sources.itsm = LiveItsm(servicenow=est.servicenow, jira=est.jira, pagerduty=est.pagerduty)
    if has_knowledge:
        sources.knowledge = _live_knowledge(settings)
    return sources


def _live_knowledge(settings: Settings) -> KnowledgeSource:
    from server.knowledge import live_knowledge

    return live_knowledge(settings)


def doctor_checks(sources: Sources) -> list[SourceCheck]:
    """Every configured backend checks itself; a backend without checks is reported as such."""
    rows: list[SourceCheck] = []
    for kind in ("sql", "logs", "metrics", "snmp", "itsm", "knowledge"):
        backend = getattr(sources, kind)
        if backend is None:
            continue
        if isinstance(backend, Checkable):
            try:
                rows.extend(backend.doctor())
            except Exception as exc:  # a doctor must report, not crash
                rows.append(SourceCheck(source=kind, kind=kind, target="?", reachable=False, detail=str(exc)))
        else:
            rows.append(SourceCheck(source=kind, kind=kind, target="-", reachable=True, detail="no check"))
    return rows
