"""`ask`, `investigate` and `demo`: thin clients of the investigation lifecycle."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from server.cli.base import (
    EXAMPLE_SCENARIO,
    OPS,
    PROCESS_START,
    AsOpt,
    ConfigOpt,
    ModelOpt,
    ScenarioOpt,
    app,
    check_model,
    err,
    fail,
    load,
    open_service,
    out,
    requester,
    scenario,
)
from server.cli.pictures import picture_lines
from server.cli.progress import ProgressPrinter

QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print only the answer.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the answer and structured report as JSON.")]


def _source_ref(settings: Any, scenario_file: Path | None) -> tuple[str, Any]:
    """The scenario's world (and clock), or the live estate of the settings."""
    from server import runtime

    if scenario_file is not None:
        sc = scenario(scenario_file)
        return runtime.scenario_ref(scenario_file), sc
    est = settings.estate
    if est.empty and est.knowledge_seed is None and settings.knowledge.chroma_path is None:
        fail(
            "no live sources are configured: add an `estate` section to the settings "
            "(see config/settings.yaml), or replay a recorded world with --scenario FILE"
        )
    return "live", None


def run_investigations(
    settings: Any, news: list[Any], model: str | None, quiet: bool, as_json: bool
) -> list[dict[str, Any]]:
    """Create and run each investigation through the lifecycle, printing progress and answers."""
    from server.events import Clock, RunDone, RunFailed

    printer = ProgressPrinter(quiet=quiet or as_json)
    results: list[dict[str, Any]] = []
    clock = Clock(PROCESS_START)
    with open_service(settings, model) as svc:
        for new in news:
            try:
                inv_id = svc.create(new)
            except ValueError as exc:
                fail(str(exc))
            last: Any = None
            for ev in svc.stream(inv_id, clock=clock):
                printer(ev)
                last = ev.body
            view = svc.get(inv_id) or {}
            results.append(view)
            if isinstance(last, RunFailed):
                fail(last.message, code=1)
            assert isinstance(last, RunDone)
            if as_json:
                continue
            out.print(last.answer, markup=False)
            if view.get("pictures") and not quiet:
                sketch = "\n".join(picture_lines(view["pictures"]))
                out.print(f"\nPictures:\n{sketch}", markup=False, highlight=False)
            if last.pending_approval and last.approval_id:
                fp = (view.get("approval") or {}).get("fingerprint", "")[:16]
                out.print(
                    f"\nAwaiting approval {last.approval_id} (investigation {inv_id}, fingerprint {fp}…)."
                    f" Another person approves with:\n"
                    f"  {OPS} approvals approve {last.approval_id} --as THEIR_NAME --comment WHY\n"
                    f"or rejects with:  {OPS} approvals reject {last.approval_id} --as THEIR_NAME\n"
                    + (
                        "An approval of this replayed scenario rehearses the action against the recorded "
                        "evidence (a dry run): nothing real is touched."
                        if view.get("origin") == "replay"
                        else "The remediation policy (config/policy.yaml) decides what an approval runs: a "
                        "dry run, or the action itself, then a check that the problem is gone."
                    ),
                    markup=False,
                )
        svc.store.close()
    if as_json:
        keys = (
            "id", "status", "headline", "answer", "route", "findings", "evidence", "citations", "coverage",
            "checked", "chain", "window", "proposals", "approval", "notes", "model", "tokens", "timings",
        )  # fmt: skip
        docs = [{k: r.get(k) for k in keys} | {"thread_id": r.get("id")} for r in results]
        out.print_json(json.dumps(docs[0] if len(docs) == 1 else docs, default=str))
    elif not quiet:
        err.print(
            f"[dim]finished in {time.perf_counter() - PROCESS_START:.1f}s (wall time of this command)[/]"
        )
    return results


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="What you want to know, in plain words.")],
    scenario_file: ScenarioOpt = None,
    model: ModelOpt = None,
    config: ConfigOpt = None,
    as_: AsOpt = None,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Ask a question; progress streams to stderr, the answer to stdout.

    Example:

        .venv/bin/opscopilot ask "Why is checkout timing out on sql-prod-01?"
            --scenario evals/scenarios/demo-checkout-blocking.yaml --model none
    """
    from server.investigations import NewInvestigation

    if not question.strip():
        fail('the question is empty: ask something, e.g. "why is checkout slow on sql-prod-01?"')
    who = requester(as_)
    if not quiet and not as_json:
        err.print(f"[dim]{0.0:6.2f}s opscopilot ask: loading the sources and the model ...[/]")
    settings = load(config)
    check_model(settings, model)
    ref, sc = _source_ref(settings, scenario_file)
    new = NewInvestigation(question=question, requester=who, source_ref=ref, now=sc.now if sc else None)
    run_investigations(settings, [new], model, quiet, as_json)


@app.command()
def investigate(
    alert_file: Annotated[
        Path | None,
        typer.Argument(
            help="The webhook body as JSON (or {source, payload}); default: the scenario's alert."
        ),
    ] = None,
    scenario_file: ScenarioOpt = None,
    source: Annotated[
        str | None,
        typer.Option(
            help="alertmanager | grafana | elastic_watcher | generic. Default: detected from the body."
        ),
    ] = None,
    model: ModelOpt = None,
    config: ConfigOpt = None,
    as_: AsOpt = None,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Investigate an alert the way a webhook would trigger it. Each distinct entity among the
    firing alerts gets its own investigation; a body whose alerts are all resolved starts none.

    Examples:

        .venv/bin/opscopilot investigate --scenario evals/scenarios/network-interface-down-alertmanager.yaml

        .venv/bin/opscopilot investigate examples/alerts/alertmanager-checkout-blocking.json
            --scenario evals/scenarios/demo-checkout-blocking.yaml --model none
    """
    from graphs.alerts import AlertError
    from server.intake import split_by_entity
    from server.investigations import NewInvestigation

    who = requester(as_)
    settings = load(config)
    check_model(settings, model)
    ref, sc = _source_ref(settings, scenario_file)
    if alert_file is not None:
        source, body = read_alert(alert_file, source)
        where = str(alert_file)
    elif sc is not None and sc.input.alert is not None:
        source, body, where = source or sc.input.alert.source, sc.input.alert.payload, str(scenario_file)
    else:
        fail("give an ALERT_FILE, or a --scenario whose input is an alert")
    try:
        groups, resolved = split_by_entity(source, body)
    except AlertError as exc:
        fail(f"{where}: {exc}")
    if not groups:
        out.print(f"{where}: all {resolved} alert(s) are resolved: nothing to investigate", markup=False)
        return
    if len(groups) > 1 and not quiet:
        names = ", ".join(g[0].entity or "(no entity)" for g in groups)
        err.print(f"[dim]{len(groups)} entities in this alert body ({names}): one investigation each[/]")
    news = [
        NewInvestigation(
            kind="alert",
            alert=group[0].model_dump(mode="json"),
            requester=who,
            source_ref=ref,
            now=sc.now if sc else None,
        )
        for group in groups
    ]
    run_investigations(settings, news, model, quiet, as_json)


