"""Who may do what: bearer tokens with roles, browser sessions, and per-source webhook secrets.

A token is printed once; the store keeps only its sha256. Roles rank viewer < operator (ask,
investigate) < approver (decide) < admin. Webhook secrets are compared in constant time: a bearer
token, or an HMAC-SHA256 of the body in a header (``sha256=<hex>`` or the bare hex).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select, update

from server import schema as t
from server.principals import ROLES, Principal
from server.store import Store, new_id, utcnow

TOKEN_PREFIX = "oc_"
SESSION_COOKIE = "opscopilot_session"
SESSION_HOURS = 12
SIGNIN_MINUTES = 30


class AuthError(Exception):
    """Bad input to a token command (unknown role, blank name)."""


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class Auth:
    """Tokens and sessions in the store; webhook secrets from the settings."""

    def __init__(self, store: Store, webhooks: dict[str, Any]) -> None:
        self.store = store
        self.webhooks = webhooks

    def create(self, name: str, role: str, kind: str = "api", ttl: timedelta | None = None) -> str:
        """A new secret (returned once); only its hash is stored."""
        if not name.strip():
            raise AuthError("a token needs a name (--name), e.g. the person or system using it")
        if role not in ROLES:
            raise AuthError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self.store.tx() as c:
            c.execute(
                insert(t.tokens).values(
                    id=new_id("tok"),
                    name=name.strip(),
                    role=role,
                    kind=kind,
                    hash=digest(secret),
                    created_at=utcnow(),
                    expires_at=(datetime.now(UTC) + ttl).isoformat() if ttl else None,
                    revoked=0,
                )
            )
        return secret

    def verify(self, secret: str | None, kinds: tuple[str, ...] = ("api", "session")) -> Principal | None:
        if not secret:
            return None
        with self.store.engine.connect() as c:
            row = c.execute(select(t.tokens).where(t.tokens.c.hash == digest(secret))).mappings().first()
        if row is None or row["revoked"] or row["kind"] not in kinds:
            return None
        if row["expires_at"] and row["expires_at"] <= utcnow():
            return None
        return Principal(name=row["name"], role=row["role"], via=row["kind"])

    def exchange_signin(self, secret: str) -> str | None:
        """A one-time sign-in link's token for a browser session token (the cookie's value)."""
        who = self.verify(secret, kinds=("signin",))
        if who is None:
            return None
        with self.store.tx() as c:
            c.execute(update(t.tokens).where(t.tokens.c.hash == digest(secret)).values(revoked=1))
        return self.create(who.name, who.role, kind="session", ttl=timedelta(hours=SESSION_HOURS))

    def session_for(self, who: Principal) -> str:
        """A browser session token (the cookie's value) for someone who proved an API token."""
        return self.create(who.name, who.role, kind="session", ttl=timedelta(hours=SESSION_HOURS))

    def end_session(self, secret: str | None) -> None:
        """Revoke a browser session (sign out); API tokens are never revoked this way."""
        if not secret:
            return
        with self.store.tx() as c:
            c.execute(
                update(t.tokens)
                .where(t.tokens.c.hash == digest(secret), t.tokens.c.kind == "session")
                .values(revoked=1)
            )

    def signin_link_token(self, name: str, role: str) -> str:
        return self.create(name, role, kind="signin", ttl=timedelta(minutes=SIGNIN_MINUTES))

    def any_api_token(self) -> bool:
        with self.store.engine.connect() as c:
            n = c.execute(
                select(func.count())
                .select_from(t.tokens)
                .where(t.tokens.c.kind == "api", t.tokens.c.revoked == 0)
            ).scalar_one()
        return bool(n)

    def list(self) -> list[dict[str, Any]]:
        q = select(t.tokens).where(t.tokens.c.kind == "api").order_by(t.tokens.c.created_at)
        with self.store.engine.connect() as c:
            return [{k: v for k, v in dict(r).items() if k != "hash"} for r in c.execute(q).mappings()]

    def revoke(self, name_or_id: str) -> int:
        with self.store.tx() as c:
            res = c.execute(
                update(t.tokens)
                .where((t.tokens.c.name == name_or_id) | (t.tokens.c.id == name_or_id))
                .values(revoked=1)
            )
        return int(res.rowcount)

    # --- webhooks -------------------------------------------------------------------------------

    def webhook_configured(self, source: str) -> bool:
        cfg = self.webhooks.get(source)
        return cfg is not None and bool(cfg.bearer_token or cfg.hmac_secret)

    def webhook_ok(self, source: str, headers: Mapping[str, str], body: bytes) -> bool:
        """Whether a webhook proves it comes from `source` (its bearer token or body HMAC); `headers`
        is looked up by lower-case name (a dict so keyed, or Starlette's case-insensitive Headers)."""
        cfg = self.webhooks.get(source)
        if cfg is None:
            return False
        if cfg.bearer_token:
            given = bearer(headers.get("authorization"))
            if given is not None and hmac.compare_digest(given.encode(), cfg.bearer_token.encode()):
                return True
        if cfg.hmac_secret:
            sent = (headers.get(cfg.hmac_header.lower()) or "").strip()
            sent = sent.split("=", 1)[1] if sent.lower().startswith("sha256=") else sent
            want = hmac.new(cfg.hmac_secret.encode(), body, hashlib.sha256).hexdigest()
            if sent and hmac.compare_digest(sent.lower().encode(), want.encode()):
                return True
        return False


def bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None
