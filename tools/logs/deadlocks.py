"""Deadlock details from database logs: SQL Server, PostgreSQL and MySQL (InnoDB) formats."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

from pydantic import BaseModel, Field

from tools.logs.codes import header_number, known_codes, pair_error_headers
from tools.world import LogRecord

# --- SQL Server: victim messages, trace-flag deadlock lists, XML deadlock reports ------------------
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
_INPUTBUF = re.compile(r"<inputbuf>\s*(.*?)\s*</inputbuf>", re.IGNORECASE | re.DOTALL)
_RETRY = re.compile(r"\bretr(?:y|ying|ied)\b|\battempt \d", re.IGNORECASE)
_GRAPH = re.compile(
    r"deadlock-list|deadlock_report|<deadlock\b|deadlock graph|LATEST DETECTED DEADLOCK"
    r"|Transactions deadlock detected|\*\*\*\s*\(\d+\)\s*TRANSACTION",
    re.IGNORECASE,
)

# --- PostgreSQL: "ERROR: deadlock detected" with DETAIL / CONTEXT / STATEMENT ---------------------
_PG_WAIT = re.compile(r"Process (\d+) waits for (\w+) on ([^;\n]+?); blocked by process (\d+)", re.IGNORECASE)
_PG_TARGET = re.compile(r"[a-z][a-z ]*?(?=\s*[\d(\[]|$)", re.IGNORECASE)
_PG_PROCESS_QUERY = re.compile(r"^\s*Process \d+: (.+)$", re.MULTILINE)
_PG_STATEMENT = re.compile(r"\bSTATEMENT:\s*([^\n]*(?:\n[ \t]+[^\n]*)*)")
_PG_RELATION = re.compile(r"\brelation \"([^\"]+)\"")
_PG_START = re.compile(r"\bdeadlock detected\b", re.IGNORECASE)
_PG_CONTINUATION = re.compile(r"[^\n]{0,100}?\b(?:DETAIL|CONTEXT|STATEMENT|HINT|QUERY):\s")

# --- MySQL: LATEST DETECTED DEADLOCK / innodb_print_all_deadlocks sections ------------------------
_MY_SECTION = re.compile(
    r"\*\*\*\s*\((\d+)\)\s*(TRANSACTION|HOLDS THE LOCK\(S\)|WAITING FOR THIS LOCK TO BE GRANTED)\s*:",
    re.IGNORECASE,
)
_MY_THREAD = re.compile(r"MySQL thread id (\d+)", re.IGNORECASE)
_MY_TABLE = re.compile(r"\btable\s+`([^`]+)`\.`([^`]+)`", re.IGNORECASE)
_MY_INDEX = re.compile(r"\bindex\s+`?([\w$]+)`?\s+of\s+table", re.IGNORECASE)
_MY_MODE = re.compile(r"\block[_ ]mode\s+([A-Z]+)\b")
_MY_LOCK_KIND = re.compile(r"\b(RECORD LOCKS|TABLE LOCK)\b")
_MY_ROLLBACK = re.compile(r"WE ROLL BACK TRANSACTION\s*\((\d+)\)", re.IGNORECASE)
_MY_START = re.compile(
    r"LATEST DETECTED DEADLOCK|Transactions deadlock detected|\*\*\*\s*\(1\)\s*TRANSACTION", re.IGNORECASE
)
_MY_NEW_REPORT = re.compile(r"LATEST DETECTED DEADLOCK|Transactions deadlock detected", re.IGNORECASE)
_MY_FIRST_TRANSACTION = re.compile(r"\*\*\*\s*\(1\)\s*TRANSACTION", re.IGNORECASE)
_MY_PREFIX = re.compile(r"^.*\[InnoDB\]\s?")

BLOCK_GAP_S = 2.0  # lines of one deadlock report shipped as separate documents arrive together
MAX_STATEMENTS = 5


class DeadlockDetails(BaseModel):
    """What the deadlock messages of a set of records say: who died, who held what, on which objects."""

    deadlocks: int = 0  # victim reports (or deadlock graphs, when no victim report was logged)
    graphs: int = 0
    retries: int = 0  # client messages retrying after a deadlock: echoes, not extra deadlocks
    codes: list[str] = Field(default_factory=list)  # e.g. "SQL Server error 1205"
    victims: list[str] = Field(default_factory=list)  # session / process / thread ids as logged
    victim_procedures: list[str] = Field(default_factory=list)
    owners: list[str] = Field(default_factory=list)
    owner_procedures: list[str] = Field(default_factory=list)
    objects: list[str] = Field(default_factory=list)  # tables / relations
    indexes: list[str] = Field(default_factory=list)
    resources: list[str] = Field(default_factory=list)
    modes: list[str] = Field(default_factory=list)
    statements: list[str] = Field(default_factory=list)  # verbatim, whitespace collapsed; redact to show
    latest_message: str | None = (
        None  # the latest deadlock report verbatim (a retry echo only if nothing else)
    )
    first_seen: datetime | None = None
    last_seen: datetime | None = None


def _clean(name: str) -> str:
    return name.replace("[", "").replace("]", "").strip(".")


def _process_id(raw: str) -> str:
    m = re.fullmatch(r"process(\d+)", raw, re.IGNORECASE)
    return m.group(1) if m else raw


def _add(items: list[str], value: str, limit: int | None = None) -> None:
    if value and value not in items and (limit is None or len(items) < limit):
        items.append(value)


def _statement(text: str) -> str:
    return " ".join(text.split()).rstrip(";")


def _block_kind(message: str) -> str | None:
    """'mysql' or 'postgresql' when the message opens a deadlock report that may continue in later records."""
    if _MY_START.search(message) and not _MY_ROLLBACK.search(message):
        return "mysql"
    if _PG_START.search(message) and not _MY_START.search(message):
        return "postgresql"
    return None


def _continues(kind: str, record: LogRecord, so_far: str) -> bool:
    """Whether a record continues the open report `so_far` (of `kind`) rather than starting something new."""
    if kind == "postgresql":
        return bool(_PG_CONTINUATION.match(record.message))
    if any(c.category == "deadlock" for c in known_codes(record)) or _MY_NEW_REPORT.search(record.message):
        return False
    return not (_MY_FIRST_TRANSACTION.search(record.message) and _MY_FIRST_TRANSACTION.search(so_far))


def assemble_reports(records: Sequence[LogRecord]) -> tuple[list[tuple[LogRecord, str]], set[int]]:
    """Join multi-document deadlock reports into one text each.

    PostgreSQL may ship DETAIL / CONTEXT / STATEMENT of an "ERROR: deadlock detected" as separate
    documents, and MySQL's innodb_print_all_deadlocks writes one line per document from "Transactions
    deadlock detected" / "*** (1) TRANSACTION:" to "*** WE ROLL BACK TRANSACTION (n)". A continuation is
    a document of the same entity at most BLOCK_GAP_S seconds after the previous line of the report.
    Returns (record, text) per report or standalone record, and the ids of the continuation records."""
    items: list[tuple[LogRecord, str]] = []
    continuations: set[int] = set()
    open_blocks: dict[str, tuple[int, str, datetime]] = {}  # entity -> (item index, kind, last line time)
    for r in sorted(records, key=lambda rec: rec.timestamp):
        block = open_blocks.get(r.entity)
        if (
            block is not None
            and (r.timestamp - block[2]).total_seconds() <= BLOCK_GAP_S
            and _continues(block[1], r, items[block[0]][1])
        ):
            index, open_kind, _ = block
            first, text = items[index]
            line = _MY_PREFIX.sub("", r.message) if open_kind == "mysql" else r.message
            items[index] = (first, f"{text}\n{line}")
            continuations.add(id(r))
            open_blocks[r.entity] = (index, open_kind, r.timestamp)
            if open_kind == "mysql" and _MY_ROLLBACK.search(r.message):
                del open_blocks[r.entity]
            continue
        open_blocks.pop(r.entity, None)
        new_kind = _block_kind(r.message)
        text = _MY_PREFIX.sub("", r.message) if new_kind == "mysql" else r.message
        items.append((r, text))
        if new_kind is not None:
            open_blocks[r.entity] = (len(items) - 1, new_kind, r.timestamp)
    return items, continuations


def _mssql(text: str, is_graph: bool, out: DeadlockDetails) -> None:
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
    for m in _INPUTBUF.finditer(text):
        _add(out.statements, _statement(m.group(1)), MAX_STATEMENTS)


def _postgres(text: str, out: DeadlockDetails) -> None:
    """The reporting process is the first in DETAIL's cycle and is the one whose transaction is aborted."""
    waits = list(_PG_WAIT.finditer(text))
    if waits:
        _add(out.victims, waits[0].group(1))
        _add(out.owners, waits[0].group(4))
    for m in waits:
        _add(out.modes, m.group(2))
        target = _PG_TARGET.match(m.group(3).strip())
        if target:
            kind = target.group(0).strip().lower()
            _add(out.resources, kind if kind.endswith("lock") else f"{kind} lock")
    for m in _PG_RELATION.finditer(text):
        _add(out.objects, m.group(1))
    for m in (*_PG_PROCESS_QUERY.finditer(text), *_PG_STATEMENT.finditer(text)):
        _add(out.statements, _statement(m.group(1)), MAX_STATEMENTS)


