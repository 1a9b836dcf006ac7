"""Progress on stderr while an investigation runs: plan, tools, specialists, model tokens."""

from __future__ import annotations

from rich.markup import escape

from agents.events import FollowUpAsked, ToolFinished
from graphs.events import (
    ActionApproved,
    ActionExecuted,
    ActionExecuting,
    ActionRefused,
    ActionRejected,
    ActionVerified,
    Explaining,
    ModelToken,
    PlanMade,
    SpecialistFinished,
)
from server.cli.base import err
from server.events import ApprovalRequired, Event, RunFailed, RunStarted


class ProgressPrinter:
    """Shows which specialists and tools run and how long they take; streams model tokens."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.streaming = False

    def __call__(self, ev: Event) -> None:
        if self.quiet:
            return
        d, t = ev.body, f"[dim]{ev.elapsed_s:6.2f}s[/]"
        if isinstance(d, ModelToken):
            if not self.streaming:
                err.print(f"{t} [magenta]model[/] ", end="")
                self.streaming = True
            err.out(d.text, end="", highlight=False)
            return
        if self.streaming:
            err.print()
            self.streaming = False
        if isinstance(d, RunStarted):
            err.print(f"{t} [bold]started[/] {d.investigation_id} ({d.kind}) on {d.sources}")
        elif isinstance(d, PlanMade):
            ents = ", ".join(f"{e.name} ({'/'.join(e.kinds) or '?'})" for e in d.entities) or "none named"
            err.print(f"{t} [bold]plan[/] entities: {ents}", markup=True)
            if d.scope:
                err.print(f"{t}   {d.scope}" + (f"; intent: {', '.join(d.intent)}" if d.intent else ""))
            for s in d.specialists:
                err.print(f"{t}   → [cyan]{s.name}[/]: {'; '.join(s.reasons)}")
        elif isinstance(d, ToolFinished):
            status = f"[red]{d.error}[/]" if d.error else f"{d.findings} finding(s)"
            err.print(f"{t}   [cyan]{d.specialist}[/] {d.tool}({d.entity}) {d.seconds:.2f}s: {status}")
        elif isinstance(d, FollowUpAsked):
            why = f"follow-up: {d.reason}" if d.reason else "follow-up asked by the model"
            err.print(f"{t}   [cyan]{d.specialist}[/] {why}: {d.tool or 'playbook'}({d.entity})")
        elif isinstance(d, SpecialistFinished):
            err.print(f"{t} [cyan]{d.specialist}[/] done in {d.seconds:.2f}s ({d.findings} findings)")
        elif isinstance(d, Explaining):
            err.print(f"{t} asking {d.model} to explain the findings ...")
        elif isinstance(d, ApprovalRequired):
            props = d.request.get("proposals", [])
            err.print(
                f"{t} [yellow]approval required[/] for {len(props)} action(s); nothing has been executed"
            )
        elif isinstance(d, RunFailed):
            err.print(f"{t} [red]{d.message}[/]")
        else:
            line = action_line(d)
            if line:
                err.print(f"{t} {line}")


def action_line(d: object) -> str | None:
    """One progress line for an event of the remediation lifecycle (rich markup; data escaped)."""
    if isinstance(d, ActionApproved):
        who = "the policy (auto-approved)" if d.auto else ", ".join(d.by)
        return f"[green]approved[/] {escape(d.action)} {escape(d.target)} by {escape(who)}"
    if isinstance(d, ActionRejected):
        return f"[yellow]{d.state}[/] {escape(d.action)} {escape(d.target)}: {escape(d.note)}"
    if isinstance(d, ActionRefused):
        what = f"{escape(d.action)} {escape(d.target or '')} " if d.action else ""
        return f"[red]refused[/] ({d.stage}) {what}{escape(d.reason)}"
    if isinstance(d, ActionExecuting):
        mode = "dry run of" if d.dry_run else "running"
        return f"[bold]{mode}[/] {escape(d.action)} {escape(d.target)} ..."
    if isinstance(d, ActionExecuted):
        colour = {"executed": "green", "dry_run": "cyan", "failed": "red"}[d.outcome]
        return f"[{colour}]{d.outcome}[/] {escape(d.action)} {escape(d.target)}: {escape(d.detail)}"
    if isinstance(d, ActionVerified):
        verdict = "[green]verified[/]" if d.resolved else "[red]not resolved[/]"
        return f"{verdict} {escape(d.action)} {escape(d.target)}: {escape(d.summary)}"
    return None
