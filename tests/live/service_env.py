"""A private PostgreSQL database and Redis stream key per test (shared servers, own names)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from tests.live import unavailable

PG = "postgresql://postgres@127.0.0.1:5432"
REDIS = "redis://127.0.0.1:6379/0"


@contextmanager
def private_database() -> Iterator[str]:
    """A fresh database `service_test_<hex>` on the shared PostgreSQL, dropped afterwards."""
    import psycopg

    name = f"service_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(f"{PG}/postgres", autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        unavailable(f"PostgreSQL on 127.0.0.1:5432: {exc}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG}/{name}"
    finally:
        with psycopg.connect(f"{PG}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def private_stream() -> Iterator[str]:
    """A Redis stream key `service-test:<hex>`, deleted afterwards."""
    import redis

    key = f"service-test:{uuid.uuid4().hex[:10]}"
    r = redis.Redis.from_url(REDIS)
    try:
        r.ping()
    except redis.RedisError as exc:
        unavailable(f"Redis on 127.0.0.1:6379: {exc}")
    try:
        yield key
    finally:
        r.delete(key)
        r.close()
