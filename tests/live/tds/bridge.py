"""A pysqlbridge TDS server that answers the SQL Server DMVs the mssql query pack reads.

pysqlbridge speaks the TDS protocol (PRELOGIN, TLS, LOGIN7, SQL batches, RPC) well enough for
Microsoft's ODBC Driver 18, and answers SELECTs over JSON tables. It is not SQL Server: these
adaptations make it serve a DMV snapshot, and each is a place where it differs from the real thing.

1. ``sys.<view>`` names the DMV rows in ``dmv/sys.<view>.json``, ahead of the bridge's own few
   catalog views. A per-database view named three-part, ``tempdb.sys.<view>``, is
   ``dmv/tempdb.sys.<view>.json`` (the bridge itself drops the database part of a name).
2. The dynamic management *functions* (``sys.dm_exec_sql_text(handle)``,
   ``sys.dm_os_volume_stats(database_id, file_id)``) are tables keyed by their arguments, and
   ``OUTER|CROSS APPLY sys.<function>(args) AS x`` is rewritten to ``LEFT|INNER JOIN sys.<function>
   AS x ON x.<key> = (arg) ...`` before the bridge parses the statement: the bridge has no APPLY over
   a function. Everything else in a statement reaches the bridge as sent.
3. ``DB_ID()``, ``DB_NAME(id)`` and ``FILEPROPERTY(file, 'SpaceUsed')`` answer from the served
   ``sys.databases`` rows and ``dmv/fileproperty.json`` (the bridge's own answer about the catalog
   it serves); the current database is ``CURRENT_DATABASE``.
4. Prepared statements: the driver sends ``sp_prepexec`` / ``sp_prepare`` / ``sp_execute`` /
   ``sp_unprepare`` RPCs for a parameterised ``SQLPrepare``/``SQLExecute``; the bridge only knows
   ``sp_executesql``. They are answered here, with the prepared handle returned as the OUTPUT
   parameter (RETURNVALUE token) the way SQL Server does.
5. Timestamps in the fixtures are written against ``FIXTURE_NOW`` and shifted by the real clock at
   load, so ages (transaction open for 23 minutes) hold against ``SYSDATETIME()``. An ISO-8601 text
   column is served as ``datetime``, a ``0x...`` text column as ``varbinary``.
6. ``delay(view, seconds)`` holds every statement that reads ``view`` before answering, until the
   client cancels (a TDS ATTENTION, which is what a query timeout sends) or the time is up: a slow
   server, for the client's query timeout.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import secrets
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pysqlbridge import predicate
from pysqlbridge.catalog import Catalog
from pysqlbridge.logins import Login, LoginStore
from pysqlbridge.server import BridgeServer, _Handler
from pysqlbridge.source import Table, from_records
from pysqlbridge.tds.result import (
    Column,
    DateTime,
    Query,
    QueryError,
    QueryResult,
    VarBinary,
    col_metadata,
    row,
)

DMV_DIR = Path(__file__).with_name("dmv")
FIXTURE_NOW = dt.datetime(2026, 3, 4, 10, 15, 0)  # the clock the fixture timestamps were written against
CURRENT_DATABASE = "Sales"  # the database a login lands in (the connection's Database=)
INVALID_OBJECT_NAME = 208

# dynamic management functions -> the columns their arguments are matched to
FUNCTION_KEYS: dict[str, tuple[str, ...]] = {
    "dm_exec_sql_text": ("sql_handle",),
    "dm_os_volume_stats": ("database_id", "file_id"),
}
_APPLY = re.compile(r"\b(CROSS|OUTER)\s+APPLY\s+(?:\[?sys\]?\.)\[?(\w+)\]?\s*\(", re.IGNORECASE)
_ALIAS = re.compile(r"\s*(?:AS\s+)?\[?(\w+)\]?", re.IGNORECASE)
_ISO = re.compile(r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d+)?)?$")
_HEX = re.compile(r"^0x[0-9A-Fa-f]+$")
_THREE_PART = re.compile(r"\b(\w+)\.sys\.(\w+)\b", re.IGNORECASE)
_DECLARED = re.compile(r"@\w+")
_PREPARED = {"sp_prep_exec", "sp_prepexec", "sp_prepare", "sp_execute", "sp_unprepare"}

_local = threading.local()  # the socket of the connection a handler thread is answering


# --- fixtures -----------------------------------------------------------------------------------


def _typed(table: Table, shift: dt.timedelta) -> Table:
    """ISO-8601 text columns become datetime (shifted to the real clock), 0x... columns varbinary."""
    columns, rows = list(table.columns), [list(r) for r in table.rows]
    for at, column in enumerate(columns):
        present = [r[at] for r in rows if r[at] is not None]
        if not present or not all(isinstance(v, str) for v in present):
            continue
        if all(_ISO.match(v) for v in present):
            columns[at] = Column(column.name, DateTime())
            for r in rows:
                r[at] = None if r[at] is None else dt.datetime.fromisoformat(r[at]) + shift
        elif all(_HEX.match(v) for v in present):
            columns[at] = Column(column.name, VarBinary(64))
            for r in rows:
                r[at] = None if r[at] is None else bytes.fromhex(r[at][2:])
    return Table(name=table.name, columns=columns, rows=rows)


def load_dmvs(directory: Path = DMV_DIR, now: dt.datetime | None = None) -> dict[str, Table]:
    """Every ``[database.]sys.<view>.json`` in `directory`, by lower-case ``view`` or ``database__view``."""
    shift = (now or dt.datetime.now()) - FIXTURE_NOW
    views = {}
    for path in sorted(directory.glob("*.json")):
        parts = path.stem.lower().split(".")
        if parts[-2:-1] != ["sys"]:
            continue
        name = "__".join([*parts[:-2], parts[-1]])
        document = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(document, dict):  # {"columns": [...], "rows": [...]}: a view that may be empty
            rows, names = document.get("rows") or [], document.get("columns")
        else:
            rows, names = document, None
        table = from_records(rows, name=name, origin=str(path), flatten=False, columns=names)
        views[name] = _typed(table, shift)
    return views


# --- SQL adaptations ----------------------------------------------------------------------------


def _arguments(sql: str, start: int) -> tuple[list[str], int]:
    """The comma-separated arguments of the call whose '(' is just before `start`, and the index after ')'."""
    depth, args, begun, at = 1, [], start, start
    quote = False
    while at < len(sql):
        ch = sql[at]
        if ch == "'":
            quote = not quote
        elif not quote and ch == "(":
            depth += 1
        elif not quote and ch == ")":
            depth -= 1
            if depth == 0:
                args.append(sql[begun:at].strip())
                return args, at + 1
        elif not quote and ch == "," and depth == 1:
            args.append(sql[begun:at].strip())
            begun = at + 1
        at += 1
    raise QueryError("unbalanced parentheses in an APPLY", number=102)


def rewrite_three_part_names(sql: str, served: set[str]) -> str:
    """``tempdb.sys.x`` -> ``sys.tempdb__x`` where that view is served, else ``sys.x``."""

    def named(m: re.Match[str]) -> str:
        key = f"{m.group(1)}__{m.group(2)}".lower()
        return f"sys.{key}" if key in served else f"sys.{m.group(2)}"

    return _THREE_PART.sub(named, sql)


def rewrite_function_applies(sql: str) -> str:
    """``OUTER APPLY sys.dm_exec_sql_text(h) AS t`` -> ``LEFT JOIN sys.dm_exec_sql_text AS t ON
    t.sql_handle = (h)`` (CROSS APPLY -> INNER JOIN), for the functions in FUNCTION_KEYS."""
    out, at = [], 0
    while (m := _APPLY.search(sql, at)) is not None:
        function = m.group(2).lower()
        keys = FUNCTION_KEYS.get(function)
        if keys is None:
            raise QueryError(f"APPLY of sys.{function} is not served by the test server", number=102)
        args, end = _arguments(sql, m.end())
        alias = _ALIAS.match(sql, end)
        if alias is None or len(args) != len(keys):
            raise QueryError(f"sys.{function} takes {len(keys)} argument(s) and an alias", number=102)
        name = alias.group(1)
        on = " AND ".join(f"{name}.{key} = ({arg})" for key, arg in zip(keys, args, strict=True))
        join = "LEFT JOIN" if m.group(1).upper() == "OUTER" else "INNER JOIN"
        out.append(f"{sql[at : m.start()]}{join} sys.{function} AS {name} ON {on}")
        at = alias.end()
    out.append(sql[at:])
    return "".join(out)


# --- functions answered from the served views -----------------------------------------------------

_ORIGINAL_FUNCTIONS = {name: predicate.CONTEXT_FUNCTIONS[name] for name in ("DB_ID", "DB_NAME")}


def _served(about: dict[str, Any]) -> DmvCatalog | None:
    found = about.get("dmv_catalog")
    return found if isinstance(found, DmvCatalog) else None


def _db_id(about: dict[str, Any], *args: Any) -> Any:
    cat = _served(about)
    if cat is None:
        return _ORIGINAL_FUNCTIONS["DB_ID"](about, *args)
    return cat.database_id(str(args[0]) if args and args[0] is not None else cat.current_database)


def _db_name(about: dict[str, Any], *args: Any) -> Any:
    cat = _served(about)
    if cat is None:
        return _ORIGINAL_FUNCTIONS["DB_NAME"](about, *args)
    return cat.database_name(int(args[0]) if args and args[0] is not None else None)


def _file_property(about: dict[str, Any], file_name: Any, prop: Any) -> Any:
    cat = _served(about)
    if cat is None or str(prop).strip().lower() != "spaceused":
        return None
    return cat.space_used(str(file_name))


def _install_functions() -> None:
    predicate.CONTEXT_FUNCTIONS["DB_ID"] = _db_id
    predicate.CONTEXT_FUNCTIONS["DB_NAME"] = _db_name
    predicate.CONTEXT_FUNCTIONS["FILEPROPERTY"] = _file_property
    predicate.FUNCTION_KINDS.setdefault("FILEPROPERTY", int)


# --- prepared statements: RPC answers with an OUTPUT handle -----------------------------------------

_TOKEN_RETURNSTATUS, _TOKEN_RETURNVALUE = 0x79, 0xAC
_TOKEN_DONEPROC, _TOKEN_DONEINPROC = 0xFE, 0xFF
_DONE_MORE, _DONE_COUNT, _CMD_SELECT = 0x0001, 0x0010, 0x00C1


@dataclass(frozen=True)
class ProcedureResult(QueryResult):
    """A stored-procedure answer: rows in DONEINPROC, RETURNSTATUS 0, the OUTPUT handle, DONEPROC."""

    handle: int | None = None

    def encode(self, tds_version: int = 0x74000004, server: str = "") -> bytes:
        out = b""
        if self.columns:
            out += col_metadata(self.columns, tds_version) + b"".join(row(self.columns, r) for r in self.rows)
            out += bytes([_TOKEN_DONEINPROC]) + struct.pack(
                "<HHQ", _DONE_COUNT | _DONE_MORE, _CMD_SELECT, len(self.rows)
            )
        out += bytes([_TOKEN_RETURNSTATUS]) + struct.pack("<i", 0)
        if self.handle is not None:
            out += (
                bytes([_TOKEN_RETURNVALUE])
                + struct.pack("<H", 0)  # ordinal: the first parameter
                + bytes([0])  # unnamed, as the driver sent it
                + bytes([0x01])  # status: an OUTPUT parameter
                + struct.pack("<IH", 0, 0x0001)  # user type, flags (nullable)
                + bytes([0x26, 4, 4])  # INTN(4), then the value's length
                + struct.pack("<i", self.handle)
            )
        return out + bytes([_TOKEN_DONEPROC]) + struct.pack("<HHQ", 0, 0, 0)


# --- the catalog ----------------------------------------------------------------------------------


@dataclass
class Received:
    """One request the server answered: how it arrived and the SQL it carried (before rewriting)."""

    kind: str  # batch | sp_executesql | sp_prepexec | sp_execute | ...
    sql: str


class DmvCatalog(Catalog):
    """The bridge's catalog, answering ``sys.<view>`` from a DMV snapshot."""

    def __init__(
        self,
        views: dict[str, Table],
        space_used: dict[str, int] | None = None,
        current_database: str = CURRENT_DATABASE,
    ) -> None:
        super().__init__()
        self.views = views
        self.space_used_pages = {k.lower(): v for k, v in (space_used or {}).items()}
        self.hidden: set[str] = set()  # views to answer as missing (a feature not installed)
        self.current_database = current_database
        self.delays: dict[str, float] = {}
        self.received: list[Received] = []
        self._lock = threading.Lock()

    # names
    def get(self, name: str, schema: str | None = None, parameters: dict | None = None) -> Table:
        key = name.lower().strip("[]")
        if schema and schema.strip("[]").lower() == "sys" and key in self.views:
            if key in self.hidden:
                raise QueryError(f"Invalid object name 'sys.{name}'.", number=INVALID_OBJECT_NAME)
            return self.views[key]
        return super().get(name, schema, parameters)

    def _about(self, query: Query) -> dict:
        return {**super()._about(query), "database": self.current_database, "dmv_catalog": self}

    def _rows(self, view: str) -> list[dict[str, Any]]:
        table = self.views.get(view)
        if table is None:
            return []
        names = [c.name.lower() for c in table.columns]
        return [dict(zip(names, r, strict=True)) for r in table.rows]

    def database_id(self, name: str) -> int | None:
        return next((d["database_id"] for d in self._rows("databases") if d["name"] == name), None)

    def database_name(self, database_id: int | None) -> str | None:
        if database_id is None:
            return self.current_database
        return next((d["name"] for d in self._rows("databases") if d["database_id"] == database_id), None)

    def space_used(self, file_name: str) -> int | None:
        """FILEPROPERTY(name, 'SpaceUsed'): pages used, for a file of the current database only."""
        return self.space_used_pages.get(file_name.lower())

    # requests
    def answer(self, request: Query | str, *, select=None, named=None, depth: int = 0) -> QueryResult:  # type: ignore[no-untyped-def]
        if select is not None or isinstance(request, str):
            return super().answer(request, select=select, named=named, depth=depth)
        procedure = (request.procedure or "").rsplit(".", 1)[-1].strip("[]").lower()
        if procedure in _PREPARED:
            return self._prepared(procedure, request)
        if procedure:
            return self._run(procedure, request)
        return self._run("sp_executesql" if request.parameters else "batch", request)

    def _run(self, kind: str, request: Query) -> QueryResult:
        with self._lock:
            self.received.append(Received(kind, request.sql))
        self._maybe_wait(request.sql)
        sql = rewrite_function_applies(rewrite_three_part_names(request.sql, set(self.views)))
        return super().answer(dataclasses.replace(request, sql=sql))

    def _prepared(self, procedure: str, request: Query) -> QueryResult:
        """The prepared-statement RPCs, their parameters positional as the driver sends them:
        sp_prepexec(handle OUT, declarations, statement, values...), sp_prepare(handle OUT,
        declarations, statement, options), sp_execute(handle, values...), sp_unprepare(handle)."""
        prepared: dict[int, tuple[str, list[str]]] = request.session.setdefault("prepared", {})
        args = list(request.arguments)
        if procedure in ("sp_prep_exec", "sp_prepexec", "sp_prepare"):
            if len(args) < 3 or not isinstance(args[2], str):
                raise QueryError(f"{procedure} needs a handle, the declarations and a statement", number=201)
            names = _DECLARED.findall(str(args[1] or ""))
            handle = request.session["prepared_last"] = request.session.get("prepared_last", 0) + 1
            prepared[handle] = (args[2], names)
            if procedure == "sp_prepare":
                with self._lock:
                    self.received.append(Received(procedure, args[2]))
                return ProcedureResult(columns=[], rows=[], handle=handle)
            values = args[3:]
        else:
            handle = int(args[0]) if args and args[0] is not None else 0
            if procedure == "sp_unprepare":
                with self._lock:
                    self.received.append(Received(procedure, f"handle {handle}"))
                prepared.pop(handle, None)
                return ProcedureResult(columns=[], rows=[])
            if handle not in prepared:
                raise QueryError(f"Could not find prepared statement with handle {handle}.", number=8179)
            values = args[1:]
        statement, names = prepared[handle]
        bound = {**dict(zip(names, values, strict=False)), **request.parameters}
        answered = self._run(procedure, Query(sql=statement, parameters=bound, session=request.session))
        return ProcedureResult(
            answered.columns, answered.rows, handle=handle if procedure != "sp_execute" else None
        )

    def serve(self, path: Path, now: dt.datetime | None = None) -> None:
        """Serve the view in fixture file `path` (``sys.<view>.json``) from now on: a later sample."""
        loaded = load_dmvs(path.parent, now)
        key = path.stem.lower().split(".")[-1]
        self.views[key] = loaded[key]

    # slowness
    def delay(self, view: str, seconds: float) -> None:
        """Hold every statement that reads `view` for `seconds` (0 removes the delay)."""
        if seconds > 0:
            self.delays[view.lower()] = seconds
        else:
            self.delays.pop(view.lower(), None)

    def _maybe_wait(self, sql: str) -> None:
        text = sql.lower()
        seconds = max((s for v, s in self.delays.items() if v in text), default=0.0)
        if seconds <= 0:
            return
        sock: socket.socket | None = getattr(_local, "sock", None)
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if sock is None:
                time.sleep(left)
                break
            readable, _, _ = select.select([sock], [], [], left)
            if readable:  # the client sent something mid-statement: an ATTENTION (cancel)
                break


