"""The model's text as sentences: markdown and list markers removed, references kept with their sentence."""

from __future__ import annotations

import re

REF = re.compile(r"\[(E\d+)\]")
# A sentence ends at . ! or ? (and the [E#] after it) before white space; host names such as
# sql-prod-01 start sentences in lower case, so the next one may too.
SENTENCE = re.compile(r".*?[.!?](?:\s*\[E\d+\])*(?=\s+\S|\s*$)|.+$")
ENDED = re.compile(r"[.!?](?:\s*\[E\d+\])*[)\]\"']?$")


MARKDOWN = re.compile(r"\*\*|__|`|^\s*#+\s*", re.M)
INLINE_NUMBER = re.compile(r"(?:(?<=[:.!?])|^)\s*\d{1,2}[.)]\s+(?=\S)")  # "checks: 1. File space ..."
BULLET = re.compile(r"^\s*(?:[-*\u2022]|\d{1,2}[.)])\s+")


def plain_lines(text: str) -> str:
    """Markdown and list markers removed; a list item or line that ends without punctuation, but
    is followed by another line, becomes a sentence of its own."""
    lines = [BULLET.sub("", MARKDOWN.sub("", line)).strip() for line in text.split("\n")]
    lines = [line for line in lines if line and not re.fullmatch(r"\d{1,2}[.)]?", line)]
    for i, line in enumerate(lines[:-1]):
        if not ENDED.search(line) and not line.endswith(":"):  # "To check next:" leads into the list
            lines[i] = line.rstrip(";,") + "."
    return INLINE_NUMBER.sub(" ", " ".join(lines))


def split_sentences(text: str) -> tuple[list[str], str | None]:
    """The complete sentences of ``text`` (a reference after the full stop stays with its
    sentence) and the trailing fragment cut off by the token limit, if any."""
    flat = " ".join(plain_lines(text).split())
    pieces = [m.group(0).strip() for m in SENTENCE.finditer(flat) if m.group(0).strip()]
    sentences = [p for p in pieces if not re.fullmatch(r"\d{1,2}[.)]", p)]  # a list number alone
    if sentences and not ENDED.search(sentences[-1]):
        return sentences[:-1], sentences[-1]
    return sentences, None
