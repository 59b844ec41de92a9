"""What every photoproc handler is given: the service, the limits, the host's auth.

One :class:`ServerContext` per mounted route table; handlers receive it as their
only ``initialize`` argument, so the three hosts differ only in the context and
in the base classes :mod:`photoproc.server.routes` composes the handlers with.
"""

from __future__ import annotations

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
    broadcasts: JobBroadcasts = field(init=False)

    def __post_init__(self) -> None:
        from .websocket import JobBroadcasts

        if not self.base_url.startswith("/"):
            self.base_url = "/" + self.base_url
        if not self.base_url.endswith("/"):
            self.base_url += "/"
        self.broadcasts = JobBroadcasts(self)

    @property
    def spool_dir(self) -> Path:
        """Where uploads are streamed before ``submit`` stages them (same file system)."""
        return self.settings.data_dir / "uploads"

    def url(self, path: str) -> str:
        return self.base_url + path.lstrip("/")

    def close(self) -> None:
        """Stop every progress subscription (server shutdown)."""
        self.broadcasts.close()
