"""jupyter_server extension: the photoproc API and page inside JupyterLab / ``jupyter server``.

Enabled on install by ``jupyter-config/jupyter_server_config.d/photoproc.json``
(shipped as wheel shared-data). The routes are mounted under
``{base_url}photoproc/`` — ``…/photoproc/api/…``, ``…/photoproc/ws/job/{id}``,
``…/photoproc/health`` and the page at ``…/photoproc/`` — with Jupyter's own
auth and XSRF checks. The worker runs in the server process; kernels started by
the server see its heartbeat and do not start their own.

Configuration (``jupyter_server_config.py`` or the command line)::

    c.PhotoprocExtension.data_dir = "/srv/photoproc"   # default: PHOTOPROC_DATA_DIR / per-user
    c.PhotoprocExtension.workers = 4                    # default: PHOTOPROC_WORKERS / cores
    c.PhotoprocExtension.start_worker = True

This module imports nothing heavy at import time: ``photoproc`` re-exports
:func:`_jupyter_server_extension_points` and must stay cheap to import.
"""

from __future__ import annotations

from typing import Any

__all__ = ["_jupyter_server_extension_points", "_load_jupyter_server_extension"]


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from .jupyter_extension import PhotoprocExtension

    return [{"module": "photoproc.server.extension", "app": PhotoprocExtension}]


def _load_jupyter_server_extension(serverapp: Any) -> Any:
    """For servers that load the module without its extension point metadata."""
    from .jupyter_extension import PhotoprocExtension

    return PhotoprocExtension._load_jupyter_server_extension(serverapp)
