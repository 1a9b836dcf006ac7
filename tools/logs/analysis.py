"""Log analyzers: message signatures, known database error codes, deadlock details and bursts.

Error codes live in tools.logs.codes and deadlock parsing in tools.logs.deadlocks; both are re-exported."""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, Field

from tools.logs.codes import (
    ENGINE_NAMES,
    KnownCode,
    LogEngine,
    engine_hint,
    header_number,
    known_codes,
    pair_error_headers,
)
from tools.logs.deadlocks import DeadlockDetails, assemble_reports, deadlock_details
from tools.world import Level, LogRecord

__all__ = [
    "ENGINE_NAMES",
    "DeadlockDetails",
    "KnownCode",
    "LogEngine",
    "deadlock_details",
    "engine_hint",
    "known_codes",
]

LEVEL_RANK: dict[str, int] = {"debug": 0, "info": 1, "warning": 2, "error": 3, "critical": 4}
_DEADLOCK_WORD = re.compile(r"deadlock", re.IGNORECASE)


# --- signatures ---------------------------------------------------------------------------------

_MASKS: list[tuple[re.Pattern[str], str]] = [
    (
        re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"),
        "<guid>",
    ),
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b"), "<ip>"),
    (re.compile(r"\b0x[0-9a-fA-F]+\b"), "<hex>"),
    (re.compile(r"\b(?=[0-9a-fA-F]*[a-fA-F])(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{12,}\b"), "<hex>"),
    (re.compile(r"'[^']*'|\"[^\"]*\""), "<str>"),
]
_NUMBER = re.compile(r"\d+(?:[.,:/]\d+)*")


def message_template(message: str, keep: Iterable[str] = ()) -> str:
    """The message with GUIDs, IPs, hex, quoted strings and numbers replaced by placeholders.

    Numbers in `keep` (recognised error codes) stay, so "Error 1205" and "Error 9002" differ.
    """
    text = message
    for pattern, placeholder in _MASKS:
        text = pattern.sub(placeholder, text)
    kept = set(keep)
    text = _NUMBER.sub(lambda m: m.group(0) if m.group(0) in kept else "<n>", text)
    return re.sub(r"\s+", " ", text).strip()


class ErrorSignature(BaseModel):
    """Messages that share one template."""

    template: str
    count: int
    first_seen: datetime
    last_seen: datetime
    severity: Level
    entities: list[str] = Field(default_factory=list)
    codes: list[KnownCode] = Field(default_factory=list)
    category: str | None = None  # the first code's category, or "deadlock" for deadlock wording
    example: str  # the latest message verbatim
    error_number: str | None = None  # SQL Server's number from an "Error: N, Severity: S, State: T." header
    error_header: str | None = None  # that header verbatim (the latest), folded into this message's signature


def error_signatures(records: Sequence[LogRecord]) -> list[ErrorSignature]:
    """Group records by message template; worst severity first, then most frequent, then earliest.

    A SQL Server header line ("Error: 9002, Severity: 17, State: 2.") is folded into the message written
    with it (see pair_error_headers): that message's signature carries the header, its number and code,
    and the pair counts once. Lines that continue a multi-document deadlock report count as deadlock."""
    headers = pair_error_headers(records)
    absorbed = {id(h) for h in headers.values()}
    _, continuations = assemble_reports([r for r in records if id(r) not in absorbed])
    groups: dict[tuple[str, tuple[str, ...]], ErrorSignature] = {}
    for r in sorted(records, key=lambda rec: rec.timestamp):
        if id(r) in absorbed:
            continue
        header = headers.get(id(r))
        codes = known_codes(r)
        if header is not None:
            codes += [c for c in known_codes(header) if c not in codes]
        template = message_template(r.message, keep=[c.code for c in codes])
        key = (template, tuple(f"{c.engine}:{c.code}" for c in codes))
        sig = groups.get(key)
        if sig is None:
            category = codes[0].category if codes else None
            if category is None and (_DEADLOCK_WORD.search(r.message) or id(r) in continuations):
                category = "deadlock"
            sig = ErrorSignature(
                template=template,
                count=0,
                first_seen=r.timestamp,
                last_seen=r.timestamp,
                severity=r.severity,
                codes=codes,
                category=category,
                example=r.message,
            )
            groups[key] = sig
        sig.count += 1
        sig.last_seen = r.timestamp
        sig.example = r.message
        severities = [r.severity] + ([header.severity] if header is not None else [])
        for level in severities:
            if LEVEL_RANK[level] > LEVEL_RANK[sig.severity]:
                sig.severity = level
        if header is not None:
            sig.error_header, sig.error_number = header.message, header_number(header.message)
        if r.entity and r.entity not in sig.entities:
            sig.entities.append(r.entity)
    return sorted(groups.values(), key=lambda s: (-LEVEL_RANK[s.severity], -s.count, s.first_seen))


# --- bursts -------------------------------------------------------------------------------------


class LogBurst(BaseModel):
    """One time bucket with far more messages than the median bucket."""

    start: datetime
    end: datetime
    count: int
    errors: int  # of which error or critical
    median: float  # median messages per bucket over the span, empty buckets included
    ratio: float  # count / max(median, 1)


