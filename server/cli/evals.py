"""`eval`, `doctor` and `record`: scoring scenarios, checking live sources, recording incidents."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from server.cli.base import ConfigOpt, ModelOpt, ScenarioOpt, app, check_model, err, fail, load, out, scenario
from server.cli.investigate import read_alert
from server.cli.progress import ProgressPrinter


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
    Example:  .venv/bin/opscopilot eval evals/scenarios --model none --json var/eval.json
    """
    from evals.loader import ScenarioError, load_scenarios
    from evals.report import pass_line, summary, writable_json_path, write_json
    from evals.runner import run_all
    from server import runtime

    settings = load(config)
    check_model(settings, model)
    if json_file is not None and (why := writable_json_path(json_file)):
        fail(f"--json {json_file}: {why}")
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
    out.print(pass_line(results))
    if json_file:
        try:
            write_json(json_file, data)
        except OSError as exc:
            fail(f"--json {json_file}: cannot write it ({exc.strerror or exc})")
        err.print(f"[dim]wrote {json_file}[/]")


@app.command()
def doctor(
    config: ConfigOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the checks as JSON.")] = False,
) -> None:
    """Check every configured live source: reachable, authenticated, enough permissions, latency,
    circuit state, and what to fix. Exits 1 when any source needs attention.

    Example (checks the live `estate` of your settings file):

        .venv/bin/opscopilot doctor --config config/settings.yaml
    """
    from rich.table import Table

    from server import runtime
    from server.settings import SettingsError, load_settings

    def refuse(message: str) -> NoReturn:
        if as_json:
            out.print_json(json.dumps({"ok": False, "error": message, "checks": []}))
            raise typer.Exit(2)
        fail(message)

    try:
        settings = load_settings(config)
    except SettingsError as exc:
        refuse(str(exc))
    try:
        sources = runtime.live_sources(settings)
    except runtime.NoLiveSources as exc:
        refuse(str(exc))
    rows = runtime.doctor_checks(sources)
    bad = [r for r in rows if not r.ok]
    if as_json:
        out.print_json(json.dumps({"ok": not bad, "checks": [{**r.model_dump(), "ok": r.ok} for r in rows]}))
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
    scenario_file: ScenarioOpt = None,
    model: ModelOpt = "none",
    config: ConfigOpt = None,
) -> None:
    """Snapshot the live sources around an entity and time window into a SPEC v1 scenario, so a
    real incident becomes an evaluation case. What the tools read is recorded; the expectations
    are what this run concluded (review them).

    Example:

        .venv/bin/opscopilot record --question "why is checkout blocked?" -e pg-orders-01
            --out evals/scenarios/incident-2026-05-02.yaml
    """
    from evals.loader import ScenarioError, load_scenario
    from evals.record import Recorder, build_scenario, recording_sources, slug, write_scenario
    from graphs.alerts import AlertError
    from graphs.copilot import make_input
    from server import runtime
    from server.investigations import run_ephemeral

    settings = load(config)
    check_model(settings, model)
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
    if scenario_file is not None:
        sc = scenario(scenario_file)
        sources, now = runtime.scenario_sources(settings, sc), sc.now
    else:
        try:
            sources, now = runtime.live_sources(settings), None
        except runtime.NoLiveSources as exc:
            fail(str(exc))
    now = now or datetime.now(UTC).replace(microsecond=0)
    rec = Recorder()
    recorded = recording_sources(sources, rec)
    alert_doc = None
    try:
        if alert_file is not None:
            source, body = read_alert(alert_file, None)
            graph_input = make_input(alert_source=source, alert_payload=body, now=now)
            alert_doc = {"source": graph_input["alert"]["source"], "payload": body}  # type: ignore[index]
        else:
            graph_input = make_input(question=question, now=now)
    except AlertError as exc:
        fail(f"{alert_file}: {exc}")
    handle = runtime.open_model(settings, model)
    values = run_ephemeral(settings, dict(graph_input), recorded, handle, ProgressPrinter())
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
        f"Replay it with: .venv/bin/opscopilot eval {out_file} --model none"
    )