def _mysql(text: str, out: DeadlockDetails) -> None:
    """InnoDB's report: per transaction (n) its thread id and statement, the locks held and awaited, and
    which transaction InnoDB rolled back."""
    sections = list(_MY_SECTION.finditer(text))
    threads: dict[str, str] = {}
    for i, m in enumerate(sections):
        end = sections[i + 1].start() if i + 1 < len(sections) else len(text)
        body = text[m.end() : end].split("*** WE ROLL BACK")[0]
        if m.group(2).upper() != "TRANSACTION":
            continue
        lines = [line.strip() for line in body.splitlines()]
        at = next((k for k, line in enumerate(lines) if _MY_THREAD.search(line)), None)
        if at is None:
            continue
        threads[m.group(1)] = _MY_THREAD.search(lines[at]).group(1)  # type: ignore[union-attr]
        query = " ".join(line for line in lines[at + 1 :] if line)
        _add(out.statements, _statement(query), MAX_STATEMENTS)
    rolled_back = _MY_ROLLBACK.search(text)
    if rolled_back:
        victim = rolled_back.group(1)
        _add(out.victims, threads.get(victim, f"transaction ({victim})"))
        for n, thread in threads.items():
            if n != victim:
                _add(out.owners, thread)
    for m in _MY_TABLE.finditer(text):
        _add(out.objects, f"{m.group(1)}.{m.group(2)}")
    for m in _MY_INDEX.finditer(text):
        _add(out.indexes, m.group(1))
    for m in _MY_MODE.finditer(text):
        _add(out.modes, m.group(1))
    for m in _MY_LOCK_KIND.finditer(text):
        _add(out.resources, "record lock" if m.group(1).upper() == "RECORD LOCKS" else "table lock")


