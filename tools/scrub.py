"""Scrub secrets from error and log text by the fields known to carry them, never by bare substring.

A password is replaced where a field names it (``PWD=...``, ``password: ...``, ``token=...``) or
where a URL carries it (``scheme://user:PASSWORD@host``). Masking every occurrence of a secret's
value anywhere would turn a one-letter password into "fi*** the password reference".
"""

from __future__ import annotations

import re

_FIELD = re.compile(
    r"(?i)\b(pwd|password|passwd|api[_-]?key|api[_-]?token|token|secret|community|auth[_-]?key|priv[_-]?key)"
    r"(\s*[=:]\s*)(\{(?:[^}]|\}\})*\}|\"[^\"]*\"|'[^']*'|[^;,&\s]+)"
)
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/:@\s]*:)([^@/\s]+)(@)")
MASK = "***"


def scrub(text: str) -> str:
    """`text` with every field-carried secret and URL password replaced by ***."""
    text = _URL_PASSWORD.sub(lambda m: f"{m.group(1)}{MASK}{m.group(3)}", text)
    return _FIELD.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)


MIN_TOKEN_SECRET = 4  # a shorter secret is never searched for as a value: it would hit ordinary words


def scrub_values(text: str, secrets: list[str]) -> str:
    """`scrub(text)`, and each known secret replaced where it stands as a whole token (delimited by
    whitespace, quotes or the text's ends), never inside a word; secrets under 4 characters only by
    field."""
    text = scrub(text)
    for secret in secrets:
        if len(secret) >= MIN_TOKEN_SECRET:
            text = re.sub(rf"(?<![^\s\"'=:(\[]){re.escape(secret)}(?![^\s\"',;)\]])", MASK, text)
    return text


def has_inline_password(text: str) -> bool:
    """Whether a connection string or URL carries a literal password (PWD=..., user:pass@host)."""
    if _URL_PASSWORD.search(text):
        return True
    return any(m.group(1).lower() in ("pwd", "password", "passwd") for m in _FIELD.finditer(text))
