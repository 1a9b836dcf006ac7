"""Knowledge documents from files: Markdown postmortems and runbooks with front matter, and JSON or
YAML in the SPEC `past_incidents` shape. A file that cannot be read is reported by name and skipped."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import frontmatter
import yaml
from pydantic import ValidationError

from tools.knowledge.documents import SUMMARY_FIELD_CHARS, KnowledgeDoc, Section

MARKDOWN = {".md", ".markdown"}
STRUCTURED = {".yaml", ".yml", ".json"}
# Headings (lower-cased, matched by their start) whose text fills a field of the document.
FIELD_HEADINGS: dict[str, tuple[str, ...]] = {
    "symptoms": ("symptom", "impact", "summary", "what happened", "detection", "overview", "description"),
    "root_cause": ("root cause", "cause", "why it happened", "contributing factor"),
    "resolution": ("resolution", "fix", "remediation", "mitigation", "what fixed", "recovery"),
    "steps": ("steps", "procedure", "checklist", "runbook", "actions", "how to"),
}
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_LIST_ITEM = re.compile(r"^\s{0,3}(?:[-*+]|\d+[.)])\s+(?:\[[ xX]\]\s+)?(.+)$")
_KINDS = {"incident": "incident", "postmortem": "incident", "post-mortem": "incident", "runbook": "runbook"}
_KEYS = {
    "id", "kind", "type", "title", "services", "service", "cis", "ci", "tags", "date", "occurred_at",
    "url", "source", "symptoms", "root_cause", "resolution", "steps",
}  # fmt: skip


class ReadError(ValueError):
    """A file (or an entry in it) that cannot become a document; the message says what to fix."""


@dataclass
class ReadResult:
    """Documents read from a path, and every file or entry skipped with the reason."""

    docs: list[KnowledgeDoc] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (file[:entry], what is wrong)
    files: int = 0


def read_path(path: Path) -> ReadResult:
    """Every document under `path` (a file, or a folder searched recursively; hidden files and
    folders and README files skipped)."""
    result = ReadResult()
    if not path.exists():
        raise ReadError(f"{path} does not exist: give a Markdown/YAML/JSON file or a folder of them")
    for file in _files(path):
        result.files += 1
        try:
            docs, problems = read_text(str(file), _text(file), url=file.resolve().as_uri())
        except ReadError as exc:
            result.problems.append((str(file), str(exc)))
            continue
        result.docs += docs
        result.problems += problems
    return result


def read_text(
    name: str, text: str, *, url: str | None = None
) -> tuple[list[KnowledgeDoc], list[tuple[str, str]]]:
    """The documents in one file's `text`, by the suffix of its `name` (a path or an upload's name).
    Raises ReadError when the whole file is unusable; returns (documents, skipped entries)."""
    suffix = Path(name).suffix.lower()
    if not text.strip():
        raise ReadError("empty file (half-written?): nothing ingested from it")
    if suffix in MARKDOWN:
        return [read_markdown(name, text, url=url)], []
    if suffix in STRUCTURED:
        return read_structured(name, text, url=url)
    raise ReadError(
        f"not a knowledge file: use .md/.markdown, .yaml/.yml or .json (got {suffix or 'no suffix'!r})"
    )


def _files(path: Path) -> Iterator[Path]:
    if path.is_file():
        yield path
        return
    for file in sorted(path.rglob("*")):
        rel = file.relative_to(path).parts
        if (
            file.is_file()
            and not any(p.startswith(".") for p in rel)
            and file.suffix.lower() in MARKDOWN | STRUCTURED
            and not file.name.lower().startswith("readme.")  # a folder's description, not a document
        ):
            yield file


def _text(file: Path) -> str:
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise ReadError(f"cannot read: {exc.strerror}") from None
    if not data.strip():
        raise ReadError("empty file (half-written?): nothing ingested from it")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ReadError(f"not UTF-8 text (byte {exc.start}): save it as UTF-8") from None


def read_markdown(name: str, text: str, *, url: str | None = None) -> KnowledgeDoc:
    """A postmortem or runbook: front matter (id, kind, title, services, cis, tags, date, url), then
    the body split by headings; 'Symptoms'/'Root cause'/'Resolution' sections fill those fields and
    a runbook's 'Steps' (or its list items) become its checklist."""
    if not text.lstrip().startswith("---"):
        raise ReadError(
            "no front matter: start the file with '---', then at least `id:` and `title:` lines, then '---'"
        )
    try:
        post = frontmatter.loads(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ReadError(
            f"front matter is not valid YAML{where}: {getattr(exc, 'problem', None) or exc}"
        ) from None
    meta: dict[str, Any] = dict(post.metadata)
    if not meta:
        raise ReadError(
            "front matter is empty or not closed with '---' (half-written?): add `id:` and `title:`"
        )
    unknown = sorted(set(meta) - _KEYS)
    if unknown:
        raise ReadError(f"unknown front matter key(s) {unknown}; known: {', '.join(sorted(_KEYS))}")
    title, sections = _sections(post.content)
    fields: dict[str, Any] = {
        "id": meta.get("id"),
        "kind": _kind(meta.get("kind") or meta.get("type") or _folder_kind(Path(name))),
        "title": meta.get("title") or title,
        "services": meta.get("services") or meta.get("service") or [],
        "cis": meta.get("cis") or meta.get("ci") or [],
        "tags": meta.get("tags") or [],
        "occurred_at": meta.get("occurred_at") or meta.get("date"),
        "url": meta.get("url") or url,
        "source": f"file:{name}",
    }
    for key in ("symptoms", "root_cause", "resolution", "steps"):
        if meta.get(key):
            fields[key] = meta[key]
    body: list[Section] = []
    for section in sections:
        target = _field_of(section.heading)
        if target == "steps":
            fields.setdefault("steps", _list_items(section.text) or [section.text])
            continue
        if target and target not in fields:
            fields[target] = _plain(section.text)
            if len(section.text) <= SUMMARY_FIELD_CHARS:
                continue
        body.append(section)
    if fields["kind"] == "runbook" and "steps" not in fields:
        fields["steps"] = _list_items(post.content)
    fields["sections"] = body
    return _validated(fields, name)


def _sections(markdown: str) -> tuple[str | None, list[Section]]:
    """(the first H1, the sections under each heading); text before the first heading is 'Summary'."""
    title: str | None = None
    sections: list[Section] = []
    heading, lines = "Summary", []
    fence = False
    for line in markdown.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fence = not fence
        m = None if fence else _HEADING.match(line)
        if m is None:
            lines.append(line)
            continue
        if len(m.group(1)) == 1 and title is None:
            title = m.group(2)
        else:
            sections.append(Section(heading=heading, text="\n".join(lines).strip()))
            heading = m.group(2)
        lines = []
    sections.append(Section(heading=heading, text="\n".join(lines).strip()))
    return title, [s for s in sections if s.text]


def _field_of(heading: str) -> str | None:
    low = heading.lower()
    return next((f for f, starts in FIELD_HEADINGS.items() if low.startswith(starts)), None)


def _list_items(text: str) -> list[str]:
    return [m.group(1).strip() for m in (_LIST_ITEM.match(line) for line in text.splitlines()) if m]


def _plain(text: str) -> str:
    return " ".join(line.strip().lstrip("-*+ ").strip() for line in text.splitlines() if line.strip())


def _folder_kind(file: Path) -> str | None:
    """Files in a folder named runbooks (or runbook) are runbooks unless their front matter says otherwise."""
    return "runbook" if file.parent.name.lower() in ("runbook", "runbooks") else None


def _kind(value: Any) -> str:
    if value is None:
        return "incident"
    kind = _KINDS.get(str(value).strip().lower())
    if kind is None:
        raise ReadError(f"kind {value!r} is not one of incident, postmortem, runbook")
    return kind


def read_structured(
    name: str, text: str, *, url: str | None = None
) -> tuple[list[KnowledgeDoc], list[tuple[str, str]]]:
    """Incidents from JSON or YAML: a list of SPEC `past_incidents` entries, a mapping with a
    `past_incidents` list, or a scenario (its `world.past_incidents`). A bad entry is skipped and
    reported as FILE[INDEX]; the others are kept."""
    try:
        data = json.loads(text) if name.lower().endswith(".json") else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise ReadError(f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ReadError(f"invalid YAML{where}: {getattr(exc, 'problem', None) or exc}") from None
    if isinstance(data, dict):
        data = data.get("past_incidents", (data.get("world") or {}).get("past_incidents"))
    if not isinstance(data, list):
        raise ReadError("expected a list of past incidents, or a mapping with a `past_incidents` list")
    docs, problems = [], []
    for i, entry in enumerate(data):
        where = f"{name}[{i}]"
        try:
            if not isinstance(entry, dict):
                raise ReadError(f"entry is a {type(entry).__name__}, not a mapping with id and title")
            docs.append(_validated({"source": f"file:{name}", "url": url, **entry}, where))
        except ReadError as exc:
            problems.append((where, str(exc)))
    return docs, problems


def _validated(fields: dict[str, Any], where: str) -> KnowledgeDoc:
    try:
        return KnowledgeDoc.model_validate(fields)
    except ValidationError as exc:
        reasons = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "(document)"
            reasons.append(f"{loc}: {err['msg']}")
        raise ReadError("; ".join(reasons) + " (fix these fields or the front matter)") from None
