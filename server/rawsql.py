"""Statements compiled once per dialect and run on the DBAPI cursor of a SQLAlchemy connection.

The alert intake writes a few rows per webhook at thousands of webhooks a second; there SQLAlchemy's
per-call work (cache key, compilation lookup, bind processors, `json.dumps` per JSON column) costs
more than SQLite's own. A `Statement` is compiled by SQLAlchemy once for the store's dialect (the
same SQL it would send), and `executemany` hands the rows to the driver (sqlite3, psycopg) inside
the caller's transaction. JSON columns are serialised with orjson to the text SQLAlchemy reads back.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, cast

import orjson
from sqlalchemy import JSON, Connection, Table
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

_JSON_OPTIONS = orjson.OPT_NON_STR_KEYS


def to_json(value: Any) -> str | None:
    """A JSON column's value as text (None stays SQL NULL)."""
    return None if value is None else orjson.dumps(value, option=_JSON_OPTIONS).decode()


class Statement:
    """One INSERT/UPDATE compiled for `dialect`; rows are dicts keyed by the statement's bind names."""

    def __init__(
        self,
        stmt: ClauseElement,
        dialect: Dialect,
        json_keys: Iterable[str] = (),
        column_keys: list[str] | None = None,
    ) -> None:
        compiled = cast(SQLCompiler, stmt.compile(dialect=dialect, column_keys=column_keys))
        self.sql = compiled.string
        # positional drivers (sqlite3) take tuples in this order; named ones (psycopg) take the dicts
        self.order = tuple(compiled.positiontup or ()) if compiled.positional else None
        self.json_keys = frozenset(json_keys)

    @classmethod
    def insert(cls, table: Table, dialect: Dialect) -> Statement:
        """INSERT of every column of `table` (rows carry every column)."""
        json_keys = [c.name for c in table.columns if isinstance(c.type, JSON)]
        return cls(table.insert(), dialect, json_keys, column_keys=[c.name for c in table.columns])

    def executemany(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run the statement once per row, in `conn`'s transaction."""
        if not rows:
            return
        json_keys = self.json_keys
        params: list[Any]
        if self.order is not None:
            order = self.order
            params = [tuple(to_json(r[k]) if k in json_keys else r[k] for k in order) for r in rows]
        elif json_keys:
            params = [{**r, **{k: to_json(r[k]) for k in json_keys}} for r in rows]
        else:
            params = list(rows)
        cursor = conn.connection.cursor()
        try:
            cursor.executemany(self.sql, params)
        finally:
            cursor.close()


@contextlib.contextmanager
def pipelined(conn: Connection) -> Iterator[None]:
    """Send the statements run inside in one round trip where the driver can (psycopg's pipeline
    mode: each `executemany` would otherwise wait for its own answer); a no-op for sqlite3."""
    raw = conn.connection.dbapi_connection
    pipeline = getattr(raw, "pipeline", None)
    if pipeline is None:
        yield
        return
    with pipeline():
        yield


def placeholder(dialect: Dialect) -> str:
    """The driver's positional placeholder: ``?`` (sqlite3) or ``%s`` (psycopg)."""
    return "?" if dialect.paramstyle == "qmark" else "%s"


def fetch(conn: Connection, sql: str, params: tuple[Any, ...] | list[Any]) -> list[tuple[Any, ...]]:
    """Rows of a hand-written SELECT (positional placeholders of the dialect)."""
    cursor = conn.connection.cursor()
    try:
        cursor.execute(sql, params)
        return list(cursor.fetchall())
    finally:
        cursor.close()
