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