def bursts(
    records: Sequence[LogRecord], bucket_s: int = 60, factor: float = 3.0, min_count: int = 5
) -> list[LogBurst]:
    """Buckets of `bucket_s` seconds holding at least `min_count` messages and `factor` times the
    median bucket (empty buckets between the first and last message count as zero)."""
    if not records or bucket_s <= 0:
        return []
    counts: dict[int, list[int]] = {}
    for r in records:
        slot = int(r.timestamp.timestamp() // bucket_s)
        pair = counts.setdefault(slot, [0, 0])
        pair[0] += 1
        pair[1] += LEVEL_RANK[r.severity] >= LEVEL_RANK["error"]
    first, last = min(counts), max(counts)
    median = float(statistics.median(counts.get(s, [0, 0])[0] for s in range(first, last + 1)))
    floor = max(median, 1.0)
    out = []
    for slot in sorted(counts):
        count, errors = counts[slot]
        if count >= min_count and count >= factor * floor:
            start = datetime.fromtimestamp(slot * bucket_s, tz=UTC)
            out.append(
                LogBurst(
                    start=start,
                    end=start + timedelta(seconds=bucket_s),
                    count=count,
                    errors=errors,
                    median=median,
                    ratio=count / floor,
                )
            )
    return out


# --- failover timelines -------------------------------------------------------------------------

_FAILOVER_STAGES: list[tuple[str, re.Pattern[str]]] = [
    (
        "failover initiated",
        re.compile(
            r"failover\b.{0,60}?\b(?:initiated|started|starting|begun|beginning)\b"
            r"|\b(?:initiat|start|request|trigger)\w*\b.{0,40}?\bfailover",
            re.IGNORECASE,
        ),
    ),
    (
        "failover in progress",
        re.compile(r"failover\b.{0,30}?\bin progress|in progress\b.{0,40}?failover", re.I),
    ),
    (
        "failover completed",
        re.compile(
            r"failover\b.{0,60}?\b(?:completed?|finished|succeeded|done)\b"
            r"|\b(?:completed?|finished)\b.{0,40}?\bfailover",
            re.IGNORECASE,
        ),
    ),
    (
        "instance available",
        re.compile(r"\b(?:is|became|becomes|now) available\b|available again|accepting connections", re.I),
    ),
]
_REASON = re.compile(r"\breason:\s*([^.;\n]+)", re.IGNORECASE)
_HEALTH_CHECK = re.compile(r"health[- ]?check\w*\s+fail\w*|fail\w*\s+health[- ]?check", re.IGNORECASE)
FAILOVER_GAP = timedelta(minutes=30)  # events further apart than this belong to different failovers


class TimelineStep(BaseModel):
    stage: str  # "failover initiated", "failover in progress", "failover completed", "instance available"
    at: datetime
    message: str


class FailoverTimeline(BaseModel):
    """One failover told from its events in order: what started it, each stage, and when it ended."""

    entity: str | None
    multi_az: bool
    reason: str | None  # e.g. "health check failure on primary host"
    steps: list[TimelineStep]
    start: datetime
    end: datetime
    events: int  # messages that make up the timeline

    @property
    def stages(self) -> list[str]:
        return [s.stage for s in self.steps]

    @property
    def completed(self) -> bool:
        return "failover completed" in self.stages

    @property
    def available(self) -> bool:
        return "instance available" in self.stages


def _stages(message: str) -> list[str]:
    return [stage for stage, pattern in _FAILOVER_STAGES if pattern.search(message)]


def failover_timelines(records: Sequence[LogRecord]) -> list[FailoverTimeline]:
    """Failovers told by event messages (RDS events, cluster manager logs), per entity, in time order.

    A failover opens with a message naming a failover stage (initiated, in progress, completed) and
    takes every stage message of the same entity until FAILOVER_GAP passes without one; after it
    completed, the first "is available" / "accepting connections" message closes it. A reason comes
    from "Reason: ..." or a failed health check named in any of its messages."""
    out: list[FailoverTimeline] = []
    current: dict[str | None, FailoverTimeline] = {}
    for r in sorted(records, key=lambda rec: rec.timestamp):
        stages = _stages(r.message)
        if not stages:
            continue
        failover_stage = any(s != "instance available" for s in stages)
        t = current.get(r.entity)
        if t is not None and (r.timestamp - t.end > FAILOVER_GAP or t.available):
            del current[r.entity]  # that failover is over; this message is something else
            t = None
        if t is None and not failover_stage:
            continue  # "is available" on its own tells of no failover
        if t is None:
            t = FailoverTimeline(entity=r.entity, multi_az=False, reason=None, steps=[], start=r.timestamp,
                                 end=r.timestamp, events=0)  # fmt: skip
            current[r.entity] = t
            out.append(t)
        elif not failover_stage and not t.completed:
            continue  # available before the failover completed: not how this one ended
        t.events += 1
        t.end = r.timestamp
        t.multi_az = t.multi_az or bool(re.search(r"multi[- ]?az", r.message, re.IGNORECASE))
        if t.reason is None and (m := _REASON.search(r.message)):
            t.reason = " ".join(m.group(1).split())
        elif t.reason is None and (m := _HEALTH_CHECK.search(r.message)):
            t.reason = " ".join(m.group(0).split())
        for stage in stages:
            if stage not in t.stages:
                t.steps.append(TimelineStep(stage=stage, at=r.timestamp, message=r.message))
    return out
