"""Base classes for the jupyter_server host: Jupyter's identity, XSRF and origin checks.

``APIHandler`` resolves the user (token or login cookie) and checks XSRF for
writes; the route table wraps every handler method in ``@web.authenticated``
(``@ws_authenticated`` for the WebSocket) so that jupyter_server also accepts
them as protected endpoints. Imported only when that host is used.
"""

from __future__ import annotations

from typing import Any

from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from tornado import web
from tornado.web import StaticFileHandler
from tornado.websocket import WebSocketHandler

__all__ = [
    "JupyterApiHandler",
    "JupyterPageHandler",
    "JupyterRedirectHandler",
    "JupyterSocketHandler",
]


class JupyterApiHandler(APIHandler):
    def finish(self, *args: Any, **kwargs: Any) -> Any:
        # APIHandler.finish forces application/json; keep the type a handler chose
        # (images, ZIP archives).
        kwargs.setdefault("set_content_type", self._headers.get("Content-Type", "application/json"))
        return super().finish(*args, **kwargs)


class JupyterSocketHandler(WebSocketMixin, WebSocketHandler, JupyterHandler):
    """Like jupyter_server's kernel channels: keep-alive pings, Jupyter's origin check."""


class JupyterPageHandler(JupyterHandler, StaticFileHandler):
    """The browser page, for logged-in users; sets the ``_xsrf`` cookie its POSTs need."""

    @web.authenticated
    def get(self, path: str, include_body: bool = True) -> Any:  # type: ignore[override]
        self.xsrf_token  # noqa: B018 - touching it sets the cookie the page sends back
        return StaticFileHandler.get(self, path, include_body)

    @web.authenticated
    def head(self, path: str) -> Any:  # type: ignore[override]
        return StaticFileHandler.head(self, path)

    def set_default_headers(self) -> None:
        super().set_default_headers()
        self.set_header("X-Content-Type-Options", "nosniff")


class JupyterRedirectHandler(JupyterHandler):
    """``…/photoproc`` → ``…/photoproc/`` (the page's relative links need the slash)."""

    def initialize(self, url: str) -> None:
        self._url = url

    @web.authenticated
    def get(self) -> None:
        self.redirect(self._url)
