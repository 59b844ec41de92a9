"""``ClusterStatus``: where the images run, when that is a Dask cluster.

Read from the workers' heartbeats in the database, so a kernel shows the
cluster of the worker that runs in the server process (or anywhere else on the
data directory). Empty, and so invisible, when only local processes run.
"""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets

from ..service import PhotoService

__all__ = ["ClusterStatus"]


class ClusterStatus(widgets.HTML):
    """One line per Dask cluster in use: scheduler, workers, threads, dashboard link."""

    def __init__(self, service: PhotoService) -> None:
        super().__init__("")
        self.add_class("photoproc-cluster")
        self.service = service
        self.refresh()

    @property
    def clusters(self) -> list[dict[str, Any]]:
        """The heartbeat info of each Dask cluster a live worker uses (one per scheduler)."""
        found: dict[str, dict[str, Any]] = {}
        for worker in self.service.health().get("workers", []):
            info = worker.get("info") or {}
            if info.get("executor") == "dask":
                found.setdefault(str(info.get("scheduler")), info)
        return list(found.values())

    def refresh(self) -> None:
        lines = []
        for info in self.clusters:
            workers = int(info.get("dask_workers") or 0)
            threads = int(info.get("threads") or 0)
            text = (
                f"Running on the Dask cluster at <code>{html.escape(str(info['scheduler']))}"
                f"</code>: {workers} worker{'s' if workers != 1 else ''}, "
                f"{threads} thread{'s' if threads != 1 else ''}"
            )
            dashboard = info.get("dashboard")
            if dashboard:
                url = html.escape(str(dashboard), quote=True)
                text += f' · <a href="{url}" target="_blank" rel="noopener">dashboard</a>'
            lines.append(f"<div>{text}</div>")
        self.value = "".join(lines)
