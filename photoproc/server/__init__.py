"""photoproc's HTTP edge: one route table, three hosts.

* ``photoproc serve`` — :func:`photoproc.server.app.serve` (plain Tornado);
* the Voilà app — :class:`photoproc.server.voila_app.PhotoprocVoila`;
* the jupyter_server extension — :mod:`photoproc.server.extension`.

All three mount :func:`photoproc.server.routes.photoproc_routes`. This package
is the only part of photoproc that imports Tornado; importing it stays cheap
(``photoproc`` re-exports the extension points from here), so the public
names are loaded on first use.
"""

from __future__ import annotations

from typing import Any

from .extension import _jupyter_server_extension_points, _load_jupyter_server_extension

__all__ = [
    "ServerContext",
    "_jupyter_server_extension_points",
    "_load_jupyter_server_extension",
    "make_app",
    "photoproc_routes",
    "serve",
    "start_server",
]

_LAZY = {
    "ServerContext": ".context",
    "make_app": ".app",
    "serve": ".app",
    "start_server": ".app",
    "photoproc_routes": ".routes",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