def read_alert(alert_file: Path, source: str | None) -> tuple[str | None, dict[str, Any]]:
    """A webhook body from a file: the raw JSON, or {source, payload} as scenarios hold it."""
    try:
        body = json.loads(alert_file.read_text(encoding="utf-8"))
    except OSError as exc:
        fail(f"{alert_file}: cannot read file ({exc.strerror})")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        fail(f"{alert_file}: not valid JSON: {exc}")
    if isinstance(body, dict) and set(body) >= {"source", "payload"} and isinstance(body["payload"], dict):
        source, body = source or body["source"], body["payload"]
    if not isinstance(body, dict):
        fail(f"{alert_file}: an alert body must be a JSON object")
    return source, body


@app.command()
def demo(
    model: ModelOpt = None,
    config: ConfigOpt = None,
    as_: AsOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Run a bundled incident end to end on the embedded defaults (no servers needed).

    Checkout requests time out against sql-prod-01: the copilot should find the head blocker,
    cite the past incident and stop a kill_session proposal at the approval gate.

    Example:  .venv/bin/opscopilot demo --model none
    """
    from server import runtime
    from server.investigations import NewInvestigation

    who = requester(as_)
    settings = load(config)
    check_model(settings, model)
    sc = scenario(runtime.DEMO_SCENARIO)
    if not quiet:
        err.print(f"[bold]demo:[/] {sc.title} (scenario {EXAMPLE_SCENARIO}, clock {sc.now:%Y-%m-%d %H:%M}Z)")
    new = NewInvestigation(
        question=sc.input.question,
        requester=who,
        source_ref=runtime.scenario_ref(runtime.DEMO_SCENARIO),
        now=sc.now,
    )
    run_investigations(settings, [new], model, quiet, False)
