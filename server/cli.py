"""The `opscopilot` command line: ask, investigate, eval, demo and the approval queue."""

from __future__ import annotations

import getpass
import json
import logging
import os
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from server.cli_audit import audit_app, show_investigation
from server.events import Event, EventName, stream_events

app = typer.Typer(
    name="opscopilot",
    help=(
        "An AI copilot for database and infrastructure operations.\n\n"
        "It plans which specialists to consult (database, logs, metrics, network, itsm, knowledge), "
        "gathers evidence from read-only tools, runs deterministic analyzers, cites past incidents and "
        "proposes a remediation that stops at a human approval gate. A model (embedded local Qwen, "
        "Ollama or any OpenAI-compatible server) explains; without one the copilot still answers.\n\n"
        "Start with:  opscopilot demo"
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
)
approvals_app = typer.Typer(help="The approval queue: list pending remediations, approve or reject them.")
app.add_typer(approvals_app, name="approvals")
app.add_typer(audit_app, name="audit")

err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="Settings YAML (default: $OPSCOPILOT_CONFIG or config/settings.yaml)."
    ),
]
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help="none | local | ollama:NAME | openai:NAME. Default: settings, else `local` when installed.",
    ),
]
ScenarioOpt = Annotated[
    Path | None,
    typer.Option(
        "--scenario",
        "-s",
        help="Replay a SPEC v1 scenario's recorded world instead of the live sources in the settings.",
    ),
]


def fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def _settings(config: Path | None) -> Any:
    from server.settings import SettingsError, load_settings

    try:
        settings = load_settings(config)
    except SettingsError as exc:
        fail(str(exc))
    logging.basicConfig(
        level=getattr(logging, str(settings.log_level).upper(), logging.WARNING), stream=sys.stderr
    )
    _action_runtime(settings, check_only=True)
    return settings


def _action_runtime(settings: Any, check_only: bool = False) -> Any:
    """The remediation runtime (policy, audit log, executors); a bad policy file exits 2."""
    from graphs.policy import PolicyError
    from server.actions_wiring import build_action_runtime, load_action_policy

    try:
        if check_only:
            load_action_policy(settings)
            return None
        return build_action_runtime(settings)
    except PolicyError as exc:
        fail(str(exc))


def _scenario(path: Path) -> Any:
    from evals.loader import ScenarioError, load_scenario

    try:
        return load_scenario(path)
    except ScenarioError as exc:
        fail(str(exc))


class ProgressPrinter:
    """Shows which specialists and tools run and how long they take; streams model tokens."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.streaming = False

    def __call__(self, ev: Event) -> None:
        if self.quiet:
            return
        d, t = ev.data, f"[dim]{ev.elapsed_s:6.2f}s[/]"
        if ev.name is EventName.TOKEN:
            if not self.streaming:
                err.print(f"{t} [magenta]model[/] ", end="")
                self.streaming = True
            err.out(d.get("text", ""), end="", highlight=False)
            return
        if self.streaming:
            err.print()
            self.streaming = False
        if ev.name is EventName.PLAN:
            ents = (
                ", ".join(f"{e['name']} ({'/'.join(e['kinds']) or '?'})" for e in d["entities"])
                or "none named"
            )
            err.print(f"{t} [bold]plan[/] entities: {ents}")
            for s in d["specialists"]:
                err.print(f"{t}   → [cyan]{s['name']}[/]: {'; '.join(s['reasons'])}")
        elif ev.name is EventName.TOOL_END:
            status = f"[red]{d['error']}[/]" if d.get("error") else f"{d['findings']} finding(s)"
            err.print(
                f"{t}   [cyan]{d['specialist']}[/] {d['tool']}({d['entity']}) {d['seconds']:.2f}s: {status}"
            )
        elif ev.name is EventName.FOLLOW_UP:
            err.print(
                f"{t}   [cyan]{d['specialist']}[/] follow-up asked by the model: {d['tool']}({d['entity']})"
            )
        elif ev.name is EventName.SPECIALIST_END:
            err.print(
                f"{t} [cyan]{d['specialist']}[/] done in {d['seconds']:.2f}s ({d['findings']} findings)"
            )
        elif ev.name is EventName.EXPLAINING:
            err.print(f"{t} asking {d['model']} to explain the findings ...")
        elif ev.name is EventName.APPROVAL_REQUIRED:
            props = d["request"].get("proposals", [])
            err.print(
                f"{t} [yellow]approval required[/] for {len(props)} action(s); nothing has been executed"
            )


def _sources_and_clock(settings: Any, scenario: Path | None) -> tuple[Any, Any, str]:
    """Replay a scenario's world (with its clock), or the live estate (wall clock)."""
    from server import runtime

    if scenario is not None:
        sc = _scenario(scenario)
        return runtime.scenario_sources(settings, sc), sc.now, f"scenario-file:{scenario.resolve()}"
    try:
        return runtime.live_sources(settings), None, "live"
    except runtime.NoLiveSources as exc:
        fail(str(exc))


