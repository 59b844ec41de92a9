"""Past jobs of the data directory, to reopen one's progress, gallery and download.

The list is read from the job store, so it also holds jobs submitted from the
CLI, the REST API or another notebook on the same data directory.
"""

from __future__ import annotations

import contextlib
import datetime
import html
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from ..errors import JobNotFoundError
from ..jobs import Job

if TYPE_CHECKING:
    from ..service import PhotoService

__all__ = ["JobHistory", "describe_job"]


def describe_job(job: Job) -> str:
    """One line per job: when, status, counts, model."""
    when = datetime.datetime.fromtimestamp(job.created_at).strftime("%Y-%m-%d %H:%M:%S")
    what = []
    if job.options.get("remove_bg", True):
        what.append(str(job.options.get("model", "?")))
    if job.options.get("crop_face"):
        what.append("face crop")
    failed = f", {job.failed} failed" if job.failed else ""
    return (
        f"{when} · {job.status.value} · {job.processed - job.failed}/{job.total} done{failed}"
        f" · {' + '.join(what)} · {job.source} · {job.id[:8]}"
    )


class JobHistory(widgets.VBox):
    """A list of recent jobs with Open, Refresh and Delete.

    ``on_submit(cb)`` / :meth:`submit` work like ``Button.on_click`` / ``click()``:
    :meth:`submit` calls ``cb(job_id)`` for the selected job (the app then shows
    it). :meth:`refresh` re-reads the list.
    """

    def __init__(self, service: PhotoService, *, limit: int = 50) -> None:
        self.service = service
        self.limit = limit
        self.jobs = widgets.Select(options=[], rows=8, layout=widgets.Layout(width="100%"))
        self.jobs.add_class("photoproc-history-list")
        self.open_button = widgets.Button(description="Open", icon="folder-open")
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh")
        self.delete_button = widgets.Button(
            description="Delete", icon="trash", button_style="danger"
        )
        self.message = widgets.HTML("")
        self._submit_handlers = widgets.CallbackDispatcher()
        self.open_button.on_click(lambda _: self.submit())
        self.refresh_button.on_click(lambda _: self.refresh())
        self.delete_button.on_click(lambda _: self.delete())
        super().__init__(
            [
                self.jobs,
                widgets.HBox([self.open_button, self.refresh_button, self.delete_button]),
                self.message,
            ]
        )
        self.add_class("photoproc-history")
        self.refresh()

    @property
    def selected(self) -> str | None:
        return self.jobs.value

    def select(self, job_id: str) -> None:
        if job_id not in {value for _, value in self.jobs.options}:
            self.refresh()
        self.jobs.value = job_id

    def refresh(self) -> list[Job]:
        """Re-read the newest ``limit`` jobs, keeping the selection when it still exists."""
        jobs = self.service.list(limit=self.limit)
        keep = self.jobs.value
        options = [(describe_job(job), job.id) for job in jobs]
        self.jobs.options = options
        ids = [job.id for job in jobs]
        self.jobs.value = keep if keep in ids else (ids[0] if ids else None)
        total = self.service.count()
        self.message.value = (
            f"<small>{len(jobs)} of {total} jobs shown</small>" if total > len(jobs) else ""
        )
        for button in (self.open_button, self.delete_button):
            button.disabled = not ids
        return jobs

    def on_submit(self, callback: Callable[[str], Any], remove: bool = False) -> None:
        self._submit_handlers.register_callback(callback, remove=remove)

    def submit(self) -> str | None:
        """Open the selected job (calls the ``on_submit`` callbacks with its id)."""
        job_id = self.jobs.value
        if job_id is None:
            return None
        try:
            self.service.get(job_id)
        except JobNotFoundError as exc:
            self.message.value = f'<span style="color:#b00020">{html.escape(str(exc))}</span>'
            self.refresh()
            return None
        self._submit_handlers(job_id)
        return job_id

    def delete(self) -> str | None:
        """Delete the selected job, its rows and files."""
        job_id = self.jobs.value
        if job_id is None:
            return None
        with contextlib.suppress(JobNotFoundError):
            self.service.delete(job_id)
        self.refresh()
        return job_id
