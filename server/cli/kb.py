"""`opscopilot kb`: ingest past incidents and runbooks, search them, and show what the store holds."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from server.cli.base import ConfigOpt, err, fail, load, out

app = typer.Typer(
    help=(
        "The knowledge base: past incidents and runbooks that investigations cite.\n\n"
        "Examples:\n\n"
        "    opscopilot kb ingest docs/knowledge\n\n"
        '    opscopilot kb search "slow commits, WRITELOG waits on sql-prod-10"\n\n'
        "    opscopilot kb stats"
    ),
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def _settings(config: Path | None) -> Any:
    return load(config)


def _store(settings: Any) -> Any:
    from server.knowledge import knowledge_store
    from tools.knowledge.store import KnowledgeStoreError

    try:
        return knowledge_store(settings)
    except KnowledgeStoreError as exc:
        fail(str(exc))


@contextmanager
def _progress(quiet: bool) -> Iterator[Callable[[int, str], Callable[[int], None]] | None]:
    """A progress bar factory on stderr, (total, what) -> advance(n); None when quiet."""
    if quiet:
        yield None
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
    ) as bar:

        def start(total: int, what: str) -> Callable[[int], None]:
            task = bar.add_task(what, total=total)
            return lambda n: bar.advance(task, n)

        yield start


@app.command()
def ingest(
    path: Annotated[
        Path | None,
        typer.Argument(help="A Markdown/YAML/JSON file or a folder of them (searched recursively)."),
    ] = None,
    servicenow: Annotated[
        bool,
        typer.Option("--servicenow", help="Resolved incidents from estate.servicenow (with work notes)."),
    ] = False,
    jira: Annotated[
        bool, typer.Option("--jira", help="Resolved issues from estate.jira (with comments).")
    ] = False,
    full: Annotated[
        bool,
        typer.Option(
            "--full", help="ServiceNow/Jira: read everything, not only what changed since the last run."
        ),
    ] = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit 2 when any file or entry was skipped.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Add or update documents (by id; unchanged ones are left alone, so running it twice changes nothing).

    Markdown files start with front matter (`id`, `title`, `kind: postmortem|runbook`, `services`,
    `cis`, `tags`, `date`, `url`); their `## Symptoms`, `## Root cause`, `## Resolution` and
    `## Steps` sections fill those fields, long documents are indexed section by section. YAML/JSON
    files hold a list in the SPEC `past_incidents` shape. A file that cannot be read is named with
    the reason and skipped; the others are ingested.

    `--servicenow` and `--jira` read resolved records from the systems under `estate` in the
    settings, only those updated since the last run unless `--full` is given.

    Examples:

        opscopilot kb ingest docs/knowledge

        opscopilot kb ingest docs/knowledge/incidents.yaml --quiet
    """
    chosen = [
        name
        for name, on in (("PATH", path is not None), ("--servicenow", servicenow), ("--jira", jira))
        if on
    ]
    if not chosen:
        fail("say what to ingest: a PATH (file or folder), --servicenow or --jira")
    if path is not None and not path.exists():
        fail(f"{path} does not exist: give a Markdown/YAML/JSON file or a folder of them")
    settings = _settings(config)
    from server.knowledge import TicketSourceError, ingest_from_itsm
    from tools.knowledge.ingest import ingest_path
    from tools.sources import SourceError

    store = _store(settings)
    reports: dict[str, Any] = {}
    with _progress(quiet or as_json) as progress:
        if path is not None:
            reports[str(path)] = ingest_path(store, path, progress)
        for system, wanted in (("servicenow", servicenow), ("jira", jira)):
            if not wanted:
                continue
            try:
                reports[system] = ingest_from_itsm(settings, store, system, full=full, progress=progress)
            except TicketSourceError as exc:
                fail(str(exc))
            except SourceError as exc:
                fail(f"{system}: {exc}", code=1)
    skipped = [s for r in reports.values() for s in r.skipped]
    if as_json:
        out.print_json(
            json.dumps(
                {
                    name: {
                        "added": r.added, "updated": r.updated, "unchanged": r.unchanged, "chunks": r.chunks,
                        "skipped": [{"file": f, "reason": why} for f, why in r.skipped],
                        "seconds": round(r.seconds, 2),
                    }
                    for name, r in reports.items()
                }
            )
        )  # fmt: skip
    else:
        for name, r in reports.items():
            out.print(f"{name}: {r.summary()}")
        for file, why in skipped:
            err.print(f"[yellow]skipped[/] {file}: {why}")
        out.print(f"store: {store.size()} documents in collection {store.collection_name!r}")
    if strict and skipped:
        raise typer.Exit(2)


@app.command()
def search(
    text: Annotated[
        str, typer.Argument(help="Symptoms, an alert, an error code, a host or a ticket number.")
    ],
    service: Annotated[
        list[str] | None, typer.Option("--service", "-s", help="Only these services (repeatable).")
    ] = None,
    ci: Annotated[
        list[str] | None, typer.Option("--ci", help="Only these configuration items (repeatable).")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Only incidents on or after this date (2025-01-31).")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Only incidents on or before this date.")] = None,
    kind: Annotated[str, typer.Option(help="incident, runbook or all.")] = "all",
    k: Annotated[int, typer.Option("--top", "-k", min=1, max=50, help="How many of each kind.")] = 5,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Search past incidents and runbooks (meaning and exact words, fused).

    Examples:

        opscopilot kb search "slow commits, WRITELOG waits on sql-prod-10"

        opscopilot kb search "error 9002" --service sql-prod-01
    """
    from tools.knowledge.retrieval import Query
    from tools.world import parse_ts

    kinds = {"incident": ("incident",), "runbook": ("runbook",), "all": ("incident", "runbook")}.get(kind)
    if kinds is None:
        fail(f"--kind {kind!r}: use incident, runbook or all")
    bounds = {}
    for name, value in (("--since", since), ("--until", until)):
        if value:
            try:
                bounds[name] = parse_ts(value)
            except (ValueError, TypeError):
                fail(f"{name} {value!r} is not a date: use YYYY-MM-DD or an ISO timestamp")
    store = _store(_settings(config))
    hits = []
    for one in kinds:
        hits += store.retrieve(
            Query(
                text=text, k=k, kinds=(one,), services=tuple(service or ()), cis=tuple(ci or ()),
                since=bounds.get("--since"), until=bounds.get("--until"),
            )
        )  # fmt: skip
    if as_json:
        out.print_json(json.dumps([h.as_dict() for h in hits]))
        return
    if not hits:
        out.print(f"nothing found in {store.size()} documents")
        return
    for h in hits:
        when = f"{h.doc.occurred_at:%Y-%m-%d} " if h.doc.occurred_at else ""
        out.print(f"{h.doc.kind:8} {h.doc.id:16} {h.score:.2f}  {when}{h.doc.title}")
        if h.doc.kind == "incident" and h.doc.resolution:
            out.print(f"{'':26}last time, this fixed it: {h.doc.resolution}")
        for i, step in enumerate(h.doc.steps, start=1):
            out.print(f"{'':26}[ ] {i}. {step}")
        if h.doc.url:
            out.print(f"{'':26}{h.doc.url}")


@app.command()
def stats(as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """What the knowledge store holds: documents by kind and source, chunks, the embedding model.

    Example:

        opscopilot kb stats
    """
    info = _store(_settings(config)).stats()
    if as_json:
        out.print_json(json.dumps(info))
        return
    for key, value in info.items():
        out.print(f"{key}: {value}")