def _run(
    settings: Any,
    graph_input: dict[str, Any],
    sources: Any,
    model_override: str | None,
    quiet: bool,
    as_json: bool,
) -> dict[str, Any]:
    from graphs.checkpointer import open_checkpointer
    from graphs.copilot import build_graph
    from server import runtime
    from server.store import InvestigationStore

    started = time.perf_counter()
    model = runtime.open_model(settings, model_override)
    if not quiet:
        note = f" ({model.note})" if model.note else ""
        err.print(
            f"[dim]model: {model.name if model.available else 'none'}{note}; sources: {sources.label}[/]"
        )
    context = runtime.make_context(settings, sources, model)
    context.actions = _action_runtime(settings)
    graph_input["requester"] = graph_input.get("requester") or getpass.getuser()  # they cannot approve it
    thread_id = f"inv-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    config = {"configurable": {"thread_id": thread_id}}
    store = InvestigationStore(runtime.store_path(settings))
    store.record(
        thread_id,
        kind="alert" if graph_input.get("alert") else "question",
        request=graph_input.get("question") or json.dumps(graph_input.get("alert", {}))[:500],
        source_ref=graph_input.get("source_ref", ""),
        model=model.name,
        status="investigating",
    )
    printer = ProgressPrinter(quiet=quiet or as_json)
    final: dict[str, Any] = {}
    with open_checkpointer(settings.checkpoint_url, runtime.checkpoint_path(settings)) as saver:
        graph = build_graph(saver)
        for ev in stream_events(graph, graph_input, config, context):
            printer(ev)
            if ev.name is EventName.DONE:
                final = ev.data
        values = graph.get_state(config).values
    context.actions.close()
    status = "awaiting_approval" if final.get("pending_approval") else (values.get("status") or "done")
    store.update(thread_id, status=status, proposals=values.get("proposals", []))
    store.close()
    if as_json:
        out.print_json(
            json.dumps(
                {
                    "thread_id": thread_id,
                    "status": status,
                    "answer": values.get("answer"),
                    "report": values.get("report"),
                },
                default=str,
            )
        )
        return dict(values)
    out.print(values.get("answer", ""), markup=False)
    if final.get("pending_approval"):
        out.print(
            f"\nAwaiting approval (thread {thread_id}). Approve with:\n"
            f"  opscopilot approvals approve {thread_id} --approver YOUR_NAME\n"
            f"or reject with:  opscopilot approvals reject {thread_id} --approver YOUR_NAME",
            markup=False,
        )
    if not quiet:
        err.print(f"[dim]finished in {time.perf_counter() - started:.1f}s[/]")
    return dict(values)


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="What you want to know, in plain words.")],
    scenario: ScenarioOpt = None,
    model: ModelOpt = None,
    config: ConfigOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the answer.")] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the answer and structured report as JSON.")
    ] = False,
) -> None:
    """Ask a question; progress streams to stderr, the answer to stdout.

    Example:

        opscopilot ask "Why is checkout timing out on sql-prod-01?"
            --scenario evals/scenarios/demo-checkout-blocking.yaml --model none
    """
    from graphs.copilot import make_input

    settings = _settings(config)
    sources, now, ref = _sources_and_clock(settings, scenario)
    graph_input = make_input(question=question, now=now, source_ref=ref)
    _run(settings, dict(graph_input), sources, model, quiet, as_json)