# --- the server -----------------------------------------------------------------------------------


class _DmvHandler(_Handler):
    def handle(self) -> None:
        _local.sock = self.request
        try:
            super().handle()
        finally:
            _local.sock = None


@dataclass
class DmvBridge:
    """A running test server: where it listens, the login it admits, and its catalog."""

    server: BridgeServer
    thread: threading.Thread
    catalog: DmvCatalog
    user: str
    password: str = field(repr=False)
    loaded_at: dt.datetime = field(default_factory=dt.datetime.now)  # the fixtures' FIXTURE_NOW moment

    @property
    def fixture_now(self) -> dt.datetime:
        """FIXTURE_NOW on the server's clock now: fixture ages have grown by the time since loading."""
        return FIXTURE_NOW + (dt.datetime.now() - self.loaded_at)

    @property
    def host(self) -> str:
        return str(self.server.address[0])

    @property
    def port(self) -> int:
        return int(self.server.address[1])

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def start_dmv_bridge(directory: Path = DMV_DIR, host: str = "127.0.0.1", port: int = 0) -> DmvBridge:
    """Serve the DMV fixtures in `directory` on `host`:`port` (0 = a free port the OS picks)."""
    _install_functions()
    loaded_at = dt.datetime.now()
    used = json.loads((directory / "fileproperty.json").read_text(encoding="utf-8"))
    catalog = DmvCatalog(load_dmvs(directory, loaded_at), {f["name"]: f["SpaceUsed"] for f in used})
    user, password = "opscopilot_ro", secrets.token_urlsafe(16)
    logins = LoginStore([Login(user=user, secret=password, hashed=False)])
    server = BridgeServer(host, port, query_handler=catalog.answer, database=CURRENT_DATABASE, logins=logins)
    server.RequestHandlerClass = _DmvHandler
    thread = threading.Thread(target=server.serve_forever, name="tds-dmv-bridge", daemon=True)
    thread.start()
    return DmvBridge(server, thread, catalog, user, password, loaded_at)
