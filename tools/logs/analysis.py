"""Log analyzers: message signatures, known database error codes, deadlock details and bursts."""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, Field

from tools.world import Level, LogRecord

LEVEL_RANK: dict[str, int] = {"debug": 0, "info": 1, "warning": 2, "error": 3, "critical": 4}
LogEngine = Literal["mssql", "postgresql", "mysql"]
ENGINE_NAMES: dict[str, str] = {"mssql": "SQL Server", "postgresql": "PostgreSQL", "mysql": "MySQL"}


class KnownCode(BaseModel):
    """A database error code recognised in a log message."""

    engine: LogEngine
    code: str
    meaning: str
    category: str  # deadlock | lock_timeout | log_full | login_failed | io_error | out_of_memory | ...

    @property
    def label(self) -> str:
        kind = "SQLSTATE" if self.engine == "postgresql" else "error"
        return f"{ENGINE_NAMES[self.engine]} {kind} {self.code}"


def _code(
    engine: LogEngine, code: str, meaning: str, category: str, phrase: str | None
) -> tuple[KnownCode, re.Pattern[str] | None]:
    pattern = re.compile(phrase, re.IGNORECASE) if phrase else None
    return KnownCode(engine=engine, code=code, meaning=meaning, category=category), pattern


# (code, phrase that identifies it without the number). Order matters only for the 1205 clash.
_KNOWN: list[tuple[KnownCode, re.Pattern[str] | None]] = [
    _code("mssql", "1205", "deadlock victim", "deadlock", r"chosen as the deadlock victim|was deadlocked on"),
    _code(
        "mssql", "9002", "transaction log full", "log_full", r"transaction log for database .{0,200} is full"
    ),
    _code("mssql", "18456", "login failed", "login_failed", r"login failed for user"),
    _code("mssql", "823", "I/O error reported by the operating system", "io_error", None),
    _code(
        "mssql", "824", "logical consistency I/O error", "io_error", r"logical consistency-based I/O error"
    ),
    _code(
        "mssql", "825", "read succeeded only after retries", "io_error", r"read of the file .{0,200} after"
    ),
    _code("mssql", "701", "out of memory", "out_of_memory", r"insufficient system memory"),
    _code("mssql", "17883", "non-yielding scheduler", "scheduler", r"non-yielding"),
    _code("postgresql", "40P01", "deadlock detected", "deadlock", r"deadlock detected"),
    _code(
        "postgresql",
        "53300",
        "too many connections",
        "too_many_connections",
        r"connection slots are reserved",
    ),
    _code("postgresql", "57014", "statement timeout", "statement_timeout", r"due to statement timeout"),
    _code("postgresql", "53100", "disk full", "disk_full", r"could not extend file"),
    _code("mysql", "1213", "deadlock", "deadlock", r"deadlock found when trying to get lock"),
    _code("mysql", "1205", "lock wait timeout", "lock_timeout", r"lock wait timeout exceeded"),
    _code("mysql", "1040", "too many connections", "too_many_connections", r"too many connections"),
]
_BY_NUMBER: dict[str, list[KnownCode]] = {}
for _known, _ in _KNOWN:
    _BY_NUMBER.setdefault(_known.code.upper(), []).append(_known)

# A number counts as an error code only next to a word that says so ("Error 1205", "Msg 9002",
# "SqlException 1205", "ERROR 1213 (40001)", "SQLSTATE 40P01"); 40P01 is distinctive on its own.
_CODE_CONTEXT = re.compile(
    r"(?:\berror\b|\bmsg\b|\berrno\b|\bsqlstate\b|\bcode\b|exception)\s*[:#=]?\s*\(?\s*([0-9][0-9A-Z]{2,4})\b",
    re.IGNORECASE,
)
_BARE_SQLSTATE = re.compile(r"\b(40P01)\b")
_ENGINE_HINTS: list[tuple[LogEngine, re.Pattern[str]]] = [
    ("mysql", re.compile(r"mysql|mariadb|innodb|\(HY000\)|lock wait timeout", re.IGNORECASE)),
    ("postgresql", re.compile(r"postgres|\bpg_|sqlstate|remaining connection slots", re.IGNORECASE)),
    (
        "mssql",
        re.compile(r"mssql|sql ?server|sqlexception|\bspid|process id \d|errorlog|\bdbo\.", re.IGNORECASE),
    ),
]
_DEADLOCK_WORD = re.compile(r"deadlock", re.IGNORECASE)


