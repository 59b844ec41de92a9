"""The Voilà app with the photoproc API on the same port.

Standalone ``voila`` never loads server extensions, so :class:`PhotoprocVoila`
subclasses ``voila.app.Voila`` and prepends the photoproc routes to Voilà's own
handlers (before its ``/(.*)`` catch-all): ``/api/…``, ``/ws/job/{id}``,
``/health`` and the browser page at ``/photoproc/`` answer beside the rendered
notebook. The worker runs in this process; the data directory is exported as
``PHOTOPROC_DATA_DIR`` before any kernel starts, so the notebook's
``PhotoService`` shares the queue and sees this worker's heartbeat.

Auth: Voilà has no token by default and binds to 127.0.0.1 here; with
``--token`` (required, and generated when missing, on any other address) the
API wants ``Authorization: token X`` or ``?token=X`` like ``photoproc serve``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jupyter_server.utils import url_path_join
from traitlets import Bool, Integer, Unicode, default
from voila.app import Voila

from ..config import Settings
from .auth import ServerAuth, generate_token, is_loopback
from .context import ServerContext
from .routes import photoproc_routes

__all__ = ["PhotoprocVoila", "launch", "main"]


class PhotoprocVoila(Voila):
    """Voilà plus the photoproc API and page, one port, one process."""

    data_dir = Unicode("", config=True, help="photoproc data directory")
    workers = Integer(0, config=True, help="pipeline processes of the worker (0: default)")
    start_worker = Bool(True, config=True, help="run the worker in the server process")
    cors_origins = Unicode("", config=True, help="comma-separated origins allowed to call the API")

    photoproc_settings: Settings | None = None
    photoproc_context: ServerContext | None = None

    @default("ip")
    def _default_ip(self) -> str:
        return "127.0.0.1"

    def initialize(self, argv: Any = None) -> None:
        super().initialize(argv)
        if not is_loopback(self.ip) and not self.token:  # type: ignore[has-type]
            self.token = generate_token()
            print(f"photoproc: generated token {self.token}", flush=True)
        settings = Settings.from_env(data_dir=self.data_dir or None, workers=self.workers or None)
        self.photoproc_settings = settings
        # Before any kernel starts (preheated ones included): they inherit it.
        os.environ["PHOTOPROC_DATA_DIR"] = str(settings.data_dir)

    def init_handlers(self) -> list:
        from ..service import PhotoService

        handlers = super().init_handlers()
        settings = self.photoproc_settings or Settings.from_env()
        service = PhotoService(settings=settings, start_worker=self.start_worker)
        base = self.server_url or self.base_url
        origins = [o for o in self.cors_origins.split(",") if o.strip()]
        self.photoproc_context = ServerContext(
            service, settings, base, ServerAuth.create(self.token or None, origins)
        )
        # Voilà's own kernel API lives under api/ too: no photoproc catch-all there.
        routes = photoproc_routes(
            self.photoproc_context, page_url=url_path_join(base, "photoproc/"), catch_all=False
        )
        # Kernels inherit the environment: where the API is, and the token its links need.
        os.environ["PHOTOPROC_API_BASE_URL"] = url_path_join(base, "/")
        if self.token:
            os.environ["PHOTOPROC_TOKEN"] = self.token
        self.log.info("photoproc: API at %sapi/, page at %sphotoproc/", base, base)
        return [*routes, *handlers]

    def stop(self) -> None:
        context, self.photoproc_context = self.photoproc_context, None
        if context is not None:
            context.close()
            context.service.close()
        super().stop()


def launch(
    notebook: str | os.PathLike[str] | None = None,
    *,
    port: int = 8866,
    ip: str = "127.0.0.1",
    data_dir: str | os.PathLike[str] | None = None,
    token: str | None = None,
    workers: int | None = None,
    open_browser: bool = False,
    argv: Sequence[str] = (),
) -> None:
    """Serve ``notebook`` (or the current folder) with the API until interrupted."""
    args = [str(Path(notebook))] if notebook is not None else []
    args += [f"--port={port}", f"--Voila.ip={ip}", *argv]
    if not open_browser:
        args.append("--no-browser")
    if token:
        args.append(f"--token={token}")
    if data_dir is not None:
        args.append(f"--PhotoprocVoila.data_dir={data_dir}")
    if workers:
        args.append(f"--PhotoprocVoila.workers={workers}")
    main(args)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m photoproc.server.voila_app NOTEBOOK [voila options]``."""
    PhotoprocVoila.launch_instance(list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":  # pragma: no cover
    main()
