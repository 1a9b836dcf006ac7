"""The service store (SQLAlchemy Core): investigations, approvals, chat threads; SQLite or PostgreSQL.

The same code serves both: an embedded SQLite file (0600, WAL, every write transaction BEGIN
IMMEDIATE so concurrent writers queue instead of failing) or a PostgreSQL database.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, func, insert, select, update
from sqlalchemy.engine import make_url

from graphs.checkpointer import private_file
from server import schema as t

log = logging.getLogger(__name__)

ACTIVE = ("queued", "investigating", "abandoned")  # a run that may (still or again) start


def utcnow() -> str:
    return datetime.now(UTC).isoformat()


def iso_in(minutes: float) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat()


ID_STAMP = "%Y%m%d-%H%M%S"


def new_id(prefix: str) -> str:
    """`prefix-YYYYmmdd-HHMMSS-<12 hex digits>`: sorts by time; 48 random bits, so thousands of ids a
    second do not collide (with 32 bits, alert ingest at ~5,000 ids/s met a primary-key clash, which
    failed a whole group commit)."""
    return f"{prefix}-{datetime.now(UTC).strftime(ID_STAMP)}-{os.urandom(6).hex()}"


class StoreError(RuntimeError):
    """The store could not be opened or used; the message names the URL without its password."""


def sqlalchemy_url(url: str | None, data_dir: Path) -> str:
    """`None` -> the embedded SQLite file; postgresql://... -> the psycopg 3 driver."""
    if not url:
        return f"sqlite:///{private_file(data_dir / 'opscopilot.sqlite')}"
    if url.startswith("sqlite:///"):
        return f"sqlite:///{private_file(Path(url.removeprefix('sqlite:///')))}"
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str | None, data_dir: Path) -> Engine:
    target = sqlalchemy_url(url, data_dir)
    if target.startswith("sqlite"):
        engine = create_engine(
            target, connect_args={"check_same_thread": False, "timeout": 30}, pool_size=8, max_overflow=8
        )

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes (WAL)
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Connection) -> None:
            # writers take the write lock up front (no deadlocking lock upgrades); readers don't
            write = conn.get_execution_options().get("opscopilot_write")
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        return engine
    return create_engine(target, pool_size=8, max_overflow=4, pool_pre_ping=True)


def public_store_url(url: str | None) -> str:
    if not url:
        return "embedded SQLite"
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # a URL SQLAlchemy cannot parse: show only its scheme
        return url.split(":", 1)[0] + "://..."


def reconcile_schema(engine: Engine) -> None:
    """Bring a store written by an earlier release up to this schema before `create_all`.

    A table missing only nullable columns gets them added; a table whose primary key differs (the
    0.1 CLI's `investigations` index, keyed by thread id) is kept under `<name>_legacy` and a fresh
    one is created. Nothing is dropped."""
    from sqlalchemy import inspect

    inspector = inspect(engine)
    present = set(inspector.get_table_names())
    with engine.begin() as conn:
        for table in t.metadata.sorted_tables:
            if table.name not in present:
                continue
            have = {c["name"] for c in inspector.get_columns(table.name)}
            missing = [c for c in table.columns if c.name not in have]
            keys = {c.name for c in table.primary_key.columns}
            if not missing:
                continue
            if keys - have or any(not c.nullable and c.server_default is None for c in missing):
                legacy = f"{table.name}_legacy"
                if legacy in present:
                    legacy = f"{table.name}_legacy_{int(time.time())}"
                conn.exec_driver_sql(f'ALTER TABLE "{table.name}" RENAME TO "{legacy}"')
                log.warning("store: table %s is from an earlier release; kept as %s", table.name, legacy)
                continue
            for column in missing:
                kind = column.type.compile(dialect=engine.dialect)
                conn.exec_driver_sql(f'ALTER TABLE "{table.name}" ADD COLUMN "{column.name}" {kind}')
                log.info("store: added column %s.%s", table.name, column.name)