def engine_hint(record: LogRecord) -> LogEngine | None:
    """Which engine wrote a record, judged from its index, category, message and shipper fields."""
    extra = " ".join(str(v) for v in (record.model_extra or {}).values() if isinstance(v, str))
    text = " ".join(filter(None, [record.index, record.log_category, record.message, extra]))
    for engine, pattern in _ENGINE_HINTS:
        if pattern.search(text):
            return engine
    return None


def known_codes(record: LogRecord) -> list[KnownCode]:
    """Database error codes the message carries, by number (with context) or by its wording.

    SQL Server 1205 (deadlock victim) and MySQL 1205 (lock wait timeout) share a number: the
    record's engine words decide, and without any, the deadlock wording or SQL Server wins.
    """
    message = record.message
    hint = engine_hint(record)
    found: list[KnownCode] = []
    numbers = [m.group(1).upper() for m in _CODE_CONTEXT.finditer(message)]
    numbers += [m.group(1).upper() for m in _BARE_SQLSTATE.finditer(message)]
    for number in numbers:
        candidates = _BY_NUMBER.get(number, [])
        if len(candidates) > 1:
            by_engine = [c for c in candidates if c.engine == hint]
            if not by_engine and "lock wait" in message.lower():
                by_engine = [c for c in candidates if c.category == "lock_timeout"]
            candidates = by_engine or candidates[:1]
        found.extend(c for c in candidates[:1] if c not in found)
    for known, phrase in _KNOWN:
        if phrase is None or known in found or not phrase.search(message):
            continue
        if known.code == "1040" and hint == "postgresql":
            known = next(k for k, _ in _KNOWN if k.code == "53300")
        if known not in found and not any(f.category == known.category for f in found):
            found.append(known)
    return found


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


def error_signatures(records: Sequence[LogRecord]) -> list[ErrorSignature]:
    """Group records by message template; worst severity first, then most frequent, then earliest."""
    groups: dict[tuple[str, tuple[str, ...]], ErrorSignature] = {}
    for r in sorted(records, key=lambda rec: rec.timestamp):
        codes = known_codes(r)
        template = message_template(r.message, keep=[c.code for c in codes])
        key = (template, tuple(f"{c.engine}:{c.code}" for c in codes))
        sig = groups.get(key)
        if sig is None:
            category = codes[0].category if codes else None
            if category is None and _DEADLOCK_WORD.search(r.message):
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
        if LEVEL_RANK[r.severity] > LEVEL_RANK[sig.severity]:
            sig.severity = r.severity
        if r.entity and r.entity not in sig.entities:
            sig.entities.append(r.entity)
    return sorted(groups.values(), key=lambda s: (-LEVEL_RANK[s.severity], -s.count, s.first_seen))


# --- deadlocks ----------------------------------------------------------------------------------

_VICTIM_IDS = [
    re.compile(r"process id (\d+)\)? was deadlocked", re.IGNORECASE),
    re.compile(r"victim\s*=\s*\"?([\w]+)", re.IGNORECASE),
    re.compile(r"victimProcess\s+id\s*=\s*\"?([\w]+)", re.IGNORECASE),
]
_OWNER_IDS = re.compile(r"\bowner\s+(?:process\s*=\s*|id\s*=\s*)\"?([\w]+)", re.IGNORECASE)
_PROCEDURE = re.compile(r"(?:\bprocedure:?\s+|procname\s*=\s*\"?)\[?([\w\[\].]+)", re.IGNORECASE)
_OBJECT = re.compile(r"objectname\s*=\s*\"?([\w\[\].]+)", re.IGNORECASE)
_INDEX = re.compile(r"indexname\s*=\s*\"?([\w\[\]]+)", re.IGNORECASE)
_RESOURCE = re.compile(r"\b(keylock|pagelock|ridlock|rowlock|objectlock|metadatalock|exchangeEvent)\b")
_MODE = re.compile(r"\bmode\s*=\s*\"?(\w+)", re.IGNORECASE)
_ROLE = re.compile(r"victim|\bowner\b|\bwaiter\b", re.IGNORECASE)
_RETRY = re.compile(r"\bretr(?:y|ying|ied)\b|\battempt \d", re.IGNORECASE)
_GRAPH = re.compile(r"deadlock-list|deadlock_report|<deadlock\b|deadlock graph", re.IGNORECASE)


