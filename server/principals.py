"""Who is asking: a principal (name, role, how they authenticated) and the role ranks."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

ROLES = ("viewer", "operator", "approver", "admin")
Role = Literal["viewer", "operator", "approver", "admin"]


class Principal(BaseModel):
    """Who is asking: a token's name on the API, `--as NAME` or the OS user on the CLI."""

    name: str
    role: Role = "admin"
    via: str = "cli"

    @property
    def authenticated_role(self) -> Role | None:
        """The role the service verified (a token or a session); None for a name nobody verified (the
        CLI's OS user or --as, a server run with --no-auth)."""
        return self.role if self.via in ("api", "session", "signin") else None

    def can(self, role: Role) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)
