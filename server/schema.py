"""The service's tables (SQLAlchemy Core), the same on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

# Times are ISO-8601 UTC strings ("2026-11-22T21:20:11.123456+00:00"): they sort, and read the same
# on both databases. Queue times are epoch seconds (compared arithmetically).

investigations = Table(
    "investigations",
    metadata,
    Column("id", String(80), primary_key=True),  # also the graph's checkpoint thread id
    Column("kind", String(16), nullable=False),  # question | alert | chat
    Column("request", Text, nullable=False),  # the question, or the alert as one line (truncated)
    Column("requester", String(200), nullable=False),
    Column("source_ref", Text, nullable=False),  # how to rebuild the sources: scenario-file:PATH | live
    Column("origin", String(16), nullable=False),  # replay | live
    Column("model", String(200), nullable=False, default=""),
    Column("status", String(24), nullable=False),
    Column("graph_input", JSON, nullable=False),
    Column("headline", Text, nullable=False, default=""),
    Column("answer", Text, nullable=False, default=""),
    Column("report", JSON, nullable=True),
    Column("route", JSON, nullable=False, default=list),
    Column("proposals", JSON, nullable=False, default=list),
    Column("timings", JSON, nullable=False, default=dict),
    Column("tokens", JSON, nullable=False, default=dict),
    Column("prompt_hashes", JSON, nullable=False, default=dict),
    Column("alert_ids", JSON, nullable=False, default=list),
    Column("chat_thread", String(200), nullable=True),
    Column("owner", String(200), nullable=True),  # host:pid of the process running it
    Column("heartbeat_at", Float, nullable=True),
    Column("runs", Integer, nullable=False, default=0),  # how often a process started it
    Column("error", Text, nullable=True),
    Column("created_at", String(40), nullable=False),
    Column("started_at", String(40), nullable=True),
    Column("finished_at", String(40), nullable=True),
    Column("updated_at", String(40), nullable=False),
)
Index("ix_investigations_status", investigations.c.status, investigations.c.created_at)
Index("ix_investigations_thread", investigations.c.chat_thread, investigations.c.created_at)

approvals = Table(
    "approvals",
    metadata,
    Column("id", String(80), primary_key=True),
    Column("investigation_id", String(80), nullable=False, index=True),
    Column("status", String(16), nullable=False),  # pending|approved|rejected|expired|superseded|invalid
    Column("proposals", JSON, nullable=False),  # each: fingerprint, policy, state, result, verification
    Column("fingerprint", String(64), nullable=False, index=True),  # sha256 over the proposals' ones
    Column("summary", Text, nullable=False, default=""),
    Column("requester", String(200), nullable=False),
    Column("origin", String(16), nullable=False),
    Column("interrupt_id", String(80), nullable=True),
    Column("created_at", String(40), nullable=False),
    Column("expires_at", String(40), nullable=False),
    Column("decided_by", String(200), nullable=True),
    Column("decided_at", String(40), nullable=True),
    Column("comment", Text, nullable=True),
    Column("outcome", Text, nullable=True),
    Column("decision", JSON, nullable=True),  # the ApprovalDecision the graph was resumed with
)
Index("ix_approvals_status", approvals.c.status, approvals.c.created_at)

alert_bodies = Table(
    "alert_bodies",
    metadata,
    Column("id", String(80), primary_key=True),
    Column("source", String(32), nullable=False),
    Column("received_at", String(40), nullable=False),
    Column("size", Integer, nullable=False),
    Column("body", Text, nullable=False),  # the raw JSON as received
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", String(80), primary_key=True),
    Column("source", String(32), nullable=False),
    Column("fingerprint", String(200), nullable=False),  # the source's own, kept as it is
    Column("group_key", Text, nullable=True),
    Column("name", Text, nullable=False),
    Column("entity", Text, nullable=True),
    Column("severity", String(16), nullable=False),
    Column("status", String(16), nullable=False),  # firing | resolved
    Column("count", Integer, nullable=False, default=1),
    Column("first_seen", String(40), nullable=False),
    Column("last_seen", String(40), nullable=False),
    Column("resolved_at", String(40), nullable=True),
    Column("investigation_id", String(80), nullable=True),
    Column("body_id", String(80), nullable=False),
    Column("summary", Text, nullable=False, default=""),
    Column("notes", JSON, nullable=False, default=list),
)
Index("ix_alerts_fingerprint", alerts.c.source, alerts.c.fingerprint, alerts.c.status)

queue = Table(
    "work_queue",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(80), nullable=False, unique=True),  # the investigation id: enqueued once
    Column("status", String(16), nullable=False),  # ready | claimed | done
    Column("claimed_by", String(200), nullable=True),
    Column("claimed_at", Float, nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("created_at", Float, nullable=False),
)
Index("ix_queue_status", queue.c.status, queue.c.id)

tokens = Table(
    "tokens",
    metadata,
    Column("id", String(80), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("role", String(16), nullable=False),  # viewer | operator | approver | admin
    Column("kind", String(16), nullable=False),  # api | session | signin
    Column("hash", String(64), nullable=False, unique=True),  # sha256 of the secret; never the secret
    Column("created_at", String(40), nullable=False),
    Column("expires_at", String(40), nullable=True),
    Column("revoked", Integer, nullable=False, default=0),
    Column("last_used_at", String(40), nullable=True),
)

chat_threads = Table(
    "chat_threads",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("title", Text, nullable=False),
    Column("requester", String(200), nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("updated_at", String(40), nullable=False),
)

chat_messages = Table(
    "chat_messages",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("thread_id", String(200), nullable=False, index=True),
    Column("run_id", String(200), nullable=False),
    Column("role", String(16), nullable=False),
    Column("content", Text, nullable=False),
    Column("investigation_id", String(80), nullable=True),
    Column("created_at", String(40), nullable=False),
)