class DeadlockDetails(BaseModel):
    """What the deadlock messages of a set of records say: who died, who held what."""

    deadlocks: int = 0  # victim reports (or deadlock graphs, when no victim report was logged)
    graphs: int = 0
    retries: int = 0  # client messages retrying after a deadlock: echoes, not extra deadlocks
    codes: list[str] = Field(default_factory=list)  # e.g. "SQL Server error 1205"
    victims: list[str] = Field(default_factory=list)  # session / process ids as logged
    victim_procedures: list[str] = Field(default_factory=list)
    owners: list[str] = Field(default_factory=list)
    owner_procedures: list[str] = Field(default_factory=list)
    objects: list[str] = Field(default_factory=list)
    indexes: list[str] = Field(default_factory=list)
    resources: list[str] = Field(default_factory=list)
    modes: list[str] = Field(default_factory=list)
    first_seen: datetime | None = None
    last_seen: datetime | None = None


def _clean(name: str) -> str:
    return name.replace("[", "").replace("]", "").strip(".")


def _process_id(raw: str) -> str:
    m = re.fullmatch(r"process(\d+)", raw, re.IGNORECASE)
    return m.group(1) if m else raw


def _add(items: list[str], value: str) -> None:
    if value and value not in items:
        items.append(value)


def deadlock_details(records: Sequence[LogRecord]) -> DeadlockDetails:
    """Extract victims, procedures, objects, indexes and owners from deadlock messages.

    Understands SQL Server victim messages ("Transaction (Process ID 233) was deadlocked ...
    Procedure: dbo.X"), trace-flag deadlock lists ("victim=process233 ... keylock objectname=...
    indexname=... owner process=process198 Procedure dbo.Y") and XML deadlock reports
    (victimProcess id=, procname=, objectname=, indexname=, owner id=).
    """
    out = DeadlockDetails()
    victim_reports = 0
    for r in sorted(records, key=lambda rec: rec.timestamp):
        codes = [c for c in known_codes(r) if c.category == "deadlock"]
        text = r.message
        is_graph = bool(_GRAPH.search(text))
        if not codes and not is_graph:
            continue
        out.first_seen = out.first_seen or r.timestamp
        out.last_seen = r.timestamp
        for c in codes:
            _add(out.codes, c.label)
        if is_graph:
            out.graphs += 1
        elif _RETRY.search(text):
            out.retries += 1
        else:
            victim_reports += 1
        for pattern in _VICTIM_IDS:
            for m in pattern.finditer(text):
                _add(out.victims, _process_id(m.group(1)))
        for m in _OWNER_IDS.finditer(text):
            _add(out.owners, _process_id(m.group(1)))
        for m in _PROCEDURE.finditer(text):
            roles = [x.group(0).lower() for x in _ROLE.finditer(text, 0, m.start())]
            role = roles[-1] if roles else ("victim" if not is_graph else "")
            target = out.owner_procedures if role == "owner" else out.victim_procedures
            if role in ("owner", "victim"):
                _add(target, _clean(m.group(1)))
        for pattern, items in ((_OBJECT, out.objects), (_INDEX, out.indexes), (_MODE, out.modes)):
            for m in pattern.finditer(text):
                _add(items, _clean(m.group(1)))
        for m in _RESOURCE.finditer(text):
            _add(out.resources, m.group(1))
    out.deadlocks = victim_reports or out.graphs
    return out


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
