"""Who is calling: one shape for password users, OAuth/OIDC logins, API tokens and the no-login mode."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Identity:
    username: str
    provider: str  # "basic", "token", "none" (no login configured), or an OAuth provider's name
    email: str | None = None
    email_verified: bool = False
    groups: tuple[str, ...] = ()
    orgs: tuple[str, ...] = ()
    teams: tuple[str, ...] = ()  # GitHub "org/team"
    role: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def label(self) -> str:
        return self.email or self.username

    def to_session(self) -> dict[str, Any]:
        return {"username": self.username, "provider": self.provider, "email": self.email,
                "email_verified": self.email_verified, "groups": list(self.groups), "orgs": list(self.orgs),
                "teams": list(self.teams)}

    @classmethod
    def from_session(cls, data: dict[str, Any]) -> Identity:
        return cls(username=str(data["username"]), provider=str(data["provider"]), email=data.get("email"),
                   email_verified=bool(data.get("email_verified")), groups=tuple(data.get("groups") or ()),
                   orgs=tuple(data.get("orgs") or ()), teams=tuple(data.get("teams") or ()))