@app.command()
def investigate(
    alert_file: Annotated[Path, typer.Argument(help="The webhook body as JSON (or {source, payload}).")],
    scenario: ScenarioOpt = None,
    source: Annotated[
        str | None,
        typer.Option(
            help="alertmanager | grafana | elastic_watcher | generic. Default: detected from the body."
        ),
    ] = None,
    model: ModelOpt = None,
    config: ConfigOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Investigate an alert the way a webhook would trigger it.

    Example:  opscopilot investigate alert.json --scenario evals/scenarios/demo-checkout-blocking.yaml
    """
    from graphs.alerts import AlertError
    from graphs.copilot import make_input

    settings = _settings(config)
    source, body = _read_alert(alert_file, source)
    sources, now, ref = _sources_and_clock(settings, scenario)
    try:
        graph_input = make_input(alert_source=source, alert_payload=body, now=now, source_ref=ref)
    except AlertError as exc:
        fail(f"{alert_file}: {exc}")
    _run(settings, dict(graph_input), sources, model, quiet, as_json)


def _read_alert(alert_file: Path, source: str | None) -> tuple[str | None, dict[str, Any]]:
    """A webhook body from a file: the raw JSON, or {source, payload} as scenarios hold it."""
    try:
        body = json.loads(alert_file.read_text(encoding="utf-8"))
    except OSError as exc:
        fail(f"{alert_file}: cannot read file ({exc.strerror})")
    except json.JSONDecodeError as exc:
        fail(f"{alert_file}: not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}")
    if isinstance(body, dict) and set(body) >= {"source", "payload"} and isinstance(body["payload"], dict):
        source, body = source or body["source"], body["payload"]
    if not isinstance(body, dict):
        fail(f"{alert_file}: an alert body must be a JSON object")
    return source, body


@app.command()
def demo(
    model: ModelOpt = None,
    config: ConfigOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Run a bundled incident end to end on the embedded defaults (no servers needed).

    Checkout requests time out against sql-prod-01: the copilot should find the head blocker,
    cite the past incident and stop a kill_session proposal at the approval gate.
    """
    from graphs.copilot import make_input
    from server import runtime

    settings = _settings(config)
    sc = _scenario(runtime.DEMO_SCENARIO)
    if not quiet:
        err.print(
            f"[bold]demo:[/] {sc.title} "
            f"(scenario {runtime.DEMO_SCENARIO.name}, clock {sc.now:%Y-%m-%d %H:%M}Z)"
        )
    graph_input = make_input(
        question=sc.input.question, now=sc.now, source_ref=f"scenario-file:{runtime.DEMO_SCENARIO}"
    )
    _run(settings, dict(graph_input), runtime.scenario_sources(settings, sc), model, quiet, False)


@app.command("eval")
def eval_(
    paths: Annotated[list[Path], typer.Argument(help="Scenario files or folders (searched for *.yaml).")],
    model: ModelOpt = None,
    json_file: Annotated[
        Path | None, typer.Option("--json", help="Write the whole result as JSON here.")
    ] = None,
    config: ConfigOpt = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Print each failing scenario's answer.")
    ] = False,
) -> None:
    """Score the copilot on recorded scenarios (SPEC v1); prints `N passed, N failed`.

    Exits 0 when it ran (whatever the pass count) and 2 on a malformed scenario.
    Example:  opscopilot eval ../shared/scenarios/examples evals/scenarios --model none --json var/eval.json
    """
    from evals.loader import ScenarioError, load_scenarios
    from evals.report import pass_line, summary, write_json
    from evals.runner import run_all
    from server import runtime

    settings = _settings(config)
    try:
        scenarios = load_scenarios(paths)
    except ScenarioError as exc:
        fail(str(exc))
    handle = runtime.open_model(settings, model)
    name = handle.name if handle.available else "none"
    err.print(
        f"[dim]{len(scenarios)} scenario(s), model {name}{f' ({handle.note})' if handle.note else ''}[/]"
    )

    def show(r: Any) -> None:
        mark = "[green]PASS[/]" if r.passed else "[red]FAIL[/]"
        err.print(f"{mark} {r.id:<48} {r.wall_s:6.2f}s route={','.join(r.route)}")
        for p in r.problems:
            err.print(f"       [dim]{p}[/]")
        if verbose and not r.passed:
            err.print(r.answer, markup=False)

    results = run_all(
        scenarios, handle, runtime.run_options(settings), runtime.knowledge_factory(settings), show
    )
    data = summary(name, results)
    if json_file:
        write_json(json_file, data)
        err.print(f"[dim]wrote {json_file}[/]")
    out.print(pass_line(results))


