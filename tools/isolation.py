"""Error isolation: ask several backends, keep what answered, turn each failure into a per-run note.

Written once and used by the inventory and by the logs, metrics and ITSM mergers. Notes belong to
one investigation, never to a long-lived backend: a graph node opens :func:`collecting_notes`
around its work and returns what was collected into the graph state, so one run's "backend down"
cannot leak into the next run that shares the same source objects.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

_run_notes: ContextVar[list[str] | None] = ContextVar("opscopilot_run_notes", default=None)


@contextmanager
def collecting_notes() -> Iterator[list[str]]:
    """Collect the notes of the work done inside the block (this thread/context only)."""
    notes: list[str] = []
    token = _run_notes.set(notes)
    try:
        yield notes
    finally:
        _run_notes.reset(token)


def note(text: str) -> None:
    """Add a note to the current run (no-op outside :func:`collecting_notes`); duplicates dropped."""
    notes = _run_notes.get()
    if notes is not None and text not in notes:
        notes.append(text)


@dataclass
class Gathered(Generic[T]):
    """What several backends answered (by name, in order) and why the others did not."""

    answers: list[tuple[str, T]] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    errors: dict[str, BaseException] = field(default_factory=dict)  # the exceptions themselves

    @property
    def values(self) -> list[T]:
        return [value for _, value in self.answers]

    @property
    def all_failed(self) -> bool:
        return not self.answers and bool(self.failures)


def gather(
    calls: Sequence[tuple[str, Callable[[], T]]],
    what: str,
    *,
    catch: tuple[type[BaseException], ...] = (Exception,),
    note_for: Callable[[str, str], str] | None = None,
) -> Gathered[T]:
    """Call each backend in turn; an exception of `catch` leaves that backend out and is logged.

    When some answered and others failed, `note_for(name, reason)` (if given) becomes a per-run
    note, so a partial answer says so in the report. Callers decide what "all failed" means."""
    out: Gathered[T] = Gathered()
    for name, call in calls:
        try:
            out.answers.append((name, call()))
        except catch as exc:
            log.warning("%s from %s failed: %s", what, name, exc)
            out.failures[name] = str(exc) or type(exc).__name__
            out.errors[name] = exc
    if note_for is not None and out.answers:
        for name, reason in out.failures.items():
            note(note_for(name, reason))
    return out


def isolated(name: str, call: Callable[[], T], what: str) -> T | None:
    """One backend's answer, or None with a per-run note when it fails (any Exception)."""
    found = gather([(name, call)], what)
    if found.answers:
        return found.answers[0][1]
    note(f"{name} could not be read ({what}): {found.failures[name]}; its entities are not in the inventory")
    return None
