"""Untrusted text (log lines, SQL, tags, alert labels) shown as quoted data, never as our own words."""

from __future__ import annotations

import json

MAX_DEFAULT = 200


def untrusted(text: str, limit: int = MAX_DEFAULT) -> str:
    """`text` cut to `limit` characters, control characters escaped: safe to show in one line.

    The result is what the data said, not what the copilot says; callers that mix it with their own
    words use :func:`quoted`."""
    flat = " ".join(str(text).split())
    if len(flat) > limit:
        flat = flat[: max(1, limit - 1)] + "…"
    return "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in flat)


def quoted(text: str, limit: int = MAX_DEFAULT) -> str:
    """`untrusted(text)` inside double quotes, with inner quotes escaped (JSON string rules)."""
    return json.dumps(untrusted(text, limit), ensure_ascii=False)


QUOTED_SPAN = 80


def cut_quoted(text: str, limit: int = MAX_DEFAULT, span: int = QUOTED_SPAN) -> str:
    """Our own sentence with the data it quotes ("..." spans: a log line, SQL, a tag) cut to `span`
    characters each, then the whole cut to `limit`: a quoted log line stays visibly a quotation and
    cannot take over a headline or an approval's reason."""
    import re

    def shorten(m: re.Match[str]) -> str:
        inner = m.group(1)
        return f'"{inner[: span - 1]}…"' if len(inner) > span else m.group(0)

    return untrusted(re.sub(r'"([^"]*)"', shorten, str(text)), limit)
