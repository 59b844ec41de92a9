"""``photoproc serve``: the API and the browser page as a plain Tornado app.

The serving process also runs the worker (its compute goes to the worker's
process pool, never the IOLoop). SIGINT/SIGTERM stop accepting connections,
then close the service gracefully: items in flight finish or are released.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.web import Application

from .auth import ServerAuth, generate_token, is_loopback
from .context import ServerContext
from .routes import photoproc_routes

if TYPE_CHECKING:
    from ..config import Settings
    from ..service import PhotoService

__all__ = ["RunningServer", "make_app", "resolve_token", "serve", "start_server"]

log = logging.getLogger("photoproc.server")

#: body limit for every route but the upload, which raises it for its own request
#: (so no other route can be made to buffer a huge body in memory).
SMALL_BODY = 1 << 20


def make_app(
    service: PhotoService,
    *,
    settings: Settings | None = None,
    token: str | None = None,
    cors_origins: Iterable[str] = (),
    static_dir: Path | None = None,
    **tornado_settings,
) -> Application:
    """The standalone app: API at ``/api/…``, ``/ws/…``, ``/health``, the page at ``/``."""
    ctx = ServerContext(
        service,
        settings or service.settings,
        "/",
        ServerAuth.create(token, cors_origins),
    )
    app = Application(
        photoproc_routes(ctx, page_url="/", static_dir=static_dir),
        websocket_ping_interval=30,
        websocket_ping_timeout=25,  # must not exceed the interval
        **tornado_settings,
    )
    app.settings["photoproc_context"] = ctx
    return app


def resolve_token(host: str, token: str | None) -> tuple[str | None, bool]:
    """``(token, generated)``: a server reachable from other machines always has one."""
    if token:
        return token, False
    if is_loopback(host):
        return None, False
    return generate_token(), True


@dataclass
class RunningServer:
    """A started server: its URL, and how to stop it (used by ``serve`` and the tests)."""

    server: HTTPServer
    app: Application
    service: PhotoService
    url: str
    port: int
    owns_service: bool = True

    async def stop(self, *, timeout: float = 30) -> None:
        self.server.stop()
        try:
            await asyncio.wait_for(self.server.close_all_connections(), timeout=5)
        except asyncio.TimeoutError:
            log.warning("some connections did not close in time")
        self.app.settings["photoproc_context"].close()
        if self.owns_service:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, lambda: self.service.close(timeout=timeout))


async def start_server(
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = 5000,
    token: str | None = None,
    cors_origins: Iterable[str] = (),
    service: PhotoService | None = None,
    start_worker: bool = True,
    static_dir: Path | None = None,
) -> RunningServer:
    """Listen on ``host:port`` (0: any free port) inside the running event loop."""
    owns = service is None
    if service is None:
        from ..service import PhotoService

        loop = asyncio.get_running_loop()
        service = await loop.run_in_executor(
            None, lambda: PhotoService(settings=settings, start_worker=start_worker)
        )
    app = make_app(
        service, settings=settings, token=token, cors_origins=cors_origins, static_dir=static_dir
    )
    sockets = bind_sockets(port, host)
    server = HTTPServer(app, max_body_size=SMALL_BODY, xheaders=False)
    server.add_sockets(sockets)
    bound = sockets[0].getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    return RunningServer(server, app, service, f"http://{shown}:{bound}/", bound, owns)


def serve(
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = 5000,
    token: str | None = None,
    cors_origins: Iterable[str] = (),
    start_worker: bool = True,
    out: TextIO | None = None,
    on_ready: Callable[[RunningServer], None] | None = None,
) -> None:
    """Run until SIGINT/SIGTERM, then shut down gracefully (blocking)."""
    out = out or sys.stdout
    token, generated = resolve_token(host, token)

    async def main() -> None:
        running = await start_server(
            settings,
            host=host,
            port=port,
            token=token,
            cors_origins=cors_origins,
            start_worker=start_worker,
        )
        print(f"photoproc: serving {running.url} (data: {settings.data_dir})", file=out, flush=True)
        if token:
            shown = token if generated else "<the token you gave>"
            print(
                f"photoproc: token required: 'Authorization: token {shown}' "
                f"or {running.url}?token={shown}",
                file=out,
                flush=True,
            )
        if on_ready is not None:
            on_ready(running)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            print("photoproc: shutting down", file=out, flush=True)
            await running.stop()
            print("photoproc: stopped", file=out, flush=True)

    asyncio.run(main())