def deadlock_details(records: Sequence[LogRecord]) -> DeadlockDetails:
    """Extract victims, procedures, statements, objects, indexes and owners from deadlock messages.

    Understands SQL Server victim messages ("Transaction (Process ID 233) was deadlocked ...
    Procedure: dbo.X"), trace-flag deadlock lists ("victim=process233 ... keylock objectname=...
    indexname=... owner process=process198 Procedure dbo.Y") and XML deadlock reports
    (victimProcess id=, procname=, objectname=, indexname=, owner id=, inputbuf); PostgreSQL's
    "ERROR: deadlock detected" with "DETAIL: Process N waits for ShareLock on transaction T; blocked by
    process M.", "Process N: <query>", "CONTEXT: ... in relation "t"" and "STATEMENT: <query>"; MySQL's
    "Deadlock found when trying to get lock" errors and InnoDB LATEST DETECTED DEADLOCK reports
    ("*** (1) TRANSACTION:", "MySQL thread id", "index X of table `db`.`t`", "lock_mode X",
    "*** WE ROLL BACK TRANSACTION (2)"). A SQL Server "Error: 1205, Severity: 13, State: 45." line next to
    its victim message is the same deadlock, not another one.
    """
    out = DeadlockDetails()
    victim_reports = 0
    headers = {id(h) for h in pair_error_headers(records).values()}
    items, _ = assemble_reports([r for r in records if id(r) not in headers])
    latest_retry: str | None = None
    for r, text in items:
        codes = [c for c in known_codes(r) if c.category == "deadlock"]
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
            latest_retry = text
        else:
            victim_reports += 1
        if not _RETRY.search(text) and header_number(text) is None:
            out.latest_message = text
        _mssql(text, is_graph, out)
        _postgres(text, out)
        _mysql(text, out)
    out.latest_message = out.latest_message or latest_retry
    out.deadlocks = victim_reports or out.graphs
    return out
