"""Checkpointers: SQLite by default (a pending approval survives a restart), PostgreSQL when configured.

Stored state is trusted only with integrity: the serializer is LangGraph's JsonPlusSerializer in
strict mode (msgpack revives only its built-in safe types, no pickle), and our state is JSON-shaped,
so an edited checkpoint cannot make a process import or call anything. SQLite files are created
0600 in a 0700 folder.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer


def strict_serializer() -> JsonPlusSerializer:
    """Only LangGraph's safe msgpack types (datetime, uuid, Send, Interrupt, Command ...) are revived;
    anything else in a checkpoint comes back as inert data, never as a constructed object."""
    return JsonPlusSerializer(pickle_fallback=False, allowed_json_modules=None, allowed_msgpack_modules=None)


def private_file(path: Path) -> Path:
    """Create `path` (and its folder) readable by the owner only; tighten an existing one."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)
    return path


@contextmanager
def open_checkpointer(url: str | None, default_sqlite: Path) -> Iterator[BaseCheckpointSaver]:
    """`None` or a path / sqlite:///path -> SQLite file; postgresql://... -> PostgreSQL; memory -> RAM."""
    serde = strict_serializer()
    if url == "memory":
        yield InMemorySaver(serde=serde)
        return
    if url and url.startswith(("postgresql://", "postgres://")):
        from langgraph.checkpoint.postgres import PostgresSaver
        from psycopg.rows import dict_row
        from psycopg_pool import ConnectionPool

        kwargs = {"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row}
        with ConnectionPool(url, min_size=1, max_size=4, kwargs=kwargs, open=True) as pool:
            saver = PostgresSaver(pool, serde=serde)  # type: ignore[arg-type]
            saver.setup()
            yield saver
        return
    from langgraph.checkpoint.sqlite import SqliteSaver

    path = private_file(Path(url.removeprefix("sqlite:///")) if url else default_sqlite)
    conn = sqlite3.connect(str(path), check_same_thread=False, timeout=30)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        sqlite_saver = SqliteSaver(conn, serde=serde)
        sqlite_saver.setup()
        yield sqlite_saver
    finally:
        conn.close()