class Store:
    """Every table of the service behind one engine. Thread-safe (pooled connections)."""

    def __init__(self, url: str | None, data_dir: Path) -> None:
        self.url = url
        self.is_sqlite = not url or url.startswith("sqlite")
        try:
            self.engine = make_engine(url, data_dir)
            reconcile_schema(self.engine)
            t.metadata.create_all(self.engine)
        except Exception as exc:
            raise StoreError(f"cannot open the store at {public_store_url(url)}: {exc}") from None

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def tx(self) -> Iterator[Connection]:
        """One write transaction (committed on exit, rolled back on an exception)."""
        with self.engine.connect().execution_options(opscopilot_write=True) as conn, conn.begin():
            yield conn

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")

    # --- investigations ------------------------------------------------------------------------

    @staticmethod
    def investigation_row(**row: Any) -> dict[str, Any]:
        """A complete row (every column), so many rows insert in one statement."""
        now = utcnow()
        full: dict[str, Any] = {c.name: None for c in t.investigations.columns}
        full.update(
            status="queued", created_at=now, updated_at=now, model="", headline="", answer="", route=[],
            proposals=[], timings={}, tokens={}, prompt_hashes={}, alert_ids=[], runs=0,
        )  # fmt: skip
        full.update(row)
        return full

    def add_investigations(self, rows: list[dict[str, Any]], conn: Connection | None = None) -> None:
        if not rows:
            return
        if conn is None:
            with self.tx() as c:
                c.execute(t.investigations.insert(), rows)
        else:
            conn.execute(t.investigations.insert(), rows)

    def update_investigation(self, inv_id: str, conn: Connection | None = None, **values: Any) -> None:
        stmt = update(t.investigations).where(t.investigations.c.id == inv_id)
        stmt = stmt.values(updated_at=utcnow(), **values)
        if conn is None:
            with self.tx() as c:
                c.execute(stmt)
        else:
            conn.execute(stmt)

    def claim_investigation(self, inv_id: str, owner: str, stale_before: float) -> bool:
        """Mark a queued (or abandoned) investigation as ours; False when someone else runs it."""
        import time

        with self.tx() as c:
            row = (
                c.execute(select(t.investigations).where(t.investigations.c.id == inv_id)).mappings().first()
            )
            if row is None:
                return False
            running_elsewhere = (
                row["status"] == "investigating"
                and row["owner"] not in (None, owner)
                and (row["heartbeat_at"] or 0) >= stale_before
            )
            if row["status"] not in ACTIVE or running_elsewhere:
                return False
            c.execute(
                update(t.investigations)
                .where(t.investigations.c.id == inv_id)
                .values(
                    status="investigating",
                    runs=(row["runs"] or 0) + 1,
                    owner=owner,
                    heartbeat_at=time.time(),
                    started_at=utcnow(),
                    updated_at=utcnow(),
                )
            )
            return True

    def get_investigation(self, inv_id: str, conn: Connection | None = None) -> dict[str, Any] | None:
        q = select(t.investigations).where(t.investigations.c.id == inv_id)
        if conn is not None:
            row = conn.execute(q).mappings().first()
        else:
            with self.engine.connect() as c:
                row = c.execute(q).mappings().first()
        return dict(row) if row else None

    def list_investigations(
        self,
        status: str | None = None,
        limit: int = 50,
        offset: int = 0,
        chat_thread: str | None = None,
    ) -> list[dict[str, Any]]:
        q = (
            select(t.investigations)
            .order_by(t.investigations.c.created_at.desc())
            .limit(limit)
            .offset(offset)
        )
        if status:
            q = q.where(t.investigations.c.status == status)
        if chat_thread:
            q = q.where(t.investigations.c.chat_thread == chat_thread)
        with self.engine.connect() as c:
            return [dict(r) for r in c.execute(q).mappings()]

    def running_investigations(self) -> list[dict[str, Any]]:
        q = select(t.investigations).where(t.investigations.c.status == "investigating")
        with self.engine.connect() as c:
            return [dict(r) for r in c.execute(q).mappings()]

    def count_by_status(self) -> dict[str, int]:
        q = select(t.investigations.c.status, func.count()).group_by(t.investigations.c.status)
        with self.engine.connect() as c:
            return {str(s): int(n) for s, n in c.execute(q)}

    # --- approvals -----------------------------------------------------------------------------

    def add_approval(self, conn: Connection, **row: Any) -> str:
        values = {"status": "pending", "created_at": utcnow(), **row}
        conn.execute(insert(t.approvals).values(**values))
        return str(values["id"])

    def get_approval(self, approval_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as c:
            row = c.execute(select(t.approvals).where(t.approvals.c.id == approval_id)).mappings().first()
        return dict(row) if row else None

    def approval_for(self, inv_id: str, status: str | None = "pending") -> dict[str, Any] | None:
        q = select(t.approvals).where(t.approvals.c.investigation_id == inv_id)
        if status:
            q = q.where(t.approvals.c.status == status)
        with self.engine.connect() as c:
            row = c.execute(q.order_by(t.approvals.c.created_at.desc())).mappings().first()
        return dict(row) if row else None

    def list_approvals(self, status: str | None = "pending", limit: int = 100) -> list[dict[str, Any]]:
        q = select(t.approvals).order_by(t.approvals.c.created_at.desc()).limit(limit)
        if status:
            q = q.where(t.approvals.c.status == status)
        with self.engine.connect() as c:
            return [dict(r) for r in c.execute(q).mappings()]

    def pending_with_fingerprint(self, conn: Connection, fingerprint: str) -> list[dict[str, Any]]:
        q = select(t.approvals).where(
            t.approvals.c.fingerprint == fingerprint, t.approvals.c.status == "pending"
        )
        return [dict(r) for r in conn.execute(q).mappings()]

    def set_approval(
        self, approval_id: str, conn: Connection, *, expect: str = "pending", **values: Any
    ) -> bool:
        """Move an approval out of `expect`; False when another decision got there first."""
        res = conn.execute(
            update(t.approvals)
            .where(t.approvals.c.id == approval_id, t.approvals.c.status == expect)
            .values(**values)
        )
        return bool(res.rowcount)

    def unfinished_decisions(self) -> list[dict[str, Any]]:
        """Approvals with a recorded decision whose resumed run never stored its outcome."""
        q = select(t.approvals).where(
            t.approvals.c.status.in_(("approved", "rejected")),
            t.approvals.c.outcome.is_(None),
            t.approvals.c.decision.is_not(None),
        )
        with self.engine.connect() as c:
            return [dict(r) for r in c.execute(q).mappings()]

    def take_over(self, inv_id: str, old_owner: str | None, owner: str) -> bool:
        """Take an investigation whose decision's run lost its process; False when another took it."""
        with self.tx() as c:
            res = c.execute(
                update(t.investigations)
                .where(
                    t.investigations.c.id == inv_id,
                    t.investigations.c.status == "executing",
                    t.investigations.c.owner == old_owner
                    if old_owner is not None
                    else t.investigations.c.owner.is_(None),
                )
                .values(owner=owner, heartbeat_at=time.time(), updated_at=utcnow())
            )
            return bool(res.rowcount)

    def due_approvals(self, now_iso: str) -> list[dict[str, Any]]:
        q = select(t.approvals).where(t.approvals.c.status == "pending", t.approvals.c.expires_at <= now_iso)
        with self.engine.connect() as c:
            return [dict(r) for r in c.execute(q).mappings()]

    # --- alerts --------------------------------------------------------------------------------

    def list_alerts(
        self, status: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[dict[str, Any]]:
        """Received alerts, most recently seen first, with their investigation's status and headline."""
        a, i = t.alerts, t.investigations
        q = (
            select(a, i.c.status.label("investigation_status"), i.c.headline.label("investigation_headline"))
            .select_from(a.outerjoin(i, a.c.investigation_id == i.c.id))
            .order_by(a.c.last_seen.desc(), a.c.id)
            .limit(limit)
            .offset(offset)
        )
        if status:
            q = q.where(a.c.status == status)
        with self.engine.connect() as c:
            return [dict(r) for r in c.execute(q).mappings()]

    # --- chat threads --------------------------------------------------------------------------

    def touch_thread(self, thread_id: str, title: str, requester: str) -> None:
        now = utcnow()
        with self.tx() as c:
            found = c.execute(select(t.chat_threads.c.id).where(t.chat_threads.c.id == thread_id)).first()
            if found:
                c.execute(
                    update(t.chat_threads).where(t.chat_threads.c.id == thread_id).values(updated_at=now)
                )
            else:
                c.execute(
                    insert(t.chat_threads).values(
                        id=thread_id, title=title[:200], requester=requester, created_at=now, updated_at=now
                    )
                )

    def add_message(self, thread_id: str, run_id: str, role: str, content: str, inv_id: str | None) -> None:
        with self.tx() as c:
            c.execute(
                insert(t.chat_messages).values(
                    thread_id=thread_id,
                    run_id=run_id,
                    role=role,
                    content=content,
                    investigation_id=inv_id,
                    created_at=utcnow(),
                )
            )

    def list_threads(self, limit: int = 50) -> list[dict[str, Any]]:
        q = select(t.chat_threads).order_by(t.chat_threads.c.updated_at.desc()).limit(limit)
        with self.engine.connect() as c:
            return [dict(r) for r in c.execute(q).mappings()]

    def get_thread(self, thread_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as c:
            row = c.execute(select(t.chat_threads).where(t.chat_threads.c.id == thread_id)).mappings().first()
            if row is None:
                return None
            msgs = c.execute(
                select(t.chat_messages)
                .where(t.chat_messages.c.thread_id == thread_id)
                .order_by(t.chat_messages.c.id)
            ).mappings()
            return {**dict(row), "messages": [dict(m) for m in msgs]}
