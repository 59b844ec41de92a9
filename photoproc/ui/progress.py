"""A job's progress: bar, counts, speed, time left, a cancel button and per-file status.

Updates come from :meth:`PhotoService.subscribe`, on a service thread, at most
about ten a second, the final state always included; widget values set from
that thread reach the browser directly. The per-file table costs a database
query, so it is refreshed at most every ``items_interval`` seconds while the
job runs, and always for the final state.
"""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from ..jobs import Item, ItemStatus, Job, JobStatus

if TYPE_CHECKING:
    from ..service import PhotoService

__all__ = ["ProgressPanel", "format_duration", "item_seconds"]

_STATUS_COLOURS = {
    "pending": "#777",
    "processing": "#1565c0",
    "done": "#2e7d32",
    "completed": "#2e7d32",
    "failed": "#b00020",
    "cancelled": "#b26a00",
}
_BAR_STYLES = {
    JobStatus.COMPLETED: "success",
    JobStatus.FAILED: "danger",
    JobStatus.CANCELLED: "warning",
}


def format_duration(seconds: float) -> str:
    """``75`` → ``"1 min 15 s"``; under ten seconds with one decimal."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def item_seconds(item: Item) -> float:
    """Time one image took: the worker's ``total`` when recorded, else the stages summed."""
    if "total" in item.timings:
        return float(item.timings["total"])
    return float(sum(item.timings.values()))


def _badge(status: str) -> str:
    colour = _STATUS_COLOURS.get(status, "#777")
    return f'<b style="color:{colour}">{html.escape(status)}</b>'


