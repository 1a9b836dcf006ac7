"""Checkpointers: SQLite by default (a pending approval survives a restart), PostgreSQL when configured."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver


@contextmanager
def open_checkpointer(url: str | None, default_sqlite: Path) -> Iterator[BaseCheckpointSaver]:
    """`None` or a path / sqlite:///path -> SQLite file; postgresql://... -> PostgreSQL; memory -> RAM."""
    if url == "memory":
        yield InMemorySaver()
        return
    if url and url.startswith(("postgresql://", "postgres://")):
        from langgraph.checkpoint.postgres import PostgresSaver

        with PostgresSaver.from_conn_string(url) as saver:
            saver.setup()
            yield saver
        return
    from langgraph.checkpoint.sqlite import SqliteSaver

    path = Path(url.removeprefix("sqlite:///")) if url else default_sqlite
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), check_same_thread=False)
    try:
        sqlite_saver = SqliteSaver(conn)
        sqlite_saver.setup()
        yield sqlite_saver
    finally:
        conn.close()
