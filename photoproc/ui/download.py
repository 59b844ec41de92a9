"""The download link of a job's results.

When a photoproc host serves this kernel's page (``photoproc app``, or
JupyterLab with the extension) the link points at the API route, which streams
the ZIP from disk: any size, nothing through the kernel. Otherwise (plain
JupyterLab without the extension, a notebook viewer) a small result set is
embedded in the link as a ``data:`` URL; a big one is pointed to on disk,
because a data URL that large would travel through the widget channel and
stall the page.
"""

from __future__ import annotations

import base64
import html
from typing import TYPE_CHECKING

import ipywidgets as widgets

from .env import api_url
from .upload import format_bytes

if TYPE_CHECKING:
    from ..service import PhotoService

__all__ = ["INLINE_LIMIT", "DownloadLink"]

#: Largest result set embedded in a ``data:`` link (a third more once base64-encoded).
INLINE_LIMIT = 20_000_000


class DownloadLink(widgets.HTML):
    """``show(service, job_id)`` renders the link; ``href`` is the URL it points to."""

    def __init__(self, *, inline_limit: int = INLINE_LIMIT, use_api: bool | None = None) -> None:
        super().__init__("")
        self.inline_limit = inline_limit
        #: ``None``: use the API route when a host is known (:func:`~photoproc.ui.env.api_url`).
        self.use_api = use_api
        self.href: str | None = None
        self.add_class("photoproc-download")

    def clear(self) -> None:
        self.href = None
        self.value = ""

    def show(self, service: PhotoService, job_id: str) -> None:
        results = service.results(job_id)
        if not results:
            self.href = None
            self.value = "<i>No result to download.</i>"
            return
        count = len(results)
        size = sum(r.size for r in results)
        label = f"Download {count} result{'s' if count != 1 else ''} (ZIP, {format_bytes(size)})"
        name = f"photoproc-{job_id[:8]}.zip"
        url = (
            api_url(f"api/download-results/{job_id}?format=zip")
            if self.use_api is not False
            else None
        )
        if url is not None:
            self.href = url
        elif size <= self.inline_limit:
            archive = b"".join(service.results_zip(job_id))
            self.href = "data:application/zip;base64," + base64.b64encode(archive).decode("ascii")
        else:
            self.href = None
            folder = service.settings.jobs_dir / job_id / "out"
            self.value = (
                f"{html.escape(label)}: too big to send through the notebook. The files are in "
                f"<code>{html.escape(str(folder))}</code> on the server; "
                "<code>photoproc serve</code> offers the ZIP over HTTP."
            )
            return
        self.value = (
            f'<a class="photoproc-download-link" href="{html.escape(self.href)}" '
            f'download="{html.escape(name)}" target="_blank" rel="noopener" '
            'style="font-weight:bold">'
            f"⬇ {html.escape(label)}</a>"
        )
