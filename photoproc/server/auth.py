"""Token and origin checks for the hosts that have no auth of their own.

Under jupyter_server, Jupyter's identity provider and XSRF checks apply and this
module is not used. ``photoproc serve`` and the Voilà host use :class:`ServerAuth`:

* a shared token, sent as ``Authorization: token X`` (or ``Bearer X``) or as
  ``?token=X`` — browsers cannot set headers on a WebSocket or an ``<img>``;
* an origin policy: a request that carries an ``Origin`` header must come from
  the page's own host or from the allowlist. That refuses cross-site
  WebSockets and cross-site form posts (the CSRF a token-less loopback server
  would otherwise accept), while scripts and curl, which send no ``Origin``,
  are not affected;
* without a token, a loopback ``Host`` header (DNS rebinding), as Jupyter does.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

__all__ = ["ServerAuth", "generate_token", "is_loopback"]


def generate_token() -> str:
    """A fresh random token (URL-safe, 192 bits)."""
    return secrets.token_urlsafe(24)


def is_loopback(host: str) -> bool:
    """Whether binding to ``host`` keeps the server on this machine."""
    host = host.strip().strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _normalise_origin(origin: str) -> str:
    # Browsers send scheme://host[:port] in lower case; "null" for file:// pages.
    return origin.strip().rstrip("/").lower()


@dataclass(frozen=True)
class ServerAuth:
    """What the standalone and Voilà hosts require of a request."""

    #: ``None`` or empty: no token needed (loopback only — the CLI enforces that).
    token: str | None = None
    #: origins (``https://app.example``, or ``null`` for file:// pages) allowed besides
    #: the server's own; they also receive CORS headers.
    allowed_origins: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def create(cls, token: str | None = None, origins: Iterable[str] = ()) -> ServerAuth:
        return cls(token or None, frozenset(_normalise_origin(o) for o in origins if o.strip()))

    @property
    def required(self) -> bool:
        return bool(self.token)

    def token_matches(self, authorization: str | None, query_token: str | None) -> bool:
        """Whether the request presents the token (constant-time comparison)."""
        if not self.token:
            return True
        presented = query_token
        if authorization:
            scheme, _, value = authorization.strip().partition(" ")
            if scheme.lower() in ("token", "bearer") and value.strip():
                presented = value.strip()
        if not presented:
            return False
        return hmac.compare_digest(presented.encode(), self.token.encode())

    def host_allowed(self, host: str | None) -> bool:
        """Without a token, only loopback ``Host`` names: a DNS-rebinding page (its own
        name pointed at 127.0.0.1) would otherwise pass the same-origin check."""
        if self.token:
            return True
        if not host:
            return False
        name = urlsplit(f"//{host.strip()}").hostname or ""
        return is_loopback(name)

    def origin_allowed(self, origin: str | None, host: str | None) -> bool:
        """Same host, allowlisted, or no ``Origin`` at all (not a browser, or same-origin GET)."""
        if origin is None:
            return True
        origin = _normalise_origin(origin)
        if origin in self.allowed_origins or "*" in self.allowed_origins:
            return True
        if host is None:
            return False
        return urlsplit(origin).netloc == host.strip().lower()

    def cors_origin(self, origin: str | None) -> str | None:
        """The value for ``Access-Control-Allow-Origin``, or ``None`` (CORS is off by default)."""
        if origin is None:
            return None
        normal = _normalise_origin(origin)
        if normal in self.allowed_origins:
            return origin.strip()
        if "*" in self.allowed_origins:
            return "*"
        return None
