"""What every photoproc handler is given: the service, the limits, the host's auth.

One :class:`ServerContext` per mounted route table; handlers receive it as their
only ``initialize`` argument, so the three hosts differ only in the context and
in the base classes :mod:`photoproc.server.routes` composes the handlers with.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .auth import ServerAuth

if TYPE_CHECKING:
    from ..config import Settings
    from ..service import PhotoService
    from .websocket import JobBroadcasts

__all__ = ["ServerContext"]


@dataclass
class ServerContext:
    service: PhotoService
    settings: Settings
    #: URL prefix of ``api/…``, ``ws/…`` and ``health``; starts and ends with ``/``.
    base_url: str = "/"
    #: token/origin policy of the standalone and Voilà hosts; ``None`` under
    #: jupyter_server, where Jupyter's own auth applies.
    auth: ServerAuth | None = field(default_factory=ServerAuth)
    #: WebSocket progress messages list the items only up to this many (then fetch
    #: ``process-status`` with ``items_offset``/``items_limit``). Measured: with the
    #: 600 items of a job in every message (98 kB), 200 watchers took 3.4 GB in 60 s
    #: and /health p99 went to 198 ms; without them messages are ~1 kB.
    ws_items_limit: int = 100
    #: the job broadcasts of the WebSocket route; the route table builds them
    #: (:func:`photoproc.server.routes.photoproc_routes`), so this module needs no
    #: import of the handlers.
    broadcasts: JobBroadcasts | None = field(init=False, default=None)
    #: serialised ``process-status`` bodies by (job id, job version, offset, limit):
    #: many pollers of one job ask for the same version several times a second, and
    #: listing + encoding hundreds of items each time took the IOLoop's CPU from
    #: ``/health`` (used on the IOLoop thread only, so no lock).
    status_cache: OrderedDict[tuple, bytes] = field(init=False, default_factory=OrderedDict)
    status_cache_size: int = 64

    def cached_status(self, key: tuple) -> bytes | None:
        body = self.status_cache.get(key)
        if body is not None:
            self.status_cache.move_to_end(key)
        return body

    def cache_status(self, key: tuple, body: bytes) -> None:
        self.status_cache[key] = body
        while len(self.status_cache) > self.status_cache_size:
            self.status_cache.popitem(last=False)

    def __post_init__(self) -> None:
        if not self.base_url.startswith("/"):
            self.base_url = "/" + self.base_url
        if not self.base_url.endswith("/"):
            self.base_url += "/"

    def job_broadcasts(self) -> JobBroadcasts:
        if self.broadcasts is None:
            raise RuntimeError("no route table was built on this context")
        return self.broadcasts

    @property
    def spool_dir(self) -> Path:
        """Where uploads are streamed before ``submit`` stages them (same file system)."""
        return self.settings.data_dir / "uploads"

    def url(self, path: str) -> str:
        return self.base_url + path.lstrip("/")

    def close(self) -> None:
        """Stop every progress subscription (server shutdown)."""
        if self.broadcasts is not None:
            self.broadcasts.close()
