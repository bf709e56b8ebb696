"""Where the stdlib opener's credentials come from: the variables Lambda sets in every environment.

Anything else (profiles, SSO, container credentials) is found by boto3, the fallback opener.
"""

from __future__ import annotations

from collections.abc import Mapping


class Credentials:
    """An access key, its secret and an optional session token (the default repr shows none of them)."""

    __slots__ = ("access_key", "secret_key", "token")

    def __init__(self, access_key: str, secret_key: str, token: str | None = None) -> None:
        self.access_key, self.secret_key, self.token = access_key, secret_key, token


def environment_credentials(environ: Mapping[str, str]) -> Credentials | None:
    """``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` and ``AWS_SESSION_TOKEN``; None without both keys."""
    access_key, secret_key = environ.get("AWS_ACCESS_KEY_ID"), environ.get("AWS_SECRET_ACCESS_KEY")
    if not (access_key and secret_key):
        return None
    return Credentials(access_key, secret_key, environ.get("AWS_SESSION_TOKEN") or None)
