"""The Typer app, its shared options and the helpers every command uses (settings, errors, who asks)."""

from __future__ import annotations

import getpass
import logging
import sys
import time
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

PROCESS_START = time.perf_counter()  # wall time is reported from here, honestly

EXAMPLE_SCENARIO = "evals/scenarios/demo-checkout-blocking.yaml"
OPS = ".venv/bin/opscopilot"  # how the examples call the command from a fresh checkout

app = typer.Typer(
    name="opscopilot",
    help=(
        "An AI copilot for database and infrastructure operations.\n\n"
        "It plans which specialists to consult (database, logs, metrics, network, itsm, knowledge), "
        "gathers evidence from read-only tools, runs deterministic analyzers, cites past incidents and "
        "proposes a remediation that stops at a human approval gate. A model (embedded local Qwen, "
        "Ollama or any OpenAI-compatible server) explains; without one the copilot still answers.\n\n"
        f"Start with:  {OPS} demo   (or put .venv/bin on your PATH: export PATH=$PWD/.venv/bin:$PATH)"
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)
approvals_app = typer.Typer(
    help="The approval queue: list pending remediations, approve or reject them.",
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
)
tokens_app = typer.Typer(
    help="API tokens: create (printed once; only a hash is stored), list, revoke.",
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
)
app.add_typer(approvals_app, name="approvals")
app.add_typer(tokens_app, name="tokens")

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
AsOpt = Annotated[
    str | None,
    typer.Option("--as", help="Who is asking (recorded on the investigation). Default: your OS user name."),
]


def fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", markup=True, highlight=False)
    raise typer.Exit(code)


def requester(name: str | None) -> str:
    who = (name if name is not None else _os_user()).strip()
    if not who:
        fail("--as must name who is asking (a blank name is refused)")
    return who


def _os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in this environment (e.g. a bare container)
        return "cli"


def load(config: Path | None) -> Any:
    """The settings, and the remediation policy they name, both validated: a bad one exits 2."""
    from graphs.policy import PolicyError
    from server.actions_wiring import load_action_policy
    from server.settings import SettingsError, load_settings

    try:
        settings = load_settings(config)
        load_action_policy(settings)
    except (SettingsError, PolicyError) as exc:
        fail(str(exc))
    logging.basicConfig(
        level=getattr(logging, str(settings.log_level).upper(), logging.WARNING), stream=sys.stderr
    )
    return settings


def scenario(path: Path) -> Any:
    from evals.loader import ScenarioError, load_scenario

    try:
        return load_scenario(path)
    except ScenarioError as exc:
        fail(str(exc))


def check_model(settings: Any, model: str | None) -> None:
    """A malformed --model is the user's mistake: a message and exit 2, never a traceback."""
    from agents.llm import parse_spec

    if model is not None:
        try:
            parse_spec(model)
        except ValueError as exc:
            fail(f"--model {model!r}: {exc}")


def open_service(settings: Any, model: str | None = None) -> Any:
    """The investigation lifecycle on the settings' store (closed by the caller)."""
    from server import runtime
    from server.investigations import Investigations
    from server.store import StoreError

    try:
        store = runtime.open_store(settings)
    except StoreError as exc:
        fail(str(exc))
    return Investigations(settings, store, model_override=model)
