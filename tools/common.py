"""Plumbing every specialist's view tools share: read a source as evidence, keep rows, cite it in findings."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from tools.base import Evidence, Finding, Severity, Specialist, evidence_id
from tools.sources import SourceError

S = TypeVar("S")
T = TypeVar("T")


def configured(source: S | None, what: str) -> S:
    """The source, or SourceError "no <what> source is configured"."""
    if source is None:
        raise SourceError(f"no {what} source is configured")
    return source


def read_evidence(
    specialist: Specialist,
    tool: str,
    entity: str,
    read: Callable[[], T],
    *,
    log: logging.Logger,
    doing: str,
    failed: str,
) -> tuple[Evidence, T | None]:
    """A fresh Evidence for `tool` on `entity`, and what `read()` returned. A failing read is logged
    ("<specialist> <tool>: <doing> failed: ...") and becomes the evidence's error, summary
    "<failed>: ...", with None instead of the data: never an exception."""
    ev = Evidence(id=evidence_id(tool, entity), specialist=specialist, tool=tool, entity=entity, summary="")
    try:
        return ev, read()
    except SourceError as exc:  # an expected backend failure (unreachable, circuit open): evidence
        log.info("%s %s: %s failed: %s", specialist, tool, doing, exc)
        record_failure(ev, exc, failed)
        return ev, None
    except Exception as exc:  # anything else is evidence too, never a crash, but worth a warning
        log.warning("%s %s: %s failed: %s", specialist, tool, doing, exc)
        record_failure(ev, exc, failed)
        return ev, None


def record_failure(ev: Evidence, exc: BaseException, failed: str) -> None:
    """Mark the evidence as failed: the error's type and text, summary "<failed>: <error>"."""
    ev.error = f"{type(exc).__name__}: {exc}"
    ev.summary = f"{failed}: {exc}"


def keep_rows(ev: Evidence, rows: list[dict[str, Any]], limit: int) -> None:
    """Keep the first `limit` rows as the evidence's rows, with the full count and whether some were cut."""
    ev.rows, ev.row_count, ev.truncated = rows[:limit], len(rows), len(rows) > limit


def finding_on(
    ev: Evidence, kind: str, severity: Severity, title: str, detail: str, /, **data: Any
) -> Finding:
    """A finding of the evidence's specialist about its entity, citing it."""
    return Finding(
        specialist=ev.specialist,
        entity=ev.entity,
        kind=kind,
        severity=severity,
        title=title,
        detail=detail,
        evidence=[ev.id],
        data=data,
    )
