"""Password users from the `basic_auth` setting: USER:HASH entries, checked in constant time.

Hashes are werkzeug's (`scrypt:…`, `pbkdf2:…`), made by `webui hash-password`. A plain password in the
configuration is refused at start: it would sit in shell histories, process lists and config files.
"""
from __future__ import annotations

from collections.abc import Iterable

from werkzeug.security import check_password_hash, generate_password_hash

HASH_METHODS = ("scrypt:", "pbkdf2:")
# Checked when the user name is unknown, so a wrong name takes as long as a wrong password.
_DUMMY_HASH = generate_password_hash("not a password of anyone's")


def hash_password(password: str) -> str:
    return generate_password_hash(password)


def entry_problem(entry: str) -> str | None:
    """Why a `basic_auth` entry can't be used, or None."""
    user, sep, hashed = entry.partition(":")
    if not sep or not user or not hashed:
        return f"{_shown(entry)!r} is not USER:HASH"
    if not hashed.startswith(HASH_METHODS):
        return (f"the password of user {user!r} is not a hash: plain passwords are refused. Run "
                "`webui hash-password` and use USER:<the hash it prints>")
    return None


def _shown(entry: str) -> str:
    user = entry.partition(":")[0]
    return f"{user}:…" if ":" in entry else "…"


def parse_users(entries: Iterable[str]) -> dict[str, str]:
    """{user: hash}; the settings loader has already refused bad entries."""
    users = {}
    for entry in entries:
        user, _, hashed = entry.partition(":")
        users[user] = hashed
    return users


def verify(users: dict[str, str], user: str, password: str) -> bool:
    """True when `password` is `user`'s; the same work is done whether or not the user exists."""
    hashed = users.get(user)
    ok = check_password_hash(hashed or _DUMMY_HASH, password)
    return hashed is not None and ok
