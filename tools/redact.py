"""Masking of secrets, personal data and SQL literals before evidence reaches a model, a report or a log."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from tools.national_ids import NATIONAL_ID, redact_national_ids
from tools.secrets import SECRET, redact_secrets

EMAIL = "<email>"
CARD = "<card>"
NATIONAL_ID = NATIONAL_ID
SECRET = SECRET
PLACEHOLDERS = frozenset({EMAIL, CARD, NATIONAL_ID, SECRET})

_EMAIL_RE = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
# 13-19 digits, single spaces or dashes allowed between digits; not part of a longer word or number.
_CARD_RE = re.compile(r"(?<![\w-])\d(?:[ -]?\d){12,18}(?![\w-])")
# Issuer prefixes of the card schemes (Visa, Mastercard, Amex, Discover, Diners, JCB, UnionPay, Maestro):
# a Luhn-valid 19-digit query hash or row id that no scheme issues is left alone.
_CARD_IIN_RE = re.compile(r"^(?:4|5[0-9]|2[2-7]|3[0-9]|6[0-9])")

_SQL_TOKEN_RE = re.compile(
    r"""
    (?P<comment>--[^\n]*|\#(?![A-Za-z_\#])[^\n]*|/\*.*?(?:\*/|\Z))
    |(?P<estring>[Ee]'(?:[^'\\]|''|\\.)*(?:'|\Z))
    |(?P<string>[NnXxBb]?'(?:[^'\\]|''|\\.)*(?:'|\Z))
    |(?P<dollar>\$(?P<tag>[A-Za-z_]\w*|)\$.*?(?:\$(?P=tag)\$|\Z))
    |(?P<dquoted>"(?:[^"\\]|""|\\.)*(?:"|\Z))
    |(?P<quoted>\[[A-Za-z_\#@$][^\]\n']*\]|`[^`\n]*`)
    |(?P<cast>::)
    |(?P<param>@@?\w+|\$\d+|:[A-Za-z_]\w*|\?)
    |(?P<hex>\b0[xX][0-9A-Fa-f]+\b)
    |(?P<word>[A-Za-z_][\w$\#]*)
    |(?P<number>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)
    |(?P<op><>|!=|<=|>=|[=<>(),\[\]])
    """,
    re.VERBOSE | re.DOTALL,
)
_SQL_LITERALS = frozenset({"estring", "string", "dollar", "hex", "number"})
# After these a double-quoted token is a value (MySQL's default quoting), elsewhere an identifier.
_VALUE_BEFORE = frozenset(
    {"=", "<>", "!=", "<", ">", "<=", ">=", "like", "ilike", "then", "else", "between", "values", "in", "is"}
)
# Kept inside comments: query annotations (query_hash 0x3A9F...), nothing else.
_COMMENT_KEEP = re.compile(r"^(?:[A-Za-z]+_[A-Za-z_]+|0[xX][0-9A-Fa-f]{8,})$")
SQL_FIELDS = frozenset({"sql_text", "statement", "query_text", "sql", "query"})
_TAG_RE = re.compile(r"<(?=\s*/?\s*[A-Za-z!?])")


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


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"[ -]", "", match.group())
    if 13 <= len(digits) <= 19 and _CARD_IIN_RE.match(digits) and luhn_valid(digits):
        return CARD
    return match.group()


def redact_text(text: str) -> str:
    """Mask credentials (passwords, tokens, keys, URL passwords), e-mail addresses, payment card
    numbers (Luhn-checked) and national identifiers (check digits verified) in free text."""
    if not text:
        return text
    text = redact_secrets(text)
    if "@" in text:
        text = _EMAIL_RE.sub(EMAIL, text)
    text = redact_national_ids(text)
    return _CARD_RE.sub(_card, text)


def neutralise_tags(text: str) -> str:
    """Make tag-like text inert inside a prompt's data block: ``</data>`` becomes ``‹/data>``.
    The redaction placeholders (``<email>``...) stay as they are."""
    if "<" not in text:
        return text
    out = []
    for piece in re.split(r"(<email>|<card>|<id>|<secret>)", text):
        out.append(piece if piece in PLACEHOLDERS else _TAG_RE.sub("‹", piece))
    return "".join(out)


def _comment(text: str) -> str:
    if text.startswith("/*"):
        body, opener, closer = text[2:].removesuffix("*/"), "/*", "*/" if text.endswith("*/") else ""
    else:
        opener = "--" if text.startswith("--") else "#"
        body, closer = text[len(opener) :], ""
    kept = [w for w in body.split() if _COMMENT_KEEP.match(w.strip(",;:()"))]
    inner = " ".join(kept) if kept else "?"
    return f"{opener} {inner}{' ' + closer if closer else ''}"


def redact_sql(sql: str) -> str:
    """Replace string, binary and numeric literals in a SQL statement with ``?``.

    Identifiers (``Table1``, ``col2``, ``[Order Details]``, ``#temp``, ``"Col 3"`` as an
    identifier), parameters (``@p1``, ``$1``, ``:name``, ``?``) and casts are kept. A double-quoted
    string where a value belongs (MySQL) is a literal; literals inside ``ARRAY[...]`` and
    subscripts are masked; comments keep only query annotations (``query_hash 0x...``); escaped
    quotes (``''`` and ``\'``) stay inside their literal. The result then passes through
    :func:`redact_text`.
    """
    if not sql:
        return sql
    out: list[str] = []
    pos = 0
    previous = ""
    value_lists: list[bool] = []  # per open parenthesis: does it hold a list of values (IN, VALUES)?
    for m in _SQL_TOKEN_RE.finditer(sql):
        out.append(sql[pos : m.start()])
        pos = m.end()
        kind, token = m.lastgroup, m.group()
        if kind == "comment":
            out.append(_comment(token))
            continue
        in_list = bool(value_lists) and value_lists[-1] and previous in ("(", ",")
        if kind in _SQL_LITERALS or (kind == "dquoted" and (previous in _VALUE_BEFORE or in_list)):
            out.append("?")
        else:
            out.append(token)
        if token == "(":
            value_lists.append(previous in ("in", "values"))
        elif token == ")" and value_lists:
            value_lists.pop()
        previous = token.lower() if kind in ("word", "op") else str(kind)
    out.append(sql[pos:])
    return redact_text("".join(out))


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