class ProgressPanel(widgets.VBox):
    """Shows one job at a time; :meth:`watch` switches to another.

    ``on_cancel(cb)`` / :meth:`cancel` work like ``Button.on_click`` /
    ``click()``: :meth:`cancel` cancels the watched job through the service, then
    calls ``cb(job)``. ``on_end(cb)`` is called with the final state of a job,
    once, from the service thread that delivered it.
    """

    def __init__(self, *, max_rows: int = 200, items_interval: float = 0.5) -> None:
        self.max_rows = max_rows
        self.items_interval = items_interval
        self.bar = widgets.FloatProgress(value=0.0, min=0.0, max=100.0, description="")
        self.bar.layout.width = "min(100%, 36em)"
        self.bar.add_class("photoproc-progress-bar")
        self.percent = widgets.HTML("")
        self.percent.add_class("photoproc-progress-percent")
        self.counts = widgets.HTML("")
        self.counts.add_class("photoproc-progress-counts")
        self.cancel_button = widgets.Button(
            description="Cancel", icon="stop", button_style="warning", disabled=True
        )
        self.cancel_button.add_class("photoproc-cancel")
        self.files = widgets.HTML("")
        self.files.add_class("photoproc-progress-files")
        self.files_box = widgets.Accordion([self.files], titles=("Files",), selected_index=None)
        self._cancel_handlers = widgets.CallbackDispatcher()
        self._end_handlers = widgets.CallbackDispatcher()
        self._update_handlers = widgets.CallbackDispatcher()
        self.cancel_button.on_click(lambda _: self.cancel())
        self._service: PhotoService | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._lock = threading.RLock()
        self._ended = threading.Event()
        self._job: Job | None = None
        self._job_id: str | None = None
        self._first: tuple[float, int] | None = None  # (monotonic time, processed) when first seen
        self._items_at = 0.0
        self.updates = 0  # how many states were shown (tests check the throttling)
        super().__init__(
            [
                widgets.HBox([self.bar, self.percent, self.cancel_button]),
                self.counts,
                self.files_box,
            ]
        )
        self.add_class("photoproc-progress")
        self.layout.display = "none"  # nothing to show before the first job

    # -- the watched job ------------------------------------------------------------------

    @property
    def job(self) -> Job | None:
        """The last state shown."""
        return self._job

    def watch(self, service: PhotoService, job_id: str) -> None:
        """Show ``job_id`` and follow it until it ends (stops following the previous one)."""
        self.stop()
        with self._lock:
            self._service = service
            self._job_id = job_id
            self._job = None
            self._first = None
            self._items_at = 0.0
            self._ended.clear()
        self.layout.display = None
        self._unsubscribe = service.subscribe(job_id, lambda job: self._on_job(job_id, job))

    def stop(self) -> None:
        """Stop following the current job (its last state stays on screen)."""
        unsubscribe, self._unsubscribe = self._unsubscribe, None
        if unsubscribe is not None:
            unsubscribe()

    def wait(self, timeout: float | None = None) -> Job:
        """Block until the watched job's final state is shown; returns it."""
        if self._job_id is None:
            raise RuntimeError("no job is being watched")
        if not self._ended.wait(timeout):
            raise TimeoutError(f"job {self._job_id} did not end within {timeout} s")
        assert self._job is not None
        return self._job

    # -- events ---------------------------------------------------------------------------

    def on_cancel(self, callback: Callable[[Job], Any], remove: bool = False) -> None:
        self._cancel_handlers.register_callback(callback, remove=remove)

    def on_end(self, callback: Callable[[Job], Any], remove: bool = False) -> None:
        self._end_handlers.register_callback(callback, remove=remove)

    def on_update(self, callback: Callable[[Job], Any], remove: bool = False) -> None:
        """``callback(job)`` after each state shown while following a job (service thread)."""
        self._update_handlers.register_callback(callback, remove=remove)

    def cancel(self) -> Job | None:
        """Cancel the watched job: pending images never start (running ones may finish)."""
        if self._service is None or self._job_id is None:
            return None
        self.cancel_button.disabled = True
        job = self._service.cancel(self._job_id)
        self._cancel_handlers(job)
        return job

    # -- display --------------------------------------------------------------------------

    def _on_job(self, job_id: str, job: Job) -> None:
        if job_id != self._job_id:  # a late event of a job no longer shown
            return
        items = None
        now = time.monotonic()
        if self._service is not None and (job.ended or now - self._items_at >= self.items_interval):
            self._items_at = now
            items = self._service.items(job_id, limit=self.max_rows)
        self.update(job, items)
        self._update_handlers(job)
        if job.ended and not self._ended.is_set():
            self._end_handlers(job)
            self._ended.set()

    def update(self, job: Job, items: list[Item] | None = None) -> None:
        """Show ``job`` (and, when given, the per-file ``items``)."""
        with self._lock:
            now = time.monotonic()
            if self._first is None or job.id != (self._job.id if self._job else None):
                self._first = (now, job.processed)
            self._job = job
            self.updates += 1
            self.layout.display = None
            self.bar.value = job.percentage
            self.bar.bar_style = _BAR_STYLES.get(job.status, "info")
            self.percent.value = f"<b>{job.percentage:.0f}%</b> {_badge(job.status.value)}"
            self.counts.value = self._counts_html(job, now)
            self.cancel_button.disabled = job.ended
            self.cancel_button.layout.visibility = "hidden" if job.ended else "visible"
            if items is not None:
                self.files.value = self._files_html(items, job.total)
                self.files_box.set_title(0, f"Files ({job.total})")

    def _rate(self, job: Job, now: float) -> float | None:
        """Images per second: over the job's life once ended, else since first seen."""
        if job.ended and job.finished_at is not None:
            elapsed = job.finished_at - job.created_at
            return job.processed / elapsed if elapsed > 0 and job.processed else None
        assert self._first is not None
        since, processed = self._first
        if job.processed > processed and now > since:
            return (job.processed - processed) / (now - since)
        return None

    def _counts_html(self, job: Job, now: float) -> str:
        parts = [f"<b>{job.processed}</b> / {job.total} processed"]
        parts.append(
            f'<span style="color:{_STATUS_COLOURS["failed"] if job.failed else "inherit"}">'
            f"{job.failed} failed</span>"
        )
        rate = self._rate(job, now)
        if rate:
            parts.append(f"{rate:.2f} images/s")
        if not job.ended and rate:
            parts.append(f"about {format_duration((job.total - job.processed) / rate)} left")
        if job.ended and job.finished_at is not None:
            parts.append(f"took {format_duration(max(0.0, job.finished_at - job.created_at))}")
        if job.error:
            parts.append(f'<span style="color:#b00020">{html.escape(job.error)}</span>')
        return " · ".join(parts)

    def _files_html(self, items: list[Item], total: int) -> str:
        rows = []
        for item in items:
            seconds = item_seconds(item)
            note = item.error or "; ".join(item.warnings)
            rows.append(
                "<tr>"
                f"<td>{item.index + 1}</td>"
                f"<td>{html.escape(item.name)}</td>"
                f"<td>{_badge(item.status.value)}</td>"
                f"<td>{format_duration(seconds) if item.status is ItemStatus.DONE else ''}</td>"
                f"<td>{html.escape(note)}</td>"
                "</tr>"
            )
        more = ""
        if total > len(items):
            more = f"<p><small>First {len(items)} of {total} files shown.</small></p>"
        return (
            '<div style="max-height:16em;overflow:auto">'
            '<table style="border-collapse:collapse;font-size:90%">'
            "<thead><tr><th>#</th><th>file</th><th>status</th><th>time</th><th>note</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>{more}</div>"
        )
