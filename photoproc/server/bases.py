"""Base classes of the hosts without auth of their own: ``photoproc serve`` and Voilà.

They add :class:`~photoproc.server.auth.ServerAuth` to Tornado's handlers: the
token check, the origin policy for state-changing requests and WebSockets, and
CORS headers for allowlisted origins only. Jupyter's counterparts are in
:mod:`photoproc.server.jupyter_bases`.
"""

from __future__ import annotations

from typing import Any

from tornado.web import RequestHandler, StaticFileHandler
from tornado.websocket import WebSocketHandler

from .errors import ApiError

__all__ = ["StandaloneApiHandler", "StandalonePageHandler", "StandaloneSocketHandler"]

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _check_token(handler: Any) -> None:
    auth = handler.ctx.auth
    if auth is None:
        return
    if not auth.host_allowed(handler.request.host):
        raise ApiError(403, "forbidden_host", "this server answers on a loopback name only")
    if handler.public or handler.request.method == "OPTIONS":
        return
    if not auth.token_matches(
        handler.request.headers.get("Authorization"), handler.get_query_argument("token", None)
    ):
        raise ApiError(
            401,
            "unauthorized",
            "this server needs its token: send 'Authorization: token …' or add ?token=…",
        )


class StandaloneApiHandler(RequestHandler):
    """REST base: CORS for allowlisted origins, origin check on writes, token check."""

    def set_default_headers(self) -> None:
        super().set_default_headers()
        # Also runs when an error response clears the headers: errors keep CORS too.
        ctx = getattr(self, "ctx", None)
        if ctx is None or ctx.auth is None:
            return
        allow = ctx.auth.cors_origin(self.request.headers.get("Origin"))
        if allow is not None:
            self.set_header("Access-Control-Allow-Origin", allow)
            self.set_header("Access-Control-Expose-Headers", "Content-Disposition, Location")
            self.set_header("Vary", "Origin")

    async def prepare(self) -> None:
        auth = self.ctx.auth  # type: ignore[attr-defined]
        if auth is None:
            return
        self.set_default_headers()  # the first call ran before initialize() set ctx
        origin = self.request.headers.get("Origin")
        if self.request.method not in _SAFE_METHODS and not auth.origin_allowed(
            origin, self.request.host
        ):
            # A browser on another site posting to a loopback server is CSRF.
            raise ApiError(403, "forbidden_origin", f"requests from {origin!r} are not allowed")
        _check_token(self)

    def options(self, *args: Any) -> None:
        """CORS preflight: allowed only for allowlisted origins."""
        if not self._headers.get("Access-Control-Allow-Origin"):
            raise ApiError(403, "forbidden_origin", "cross-origin requests are not enabled")
        self.set_header("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS")
        self.set_header("Access-Control-Allow-Headers", "Authorization, Content-Type")
        self.set_header("Access-Control-Max-Age", "600")
        self.set_status(204)
        self.finish()


class StandaloneSocketHandler(WebSocketHandler):
    """WebSocket base: token check before the upgrade, origin = same host or allowlist."""

    async def prepare(self) -> None:
        _check_token(self)

    def check_origin(self, origin: str) -> bool:
        auth = self.ctx.auth  # type: ignore[attr-defined]
        return auth is None or auth.origin_allowed(origin, self.request.host)


class StandalonePageHandler(StaticFileHandler):
    """The browser page's files; public (the page asks for the token when it needs one)."""

    def set_default_headers(self) -> None:
        self.set_header("X-Content-Type-Options", "nosniff")
        # A ?token=… in the page URL must not leak to other sites through Referer.
        self.set_header("Referrer-Policy", "no-referrer")
