"""`opscopilot audit verify | export | show | head`: the hash-chained audit log of remediations."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from server.cli.base import ConfigOpt, app, err, fail, load, out

audit_app = typer.Typer(
    help=(
        "The audit log of remediations: every proposal, decision (refused ones too), execution and "
        "verification, hash-chained so that an edited, reordered or deleted entry is detected. It lives "
        "in the service's store (service.store_url, else the SQLite file in data_dir)."
    ),
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
)
app.add_typer(audit_app, name="audit")

StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="Another store to read: a SQLite file (e.g. a copy) or postgresql://... Default: the settings'.",
    ),
]


def _open(config: Path | None, store: str | None) -> Any:
    from server.actions_wiring import open_audit

    settings = load(config)
    if store is not None and not store.startswith(("postgres", "sqlite:///")) and not Path(store).is_file():
        fail(f"--store {store}: no such file (give a SQLite file or a postgresql:// URL)")
    try:
        return open_audit(settings, store)
    except Exception as exc:  # a wrong URL or an unreadable file is the user's to fix
        fail(f"cannot open the audit log in {store or 'the configured store'}: {exc}")


@audit_app.command("verify")
def verify(
    config: ConfigOpt = None,
    store: StoreOpt = None,
    file: Annotated[
        Path | None, typer.Option("--file", help="Verify an export (JSON lines) instead of a store.")
    ] = None,
    expect_head: Annotated[
        str | None,
        typer.Option(
            "--expect-head",
            help="SEQ:HASH recorded earlier (`audit head`): also catches entries cut off the end.",
        ),
    ] = None,
) -> None:
    """Check the whole chain: no entry edited, reordered or deleted. Names the first bad entry and exits 1;
    exits 0 when the log is intact.

    Example:  .venv/bin/opscopilot audit verify
    """
    from graphs.audit import read_jsonl, verify_chain

    if file is not None:
        if not file.is_file():
            fail(f"--file {file}: no such file")
        try:
            entries = list(read_jsonl(file))
        except ValueError as exc:
            fail(f"{file}: not an audit export (JSON lines of entries): {str(exc).splitlines()[0]}")
        where = str(file)
    else:
        log = _open(config, store)
        entries = list(log.entries())
        where = log.db.where
        log.close()
    count, problem = verify_chain(entries)
    if problem is not None:
        out.print(f"audit log {where}: TAMPERED at entry {problem.seq}: {problem.problem}", markup=False)
        raise typer.Exit(1)
    head = (entries[-1].seq, entries[-1].hash) if entries else (0, "0" * 64)
    if expect_head:
        seq, _, digest = expect_head.partition(":")
        if not seq.isdigit() or not digest:
            fail("--expect-head must be SEQ:HASH as `opscopilot audit head` prints it")
        known = {e.seq: e.hash for e in entries}
        if known.get(int(seq)) != digest:
            out.print(
                f"audit log {where}: TAMPERED: entry {seq} with hash {digest[:16]}... is not in the log "
                f"(it ends at entry {head[0]}): entries were cut off or replaced",
                markup=False,
            )
            raise typer.Exit(1)
    out.print(f"audit log {where}: OK, {count} entries, head {head[0]}:{head[1]}", markup=False)


@audit_app.command("head")
def head(config: ConfigOpt = None, store: StoreOpt = None) -> None:
    """Print the last entry's SEQ:HASH; keep it elsewhere to prove later that nothing was cut off the end.

    Example:  .venv/bin/opscopilot audit head
    """
    log = _open(config, store)
    seq, digest = log.head()
    log.close()
    out.print(f"{seq}:{digest}", markup=False)


@audit_app.command("export")
def export(
    config: ConfigOpt = None,
    store: StoreOpt = None,
    out_file: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write here (default: stdout).")
    ] = None,
    thread: Annotated[
        str | None, typer.Option(help="Only this investigation's entries (its inv-... id).")
    ] = None,
) -> None:
    """Write the entries as JSON lines (one entry a line, with seq, prev_hash and hash), oldest first.

    Example:  .venv/bin/opscopilot audit export --out var/audit.jsonl
    """
    log = _open(config, store)
    lines = [e.model_dump_json() for e in log.entries(thread)]
    log.close()
    text = "".join(line + "\n" for line in lines)
    if out_file is None:
        sys.stdout.write(text)
        return
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text(text, encoding="utf-8")
    err.print(f"[dim]wrote {len(lines)} entries to {out_file}[/]")


@audit_app.command("show")
def show(
    config: ConfigOpt = None,
    store: StoreOpt = None,
    thread: Annotated[
        str | None, typer.Option(help="Only this investigation's entries (its inv-... id).")
    ] = None,
    limit: Annotated[int, typer.Option(help="The last N entries.")] = 50,
) -> None:
    """Print the entries, one a line: seq, time, kind, actor, what, note.

    Example:  .venv/bin/opscopilot audit show --limit 20
    """
    log = _open(config, store)
    entries = list(log.entries(thread))[-limit:]
    log.close()
    for e in entries:
        out.print(audit_line(e), markup=False)
    if not entries:
        out.print("no audit entries" + (f" for {thread}" if thread else ""))


def audit_line(e: Any) -> str:
    d = e.details
    what = " ".join(str(d[k]) for k in ("action", "target") if d.get(k)) or d.get("record") or ""
    note = d.get("note") or d.get("reason") or d.get("detail") or ""
    if e.kind == "decision":
        note = f"{d.get('decision')} {('as ' + d['role']) if d.get('role') else ''}".strip()
    return (
        f"{e.seq:>5} {e.at[:19]} {e.kind:<20} {e.actor:<16} {what} {('- ' + note) if note else ''}".rstrip()
    )
