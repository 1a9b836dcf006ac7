"""Render prompt files (prompts/*.jinja2) into chat messages: one helper, StrictUndefined, shared partials."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"


@lru_cache(maxsize=1)
def _env() -> Environment:
    return Environment(
        loader=FileSystemLoader(str(PROMPTS_DIR)),
        undefined=StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )


def render_messages(template: str, **variables: Any) -> list[BaseMessage]:
    """A prompt file defines `{% block system %}` and `{% block user %}`; both are rendered."""
    tmpl = _env().get_template(template)
    ctx = tmpl.new_context(variables)
    system = "".join(tmpl.blocks["system"](ctx)).strip()
    user = "".join(tmpl.blocks["user"](ctx)).strip()
    return [SystemMessage(content=system), HumanMessage(content=user)]
