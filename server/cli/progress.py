"""Progress on stderr while an investigation runs: plan, tools, specialists, model tokens."""

from __future__ import annotations

from agents.events import FollowUpAsked, ToolFinished
from graphs.events import Explaining, ModelToken, PlanMade, SpecialistFinished
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
