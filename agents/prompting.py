"""Render prompt files (prompts/*.jinja2) into chat messages: one helper, StrictUndefined, shared partials.

Every value a template interpolates passes through one gate before it reaches a model: secrets,
personal data and national identifiers are redacted (tools/redact.py) and tag-like text is
neutralised, so a log line containing ``</data>`` cannot close the wrapper it sits in. The
template's own text (the ``<data>`` markers) is not touched.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from tools.redact import neutralise_tags, redact_text

PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"


def safe_value(value: Any) -> Any:
    """What a prompt may contain of an interpolated value: redacted, with tags neutralised."""
    if value is None or isinstance(value, bool | int | float):
        return value
    return neutralise_tags(redact_text(str(value)))


@lru_cache(maxsize=1)
def _env() -> Environment:
    return Environment(
        loader=FileSystemLoader(str(PROMPTS_DIR)),
        undefined=StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        finalize=safe_value,
    )


def render_messages(template: str, **variables: Any) -> list[BaseMessage]:
    """A prompt file defines `{% block system %}` and `{% block user %}`; both are rendered."""
    tmpl = _env().get_template(template)
    ctx = tmpl.new_context(variables)
    system = "".join(tmpl.blocks["system"](ctx)).strip()
    user = "".join(tmpl.blocks["user"](ctx)).strip()
    return [SystemMessage(content=system), HumanMessage(content=user)]
