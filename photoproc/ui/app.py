"""``PhotoApp``: upload, options, progress, gallery, download and history, wired together.

The app only routes events between the parts and the :class:`PhotoService`:
"Process" submits a job, the progress panel follows it, the gallery fills in
as results arrive (at most once a second) and is complete at the end, when
the download link appears. "Open" in the history shows a past job the same
way. Everything it does is also a method (:meth:`process`, :meth:`open_job`,
:meth:`wait`), so a notebook cell or a test drives it without a browser.
"""

from __future__ import annotations

import html
import logging
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from ..errors import PhotoprocError
from ..jobs import Job
from ..options import ProcessOptions
from ..service import PhotoService
from .cluster import ClusterStatus
from .download import DownloadLink
from .gallery import Gallery
from .history import JobHistory
from .options import OptionsPanel
from .progress import ProgressPanel
from .upload import UploadBox

__all__ = ["PhotoApp"]

log = logging.getLogger("photoproc.ui")

_TITLE = (
    "<h2 style='margin:0 0 4px 0'>Photo processor</h2>"
    "<p style='margin:0 0 8px 0'>Remove backgrounds and crop faces in bulk: choose photos or "
    "ZIP archives, pick the options, press <b>Process</b>.</p>"
)


class PhotoApp(widgets.VBox):
    """The whole notebook app; ``display(PhotoApp())`` in a cell, or publish it with Voilà.

    ``service``: a :class:`PhotoService` to use (the caller closes it); by default
    one is opened on ``data_dir`` (``PHOTOPROC_DATA_DIR``, else the per-user folder)
    and starts its own worker only when no worker runs on that data directory.
    """

    def __init__(
        self,
        service: PhotoService | None = None,
        *,
        data_dir: str | Path | None = None,
        options: ProcessOptions | Mapping[str, Any] | None = None,
        page_size: int = 12,
        gallery_interval: float = 1.0,
        title: str | None = _TITLE,
        allow_paths: bool | None = None,
    ) -> None:
        self._owns_service = service is None
        self.service = service if service is not None else PhotoService(data_dir)
        self.gallery_interval = gallery_interval
        if options is not None and not isinstance(options, ProcessOptions):
            options = ProcessOptions.from_mapping(options)
        self.upload = UploadBox(allow_paths=allow_paths)
        self.options = OptionsPanel(options)
        self.progress = ProgressPanel()
        self.gallery = Gallery(page_size=page_size)
        self.download = DownloadLink()
        self.history = JobHistory(self.service)
        self.message = widgets.HTML("")
        self.message.add_class("photoproc-message")
        self.cluster = ClusterStatus(self.service)
        self._job_id: str | None = None
        self._submitted: Job | None = None
        self._shown = threading.Event()
        self._gallery_at = 0.0
        self._lock = threading.Lock()

        self.upload.on_submit(self.process)
        self.progress.on_update(self._on_update)
        self.progress.on_end(self._on_end)
        self.history.on_submit(self.open_job)

        history = widgets.Accordion([self.history], titles=("Past jobs",), selected_index=None)
        children: list[widgets.Widget] = []
        if title:
            children.append(widgets.HTML(title))
        children.append(self.cluster)
        children += [
            widgets.HBox(
                [self.upload, self.options],
                layout=widgets.Layout(flex_flow="row wrap", grid_gap="24px"),
            ),
            self.message,
            self.progress,
            self.download,
            self.gallery,
            history,
        ]
        super().__init__(children)
        self.add_class("photoproc-app")

    # -- actions --------------------------------------------------------------------------

    @property
    def job_id(self) -> str | None:
        """The job shown now."""
        return self._job_id

    def submit(self) -> Job | None:
        """What the "Process" button does (upload selection + options → a job)."""
        self._submitted = None
        self.upload.submit()
        return self._submitted

    def process(
        self, inputs: Any, options: ProcessOptions | Mapping[str, Any] | None = None
    ) -> Job | None:
        """Submit ``inputs`` (anything :meth:`PhotoService.submit` takes) with ``options``
        (default: the options panel) and show the job. Returns ``None`` and says why
        on screen when nothing could be submitted."""
        try:
            if options is None:
                options = self.options.options
            elif not isinstance(options, ProcessOptions):
                options = ProcessOptions.from_mapping(options)
            job = self.service.submit(inputs, options, source="notebook")
        except PhotoprocError as exc:
            self.show_message(str(exc), error=True)
            return None
        self._submitted = job
        self.upload.clear()
        skipped = job.failed
        self.show_message(
            f"Job {job.id[:8]}: {job.total} file{'s' if job.total != 1 else ''} queued"
            + (f", {skipped} of them not images (see the gallery)" if skipped else "")
            + "."
        )
        self.open_job(job.id)
        self.history.refresh()
        return job

    def open_job(self, job_id: str) -> None:
        """Show ``job_id``: progress (followed live while it runs), gallery, download link."""
        with self._lock:
            self._job_id = job_id
            self._shown.clear()
            self._gallery_at = 0.0
        self.download.clear()
        self.cluster.refresh()  # workers join and leave
        self.gallery.show(self.service, job_id)
        self.progress.watch(self.service, job_id)

    def cancel(self) -> Job | None:
        """Cancel the job shown (what the progress panel's button does)."""
        return self.progress.cancel()

    @property
    def job(self) -> Job | None:
        return self.service.get(self._job_id) if self._job_id else None

    def wait(self, timeout: float | None = None) -> Job:
        """Block until the job shown has ended *and* its gallery and link are on screen."""
        if self._job_id is None:
            raise RuntimeError("no job to wait for: process something first")
        if not self._shown.wait(timeout):
            raise TimeoutError(f"job {self._job_id} was not shown complete within {timeout} s")
        job = self.progress.job
        assert job is not None
        return job

    def show_message(self, text: str, *, error: bool = False) -> None:
        colour = "#b00020" if error else "inherit"
        self.message.value = f'<span style="color:{colour}">{html.escape(text)}</span>'

    def close(self) -> None:  # type: ignore[override]
        """Stop following the job, close the widgets, and the service if this app opened it."""
        self.progress.stop()
        if self._owns_service:
            self.service.close()
        super().close()

    # -- events from the service thread ----------------------------------------------------

    def _on_update(self, job: Job) -> None:
        if job.id != self._job_id or job.ended:
            return
        now = time.monotonic()
        if now - self._gallery_at < self.gallery_interval:
            return
        self._gallery_at = now
        try:
            self.gallery.refresh()
        except PhotoprocError as exc:  # e.g. the job was deleted meanwhile
            log.info("gallery refresh: %s", exc)

    def _on_end(self, job: Job) -> None:
        if job.id != self._job_id:
            return
        try:
            self.gallery.refresh()
            self.download.show(self.service, job.id)
            self.history.refresh()
        except PhotoprocError as exc:
            self.show_message(str(exc), error=True)
        finally:
            if job.id == self._job_id:
                self._shown.set()