@app.command()
def doctor(
    config: ConfigOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the checks as JSON.")] = False,
) -> None:
    """Check every configured live source: reachable, authenticated, enough permissions, latency,
    circuit state, and what to fix. Exits 1 when any source needs attention.

    Example:  OPSCOPILOT_CONFIG=config/prod.yaml opscopilot doctor
    """
    from rich.table import Table

    from server import runtime

    settings = _settings(config)
    try:
        sources = runtime.live_sources(settings)
    except runtime.NoLiveSources as exc:
        fail(str(exc))
    rows = runtime.doctor_checks(sources)
    bad = [r for r in rows if not r.ok]
    if as_json:
        out.print_json(json.dumps([{**r.model_dump(), "ok": r.ok} for r in rows]))
        raise typer.Exit(1 if bad else 0)
    table = Table(title="opscopilot doctor", show_lines=False)
    for col in ("source", "target", "reachable", "auth", "permissions", "latency", "circuit", "what to fix"):
        table.add_column(col, overflow="fold")

    def mark(v: bool | None) -> str:
        return "-" if v is None else ("[green]ok[/]" if v else "[red]NO[/]")

    for r in rows:
        latency = f"{r.latency_ms:.0f} ms" if r.latency_ms is not None else "-"
        fix = r.fix or ("" if r.ok else r.detail)
        table.add_row(
            r.source,
            r.target,
            mark(r.reachable),
            mark(r.authenticated),
            mark(r.permissions_ok),
            latency,
            r.circuit or "-",
            fix or r.detail,
        )
    wide = out if out.is_terminal else Console(highlight=False, width=220)  # one line a source when piped
    wide.print(table)
    out.print(f"{len(rows) - len(bad)} ok, {len(bad)} need attention")
    if bad:
        raise typer.Exit(1)


