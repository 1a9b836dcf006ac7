"""The `opscopilot` command line: ask, investigate, eval, demo, doctor, record, the approval queue,
the audit log, the HTTP service (`serve`), workers and API tokens."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from server.cli import approvals, audit, evals, investigate, service  # noqa: F401  (registers the commands)
from server.cli.base import app, out
from server.cli.kb import app as kb_app

app.add_typer(kb_app, name="kb")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            out.print(f"opscopilot {version('opscopilot')}")
        except PackageNotFoundError:
            out.print("opscopilot (not installed as a package)")
        raise typer.Exit(0)


@app.callback()
def _root(
    _version_flag: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """An AI copilot for database and infrastructure operations."""


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    app()


__all__ = ["app", "main"]
