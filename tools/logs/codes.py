"""Database error codes in log messages, and SQL Server's "Error: N, Severity: S, State: T." header lines."""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel

from tools.world import LogRecord

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
    # InnoDB's "Transactions deadlock detected, dumping detailed information" is not PostgreSQL's 40P01
    _code("postgresql", "40P01", "deadlock detected", "deadlock", r"(?<!transactions )deadlock detected"),
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
    (
        "postgresql",
        re.compile(r"postgres|\bpg_|psqlexception|sqlstate|remaining connection slots", re.IGNORECASE),
    ),
    (
        "mssql",
        re.compile(r"mssql|sql ?server|\bsqlexception|\bspid|process id \d|errorlog|\bdbo\.", re.IGNORECASE),
    ),
]


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


# --- SQL Server "Error: N, Severity: S, State: T." headers ---------------------------------------

ERROR_HEADER = re.compile(r"^\s*Error:\s*(\d+),\s*Severity:\s*(\d+),\s*State:\s*(\d+)\.?\s*$", re.IGNORECASE)
HEADER_PAIR_S = 2.0  # a header and its message are written together; allow clock jitter of the shipper


def header_number(message: str) -> str | None:
    """The number of a bare SQL Server header line ("Error: 9002, Severity: 17, State: 2."), else None."""
    m = ERROR_HEADER.match(message)
    return m.group(1) if m else None


def pair_error_headers(records: Sequence[LogRecord]) -> dict[int, LogRecord]:
    """Match each bare SQL Server header line to the message it introduces.

    SQL Server writes "Error: 9002, Severity: 17, State: 2." next to every real message ("The transaction log
    for database 'Ledger' is full ..."), with the same timestamp. Returns {id(message record): header record}
    for the records of the same entity at most HEADER_PAIR_S seconds apart; among candidates, a message that
    carries the header's own code wins, then the nearest one after the header in log order. Headers without
    a message stay unpaired (they are not in the result's values)."""
    ordered = sorted(records, key=lambda r: r.timestamp)
    seconds = [r.timestamp.timestamp() for r in ordered]
    paired: dict[int, LogRecord] = {}
    for i, h in enumerate(ordered):
        number = header_number(h.message)
        if number is None:
            continue
        lo = bisect_left(seconds, seconds[i] - HEADER_PAIR_S)
        hi = bisect_right(seconds, seconds[i] + HEADER_PAIR_S)
        candidates: list[tuple[int, int, int]] = []  # (no own code, after-first distance, index)
        for j in range(lo, hi):
            r = ordered[j]
            if j == i or r.entity != h.entity or id(r) in paired or header_number(r.message) is not None:
                continue
            own = any(c.code == number for c in known_codes(r))
            candidates.append((0 if own else 1, (j - i) if j > i else len(ordered) + (i - j), j))
        if candidates:
            paired[id(ordered[min(candidates)[2]])] = h
    return paired