@app.command()
def record(
    out_file: Annotated[Path, typer.Option("--out", "-o", help="Where to write the scenario YAML.")],
    question: Annotated[str | None, typer.Option("--question", help="The question to investigate.")] = None,
    alert_file: Annotated[
        Path | None, typer.Option("--alert", help="An alert body (JSON) to investigate.")
    ] = None,
    entity: Annotated[
        list[str] | None, typer.Option("--entity", "-e", help="An entity to focus on (repeatable).")
    ] = None,
    minutes: Annotated[
        int | None, typer.Option(help="Incident window in minutes before now (default: lookback_minutes).")
    ] = None,
    scenario_id: Annotated[
        str | None, typer.Option("--id", help="Scenario id (default: from the request).")
    ] = None,
    scenario: ScenarioOpt = None,
    model: ModelOpt = "none",
    config: ConfigOpt = None,
) -> None:
    """Snapshot the live sources around an entity and time window into a SPEC v1 scenario, so a
    real incident becomes an evaluation case. What the tools read is recorded; the expectations
    are what this run concluded (review them).

    Example:

        opscopilot record --question "why is checkout blocked?" -e pg-orders-01
            --out evals/scenarios/incident-2026-05-02.yaml
    """
    from langgraph.checkpoint.memory import InMemorySaver

    from evals.loader import ScenarioError, load_scenario
    from evals.record import Recorder, build_scenario, recording_sources, slug, write_scenario
    from graphs.alerts import AlertError
    from graphs.copilot import build_graph, make_input
    from server import runtime

    settings = _settings(config)
    if minutes is not None:
        if minutes < 1:
            fail("--minutes must be at least 1")
        settings = settings.model_copy(update={"lookback_minutes": minutes})
    if not question and alert_file is None:
        if not entity:
            fail("give --question, --alert or at least one --entity")
        question = f"Is anything wrong with {', '.join(entity)}?"
    elif question and entity:
        question = f"{question} (entities: {', '.join(entity)})"
    sources, now, _ = _sources_and_clock(settings, scenario)
    now = now or datetime.now(UTC).replace(microsecond=0)
    rec = Recorder()
    recorded = recording_sources(sources, rec)
    alert_doc = None
    try:
        if alert_file is not None:
            source, body = _read_alert(alert_file, None)
            graph_input = make_input(alert_source=source, alert_payload=body, now=now)
            alert_doc = {"source": graph_input["alert"]["source"], "payload": body}  # type: ignore[index]
        else:
            graph_input = make_input(question=question, now=now)
    except AlertError as exc:
        fail(f"{alert_file}: {exc}")
    handle = runtime.open_model(settings, model)
    context = runtime.make_context(settings, recorded, handle)
    graph = build_graph(InMemorySaver())
    cfg = {"configurable": {"thread_id": f"record-{slug(question or 'alert')}"}}
    printer = ProgressPrinter()
    for ev in stream_events(graph, graph_input, cfg, context):
        printer(ev)
    values = dict(graph.get_state(cfg).values)
    world = rec.world()
    sid = scenario_id or f"recorded-{slug(question or 'alert')}"[:60].strip("-")
    doc = build_scenario(
        scenario_id=sid,
        title=(question or (alert_doc or {}).get("source", "alert"))[:100],
        now=now,
        question=question if alert_doc is None else None,
        alert=alert_doc,
        world=world,
        values=values,
    )
    write_scenario(out_file, doc)
    try:
        load_scenario(out_file)
    except ScenarioError as exc:  # our own output must load; say so loudly if it does not
        fail(f"the recorded scenario does not load: {exc}", code=1)
    w = world
    out.print(
        f"wrote {out_file}: {len(w.sql)} SQL instance(s), {len(w.logs)} log record(s), "
        f"{len(w.metrics)} series, "
        f"{len(w.snmp)} device(s), {len(w.itsm.incidents) + len(w.itsm.changes)} ITSM record(s); "
        f"expects route {doc['expect']['route']} and {len(doc['expect']['findings'])} finding(s). "
        f"Replay it with: opscopilot eval {out_file} --model none"
    )


@approvals_app.command("list")
def approvals_list(
    config: ConfigOpt = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Show every investigation, not only pending ones.")
    ] = False,
) -> None:
    """List investigations waiting for approval (newest first)."""
    from server import runtime
    from server.store import InvestigationStore

    settings = _settings(config)
    store = InvestigationStore(runtime.store_path(settings))
    rows = store.list(None if all_ else "awaiting_approval")
    store.close()
    if not rows:
        out.print("no investigations awaiting approval" if not all_ else "no investigations yet")
        return
    from tools.base import escape_text

    for r in rows:
        props = "; ".join(f"{p['action']} {escape_text(p['target'])}" for p in r["proposals"]) or "-"
        out.print(
            f"{r['thread_id']}  {r['status']:<18} {r['created_at'][:19]}  {props}  ({r['request'][:60]})",
            markup=False,
        )


