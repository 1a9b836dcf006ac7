"""One small database handle for the audit log and the execution ledger: the service's store, a SQLite
file by default or PostgreSQL (`service.store_url`), with the same SQL (``?`` placeholders, portable
types) for both. The service's own tables go through SQLAlchemy (server/store.py); these two tables
live beside them and need only this."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from graphs.checkpointer import private_file

Run = Callable[[str, tuple[Any, ...]], list[tuple[Any, ...]]]


def _pg_errors() -> tuple[type[BaseException], ...]:
    try:
        import psycopg
    except ImportError:  # PostgreSQL is optional
        return ()
    return (psycopg.errors.UniqueViolation,)


class Database:
    """`target` is a path, ``sqlite:///PATH`` or ``postgresql://...``. Thread-safe; one connection."""

    def __init__(self, target: str | Path) -> None:
        text = str(target)
        self._lock = threading.RLock()
        self.duplicate: tuple[type[BaseException], ...] = (sqlite3.IntegrityError, *_pg_errors())
        if text.startswith(("postgresql://", "postgres://")):
            import psycopg

            self.kind = "postgresql"
            self.where = text.split("@")[-1]  # never the password
            self._pg = psycopg.connect(text, autocommit=True)
        else:
            path = private_file(Path(text.removeprefix("sqlite:///")))  # 0600, like the service's tables
            self.kind = "sqlite"
            self.where = str(path)
            self._sqlite = sqlite3.connect(
                str(path), isolation_level=None, check_same_thread=False, timeout=30
            )
            self._sqlite.execute("PRAGMA journal_mode=WAL")

    def close(self) -> None:
        with self._lock:
            (self._pg if self.kind == "postgresql" else self._sqlite).close()

    def _run(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        if self.kind == "postgresql":
            cur = self._pg.execute(sql.replace("?", "%s"), params)  # type: ignore[arg-type]
            return [tuple(r) for r in cur.fetchall()] if cur.description else []
        cursor = self._sqlite.execute(sql, params)
        return [tuple(r) for r in cursor.fetchall()] if cursor.description else []

    def run(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """One statement in its own transaction."""
        with self._lock:
            return self._run(sql, params)

    @contextmanager
    def transaction(self, serialize: int | None = None) -> Iterator[Run]:
        """Several statements, all or nothing. SQLite takes its write lock at once (BEGIN IMMEDIATE), so
        writers run one after the other; on PostgreSQL, `serialize` names an advisory lock held to the
        end of the transaction that does the same for everyone who names it."""
        with self._lock:
            if self.kind == "postgresql":
                with self._pg.transaction():
                    if serialize is not None:
                        self._run("SELECT pg_advisory_xact_lock(?)", (serialize,))
                    yield self._run
                return
            self._sqlite.execute("BEGIN IMMEDIATE")
            try:
                yield self._run
            except BaseException:
                self._sqlite.execute("ROLLBACK")
                raise
            self._sqlite.execute("COMMIT")
