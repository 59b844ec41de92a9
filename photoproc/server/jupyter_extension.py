"""The jupyter_server ``ExtensionApp`` behind :mod:`photoproc.server.extension`.

An ``ExtensionApp`` rather than a bare load function because it gets traitlets
configuration and a ``stop_extension`` hook: on server shutdown the worker
stops gracefully (items in flight finish or go back to the queue).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from jupyter_server.extension.application import ExtensionApp
from jupyter_server.utils import url_path_join
from traitlets import Bool, Integer, Unicode

from ..config import Settings
from .context import ServerContext
from .routes import photoproc_routes

__all__ = ["PhotoprocExtension"]


class PhotoprocExtension(ExtensionApp):
    name = "photoproc"
    description = "photoproc REST/WebSocket API and upload page"
    load_other_extensions = True

    data_dir = Unicode(
        "", config=True, help="photoproc data directory (default: PHOTOPROC_DATA_DIR or per-user)"
    )
    workers = Integer(0, config=True, help="pipeline processes of the worker (0: default)")
    start_worker = Bool(True, config=True, help="run the worker in the server process")
    page_dir = Unicode("", config=True, help="folder served at …/photoproc/ (default: built-in)")

    _context: ServerContext | None = None

    def initialize_handlers(self) -> None:
        from ..service import PhotoService

        assert self.serverapp is not None
        settings = Settings.from_env(data_dir=self.data_dir or None, workers=self.workers or None)
        if self.data_dir:
            # Kernels inherit the environment: notebooks then use this server's queue.
            os.environ["PHOTOPROC_DATA_DIR"] = str(settings.data_dir)
        service = PhotoService(settings=settings, start_worker=self.start_worker)
        base = url_path_join(self.serverapp.base_url, "photoproc/")
        self._context = ServerContext(service, settings, base, auth=None)
        routes = photoproc_routes(
            self._context,
            flavor="jupyter",
            page_url=base,
            static_dir=Path(self.page_dir) if self.page_dir else None,
        )
        self.serverapp.web_app.add_handlers(".*$", routes)
        self.log.info(
            "photoproc: API at %sapi/, page at %s (data: %s)", base, base, settings.data_dir
        )

    async def stop_extension(self) -> None:
        context, self._context = self._context, None
        if context is None:
            return
        context.close()
        await asyncio.get_running_loop().run_in_executor(None, context.service.close)