def _decide(
    thread_id: str, decision: str, approver: str, comment: str, config: Path | None, role: str | None = None
) -> None:
    from langgraph.types import Command
    from pydantic import ValidationError

    from graphs.checkpointer import open_checkpointer
    from graphs.copilot import build_graph
    from graphs.state import ApprovalDecision
    from server import runtime
    from server.store import InvestigationStore

    settings = _settings(config)
    store = InvestigationStore(runtime.store_path(settings))
    row = store.get(thread_id)
    if row is None:
        fail(f"no investigation with thread id {thread_id!r} (see `opscopilot approvals list --all`)")
    try:
        payload = ApprovalDecision(
            decision=decision,  # type: ignore[arg-type]
            approver=approver.strip(),
            comment=comment,
            role=role,
            thread_id=thread_id,
            decided_at=datetime.now(UTC).isoformat(),
        ).model_dump(mode="json")
    except ValidationError:
        fail("--approver must name the person deciding (a non-empty string)")
    config_ = {"configurable": {"thread_id": thread_id}}
    with open_checkpointer(settings.checkpoint_url, runtime.checkpoint_path(settings)) as saver:
        graph = build_graph(saver)
        snapshot = graph.get_state(config_)
        if not snapshot.interrupts:
            fail(f"investigation {thread_id} is not waiting for approval (status: {row['status']})")
        model = runtime.open_model(settings, "none")
        context = runtime.make_context(settings, runtime.sources_for_ref(settings, row["source_ref"]), model)
        context.actions = _action_runtime(settings)
        try:
            graph.invoke(Command(resume=payload), config_, context=context)
        finally:
            context.actions.close()
        snapshot = graph.get_state(config_)
        values = snapshot.values
    status = "awaiting_approval" if snapshot.interrupts else values.get("status", decision)
    store.update(thread_id, status=status, proposals=values.get("proposals", []))
    store.close()
    approval = values.get("approval") or {}
    out.print(
        f"{thread_id}: {decision} by {approver} recorded; now {status}. {approval.get('outcome', '')}",
        markup=False,
    )


@approvals_app.command("show")
def approvals_show(
    thread_id: Annotated[str, typer.Argument(help="The thread id printed by ask/investigate.")],
    config: ConfigOpt = None,
) -> None:
    """Show what an investigation proposes, exactly: each action and its structured target (every part
    escaped), the fingerprint an approval binds to, the policy's risk, approvals needed and expiry, the
    state of each proposal, and its audit trail.

    Example:  opscopilot approvals show inv-20261122-212011-38db01
    """
    show_investigation(_settings(config), thread_id)


@approvals_app.command("approve")
def approvals_approve(
    thread_id: Annotated[str, typer.Argument(help="The thread id printed by ask/investigate.")],
    approver: Annotated[str, typer.Option(help="Who approves (recorded with the decision).")],
    comment: Annotated[str, typer.Option(help="Why.")] = "",
    role: Annotated[
        str | None, typer.Option(help="The role you approve in; it must be yours in the policy's `roles`.")
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Approve the proposed remediation of a paused investigation (resumes it from its checkpoint).

    The remediation policy decides what then happens: a dry run, or the action itself, followed by a
    check that the problem is gone. Nobody approves their own request.

    Example:  opscopilot approvals approve inv-20261122-212011-38db01 --approver alice --role dba
    """
    _decide(thread_id, "approve", approver, comment, config, role)


@approvals_app.command("reject")
def approvals_reject(
    thread_id: Annotated[str, typer.Argument(help="The thread id printed by ask/investigate.")],
    approver: Annotated[str, typer.Option(help="Who rejects (recorded with the decision).")],
    comment: Annotated[str, typer.Option(help="Why.")] = "",
    config: ConfigOpt = None,
) -> None:
    """Reject the proposed remediation; nothing is run."""
    _decide(thread_id, "reject", approver, comment, config)


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    app()


if __name__ == "__main__":
    main()
