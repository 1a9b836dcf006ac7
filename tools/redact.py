"""Masking of personal data and SQL literals before evidence reaches a model, a report or a log."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

EMAIL = "<email>"
CARD = "<card>"
NATIONAL_ID = "<id>"

_EMAIL_RE = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
# 13-19 digits, single spaces or dashes allowed between digits; not part of a longer word or number.
_CARD_RE = re.compile(r"(?<![\w-])\d(?:[ -]?\d){12,18}(?![\w-])")
# Issuer prefixes of the card schemes (Visa, Mastercard, Amex, Discover, Diners, JCB, UnionPay, Maestro):
# a Luhn-valid 19-digit query hash or row id that no scheme issues is left alone.
_CARD_IIN_RE = re.compile(r"^(?:4|5[0-9]|2[2-7]|3[0-9]|6[0-9])")
_SSN_RE = re.compile(r"\b(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}\b")
_NINO_RE = re.compile(
    r"\b(?!BG|GB|KN|NK|NT|TN|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b"
)
_IBAN_RE = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")

_SQL_TOKEN_RE = re.compile(
    r"""
    (?P<comment>--[^\n]*|/\*.*?(?:\*/|\Z))
    |(?P<estring>[Ee]'(?:[^'\\]|''|\\.)*(?:'|\Z))
    |(?P<string>[NnXxBb]?'(?:[^']|'')*(?:'|\Z))
    |(?P<dollar>\$(?P<tag>[A-Za-z_]\w*|)\$.*?(?:\$(?P=tag)\$|\Z))
    |(?P<quoted>"(?:[^"]|"")*"|\[[^\]\n]*\]|`[^`\n]*`)
    |(?P<cast>::)
    |(?P<param>@@?\w+|\$\d+|:[A-Za-z_]\w*|\?)
    |(?P<hex>\b0[xX][0-9A-Fa-f]+\b)
    |(?P<word>[A-Za-z_\#][\w$\#]*)
    |(?P<number>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)
    """,
    re.VERBOSE | re.DOTALL,
)
_SQL_LITERALS = frozenset({"estring", "string", "dollar", "hex", "number"})
SQL_FIELDS = frozenset({"sql_text", "statement", "query_text", "sql", "query"})


def luhn_valid(digits: str) -> bool:
    """True when a string of digits passes the Luhn checksum that payment card numbers carry."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _iban_valid(candidate: str) -> bool:
    compact = candidate.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(number) % 97 == 1


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"[ -]", "", match.group())
    if 13 <= len(digits) <= 19 and _CARD_IIN_RE.match(digits) and luhn_valid(digits):
        return CARD
    return match.group()


def _iban(match: re.Match[str]) -> str:
    return NATIONAL_ID if _iban_valid(match.group()) else match.group()


def redact_text(text: str) -> str:
    """Mask e-mail addresses, payment card numbers (Luhn-checked) and national identifiers
    (US SSN, UK National Insurance number, IBAN) in free text."""
    if not text:
        return text
    if "@" in text:
        text = _EMAIL_RE.sub(EMAIL, text)
    text = _IBAN_RE.sub(_iban, text)
    text = _CARD_RE.sub(_card, text)
    text = _SSN_RE.sub(NATIONAL_ID, text)
    return _NINO_RE.sub(NATIONAL_ID, text)


def _sql_token(match: re.Match[str]) -> str:
    return "?" if match.lastgroup in _SQL_LITERALS else match.group()


def redact_sql(sql: str) -> str:
    """Replace string, binary and numeric literals in a SQL statement with ``?``.

    Identifiers (``Table1``, ``col2``, ``[Order Details]``, ``#temp``), parameters (``@p1``,
    ``$1``, ``:name``, ``?``), casts and comments (query hashes) are kept; the result then
    passes through :func:`redact_text`.
    """
    if not sql:
        return sql
    return redact_text(_SQL_TOKEN_RE.sub(_sql_token, sql))


def _redact_value(key: str, value: Any) -> Any:
    if isinstance(value, str):
        if key.endswith("hash"):
            return value
        return redact_sql(value) if key in SQL_FIELDS else redact_text(value)
    if isinstance(value, Mapping):
        return {k: _redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(key, v) for v in value]
    return value


def redact_evidence_rows(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Copies of evidence rows with SQL fields (``sql_text``, ``statement``...) passed through
    :func:`redact_sql` and every other string through :func:`redact_text`; ``*hash`` fields kept."""
    return [{k: _redact_value(str(k), v) for k, v in row.items()} for row in rows]
