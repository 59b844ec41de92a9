"""PhotoService: the one API that the HTTP server, the notebook widgets and the CLI call.

Every method is a quick database call or a bounded file operation, safe to call
from an IOLoop callback or a kernel cell; images are processed by a
:class:`~photoproc.worker.Worker` (in this process or another one) and progress
reaches callers through :meth:`PhotoService.subscribe` / :meth:`PhotoService.watch`.

Files of a job live under ``<data dir>/jobs/<job id>/``: ``in/`` holds the
staged inputs, ``out/`` the results; the database records paths relative to
the data dir, never bytes.
"""

from __future__ import annotations

import atexit
import builtins
import datetime
import logging
import mimetypes
import os
import queue
import shutil
import socket
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, Literal, TypeAlias

from .config import Settings
from .errors import (
    IngestError,
    ItemNotFoundError,
    JobNotFoundError,
    MalformedArchiveError,
    NoImagesError,
    PhotoprocError,
    UploadTooLargeError,
)
from .events import EventHub
from .fsutil import contained
from .ingest import MALFORMED, NOT_IMAGE, TOO_LARGE, Skipped, UploadedFile, iter_sources
from .jobs import Item, ItemStatus, Job, JobStatus, canonical_job_id, new_job_id
from .naming import UniqueStems, ascii_name, clean_path, output_names, output_stem
from .options import ProcessOptions
from .results_zip import stream_zip
from .store import JobStore, NewItem
from .worker import Worker
from .worker.executors import Executor, dask_executor

__all__ = ["PhotoService", "ResultFile", "SubmitInput", "SubmitInputs"]

#: one input of :meth:`PhotoService.submit`: a path (image, folder or ZIP), an uploaded
#: file, or a ``(name, bytes)`` / ``(name, binary stream)`` pair.
SubmitInput: TypeAlias = (
    "str | os.PathLike[str] | UploadedFile | tuple[str, bytes] | tuple[str, BinaryIO]"
)
#: what :meth:`PhotoService.submit` takes: one path or uploaded file, or many inputs.
SubmitInputs: TypeAlias = "str | os.PathLike[str] | UploadedFile | Iterable[SubmitInput]"

log = logging.getLogger("photoproc.service")

_MEDIA_TYPES = {".png": "image/png", ".webp": "image/webp", ".jpg": "image/jpeg"}


@dataclass(frozen=True)
class ResultFile:
    """One output file of a job, with the name it should be downloaded under."""

    item_index: int
    #: unique within the job (case-insensitively), relative, POSIX, safe to extract
    #: anywhere ("sub/cat.png"): see :mod:`photoproc.naming`.
    name: str
    path: Path
    media_type: str
    size: int


class PhotoService:
    """Jobs of one data directory: submit, observe, fetch results, clean up.

    ``start_worker``: ``True`` starts a worker in this process (the server),
    ``False`` never does (``photoproc submit``), ``"auto"`` starts one only when
    no live worker's heartbeat is found on this data dir (a notebook kernel, a
    headless notebook run), so a job submitted here always makes progress.

    The worker's pipeline processes are *spawned* (a forked copy of a server or a
    kernel could inherit locks held by other threads), so a plain script that
    starts a worker needs the usual ``if __name__ == "__main__":`` guard, like any
    script that uses :mod:`multiprocessing`.

    ``executor`` runs the worker's items (see :mod:`photoproc.worker.executors`),
    e.g. ``DaskExecutor("tcp://scheduler:8786")``; without it, ``settings.dask``
    (``PHOTOPROC_DASK``) selects a Dask cluster, else local processes are used.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        settings: Settings | None = None,
        start_worker: bool | Literal["auto"] = "auto",
        workers: int | None = None,
        executor: Executor | None = None,
    ) -> None:
        if settings is None:
            settings = Settings.from_env(data_dir=data_dir, workers=workers)
        else:
            if data_dir is not None:
                settings = settings.replace(data_dir=Path(data_dir))
            if workers is not None:
                settings = settings.replace(workers=workers)
        self.settings = settings
        settings.jobs_dir.mkdir(parents=True, exist_ok=True)
        self.store = JobStore(settings.db_path)
        self._events = EventHub(self.store, poll_seconds=min(settings.poll_seconds, 0.1))
        self._worker: Worker | None = None
        self._executor = executor
        self._lock = threading.Lock()
        self._closed = False
        if start_worker is True or (start_worker == "auto" and not self.worker_alive()):
            self.start_worker()

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir

    # -- submitting ----------------------------------------------------------------

    def submit(
        self,
        inputs: SubmitInputs,
        options: ProcessOptions | Mapping[str, Any] | None = None,
        *,
        source: str = "api",
    ) -> Job:
        """Stage ``inputs`` (paths, folders, ZIPs, ``(name, bytes)``, ``(name, stream)``,
        :class:`~photoproc.ingest.UploadedFile`) under the job's ``in/`` folder and
        queue one item per image.

        Entries that are not processed (not an image, unsafe archive path, too
        big…) become items that are already failed with the reason, so the user
        sees every input they sent. When no image can be staged at all, nothing
        is left behind and the error says why, naming the input to blame
        (``entry``): :class:`~photoproc.errors.UploadTooLargeError` for content
        over a limit (a zip bomb), :class:`~photoproc.errors.MalformedArchiveError`
        for damaged archives or archives without an image,
        :class:`~photoproc.errors.NoImagesError` for content of no image type.
        An archive over its entry or size limit refuses the upload outright.
        """
        self._check_open()
        if not isinstance(options, ProcessOptions):
            options = ProcessOptions.from_mapping(options)
        if isinstance(inputs, (str, os.PathLike, UploadedFile)):
            inputs = [inputs]
        job_id = new_job_id()
        job_dir = self.settings.jobs_dir / job_id
        items: list[NewItem] = []
        images = staged = 0
        skipped: list[Skipped] = []
        try:
            for entry in iter_sources(inputs, limits=self.settings.ingest):
                index = len(items)
                storage = f"{index:05d}-{ascii_name(entry.name)}"
                if isinstance(entry, Skipped):
                    skipped.append(entry)
                    items.append(NewItem(entry.name, storage, None, error=entry.reason))
                    continue
                images += 1
                if images > self.settings.max_upload_files:
                    raise UploadTooLargeError(
                        f"more than {self.settings.max_upload_files:,} images in one job",
                        entry=entry.name,
                    )
                relative = f"jobs/{job_id}/in/{storage}"
                try:
                    entry.save(self.data_dir / relative)
                except PhotoprocError as exc:  # over a limit, corrupt entry: that item only
                    kind = TOO_LARGE if isinstance(exc, UploadTooLargeError) else MALFORMED
                    skipped.append(Skipped(entry.name, str(exc), kind))
                    items.append(NewItem(entry.name, storage, None, error=str(exc)))
                    continue
                staged += 1
                items.append(NewItem(entry.name, storage, relative))
            if staged == 0:
                raise _refusal(skipped)
            job = self.store.create_job(
                options=options.to_dict(), source=source, items=items, job_id=job_id
            )
        except BaseException:
            shutil.rmtree(job_dir, ignore_errors=True)
            raise
        log.info("job %s: %d items (%d skipped) from %s", job_id, len(items), len(skipped), source)
        if self._worker is not None:
            self._worker.wake()
        self._events.notify(job_id)
        return job

    # -- reading -------------------------------------------------------------------

    def get(self, job_id: str) -> Job:
        return self.store.get_job(job_id)

    def items(self, job_id: str, *, offset: int = 0, limit: int | None = None) -> list[Item]:
        return self.store.get_items(job_id, offset=offset, limit=limit)

    def list(
        self, *, status: str | JobStatus | None = None, limit: int = 50, offset: int = 0
    ) -> list[Job]:
        """Jobs, newest first."""
        return self.store.list_jobs(status=status, limit=limit, offset=offset)

    def count(self, *, status: str | JobStatus | None = None) -> int:
        return self.store.count_jobs(status=status)

    # -- changing --------------------------------------------------------------------

    def cancel(self, job_id: str) -> Job:
        """Pending items never start; the job is ``cancelled`` at once (an ended job is
        returned unchanged). Items already running may finish."""
        job = self.store.cancel_job(job_id)
        self._events.notify(job.id)
        return job

    def delete(self, job_id: str) -> None:
        """Remove the job's rows and files (cancelling it first if it is still running)."""
        job = self.store.get_job(job_id)
        if not job.ended:
            self.store.cancel_job(job.id)
        self.store.delete_job(job.id)
        self._events.forget(job.id)
        self._remove_files(job.id)

    def cleanup(self, older_than: float | datetime.timedelta) -> int:
        """Delete jobs that ended more than ``older_than`` (seconds or a timedelta) ago,
        rows and files; returns how many. Job folders without a job row (left by a
        crash between the two) are removed too."""
        seconds = (
            older_than.total_seconds()
            if isinstance(older_than, datetime.timedelta)
            else float(older_than)
        )
        if seconds < 0:
            raise ValueError("older_than must not be negative")
        cutoff = time.time() - seconds
        removed = 0
        for job in self.store.ended_jobs_before(cutoff):
            try:
                self.store.delete_job(job.id)
            except JobNotFoundError:  # someone else cleaned it up meanwhile
                continue
            self._events.forget(job.id)
            self._remove_files(job.id)
            removed += 1
        self._remove_orphans(cutoff)
        return removed

    def _remove_files(self, job_id: str) -> None:
        shutil.rmtree(self.settings.jobs_dir / job_id, ignore_errors=True)

    def _remove_orphans(self, cutoff: float) -> None:
        try:
            entries = list(self.settings.jobs_dir.iterdir())
        except FileNotFoundError:
            return
        for path in entries:
            if canonical_job_id(path.name) != path.name or not path.is_dir():
                continue
            try:
                if path.stat().st_mtime >= cutoff:
                    continue
                self.store.get_job(path.name)
            except JobNotFoundError:
                shutil.rmtree(path, ignore_errors=True)
            except FileNotFoundError:
                continue

    # -- results ---------------------------------------------------------------------

    def results(self, job_id: str) -> builtins.list[ResultFile]:
        """The output files of the job's finished items, in item order, with unique
        download names (``sub/cat.png``, ``cat (2).png`` for a second ``cat.jpg``,
        ``cat_face1.png``… for the faces of one photo; see :mod:`photoproc.naming`).
        Every item of the job holds its name, finished or not, so a name never
        changes once given. Only files recorded by a finished item are listed: a
        half-written temporary file is never among them."""
        items = self.store.get_items(job_id)
        wanted = [output_stem(clean_path(item.name)) for item in items]
        stems = UniqueStems(reserved=wanted)
        found: list[ResultFile] = []
        for item, want in zip(items, wanted, strict=True):
            stem = stems.claim(want)
            if item.status is not ItemStatus.DONE:
                continue
            names = output_names(stem, [PurePosixPath(o).suffix for o in item.outputs])
            for output, name in zip(item.outputs, names, strict=True):
                try:
                    path = contained(self.data_dir, output)
                    size = path.stat().st_size
                except (ValueError, OSError):
                    continue
                found.append(
                    ResultFile(
                        item_index=item.index,
                        name=name,
                        path=path,
                        media_type=_MEDIA_TYPES.get(path.suffix.lower())
                        or mimetypes.guess_type(path.name)[0]
                        or "application/octet-stream",
                        size=size,
                    )
                )
        return found

    def results_zip(
        self, job_id: str, *, chunk_size: int = 1 << 20
    ) -> Generator[bytes, None, None]:
        """The results as a ZIP, produced piece by piece (stored, not deflated:
        PNG/WebP/JPEG do not compress further). Unknown jobs raise here, before
        the first byte, so a server can still answer 404."""
        files = self.results(job_id)
        return stream_zip(files, chunk_size)

    def input_path(self, job_id: str, index: int) -> Path:
        """The staged original of an item (for galleries). Items that were never
        staged (skipped entries) raise :class:`~photoproc.errors.ItemNotFoundError`."""
        relative = self.store.item_input_path(job_id, index)
        if relative is None:
            raise ItemNotFoundError(job_id, index)
        return contained(self.data_dir, relative)

    # -- progress --------------------------------------------------------------------

    def subscribe(self, job_id: str, callback: Callable[[Job], None]) -> Callable[[], None]:
        """``callback(job)`` from a service thread: at once with the current state, then
        on changes (at most ~10 per second, the newest state last), the terminal state
        always and exactly once. Returns the function that unsubscribes."""
        self._check_open()
        return self._events.subscribe(job_id, callback)

    def watch(self, job_id: str, *, timeout: float | None = None) -> Iterator[Job]:
        """Job snapshots as they change; ends after yielding a terminal state.

        Raises :class:`TimeoutError` when ``timeout`` seconds pass before the job
        ends. Closing the generator early unsubscribes.
        """
        self._check_open()
        events: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        unsubscribe = self._events.subscribe(job_id, events.put, on_end=lambda: events.put(None))
        return self._watch(job_id, events, unsubscribe, timeout)

    @staticmethod
    def _watch(
        job_id: str,
        events: queue.SimpleQueue[Job | None],
        unsubscribe: Callable[[], None],
        timeout: float | None,
    ) -> Iterator[Job]:
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while True:
                wait = None if deadline is None else max(0.0, deadline - time.monotonic())
                try:
                    job = events.get(timeout=wait)
                except queue.Empty:
                    raise TimeoutError(f"job {job_id} did not end within {timeout:g} s") from None
                if job is None:  # deleted, or the service closed
                    return
                yield job
                if job.ended:
                    return
        finally:
            unsubscribe()

    # -- workers ---------------------------------------------------------------------

    def worker_alive(self) -> bool:
        """A worker (here or in another process) has recorded a heartbeat lately."""
        if self._worker is not None and self._worker.alive:
            return True
        return bool(self._live_workers())

    def _live_workers(self) -> builtins.list[dict[str, Any]]:
        # A worker on this host whose process is gone is dead now, not in 10 s.
        host = socket.gethostname()
        live = []
        for worker in self.store.live_workers(
            within=max(10.0, 5 * self.settings.heartbeat_seconds)
        ):
            if worker.get("host") == host and not _pid_alive(worker.get("pid")):
                continue
            live.append(worker)
        return live

    def start_worker(self) -> None:
        """Start a worker in this process (no-op when one is already running here)."""
        self._check_open()
        with self._lock:
            if self._worker is not None and self._worker.alive:
                return
            executor = self._executor
            if executor is None and self.settings.dask:
                executor = dask_executor(self.settings.dask)
            worker = Worker(
                self.store, self.settings, on_change=self._events.notify, executor=executor
            )
            worker.start()  # an unreachable cluster raises here, nothing claimed
            self._worker = worker
            _close_at_exit(self)

    @property
    def worker(self) -> Worker | None:
        """The worker running in this process, if any."""
        return self._worker

    def health(self) -> dict[str, Any]:
        try:
            workers = self._live_workers()
            local = self._worker is not None and self._worker.alive
            return {
                "status": "ok",
                "db": "ok",
                "worker_alive": local or bool(workers),
                "workers": workers,
                "queue_depth": self.store.queue_depth(),
                "jobs": self.store.status_counts(),
            }
        except (sqlite3.Error, OSError) as exc:
            return {
                "status": "error",
                "db": f"{type(exc).__name__}: {exc}",
                "worker_alive": self._worker is not None and self._worker.alive,
                "workers": [],
                "queue_depth": None,
                "jobs": {},
            }

    # -- lifecycle -------------------------------------------------------------------

    def close(self, *, timeout: float = 30) -> None:
        """Stop this process's worker gracefully (running items finish within
        ``timeout`` or go back to the queue), end subscriptions, close the database."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            worker, self._worker = self._worker, None
        if worker is not None:
            worker.stop(timeout=timeout)
        self._events.close()
        self.store.close()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this PhotoService is closed")

    def __enter__(self) -> PhotoService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PhotoService({str(self.data_dir)!r})"


def _refusal(skipped: list[Skipped]) -> IngestError:
    """Why an upload with no usable image is refused: the most serious cause wins —
    over a limit (413), then a damaged archive or one without an image (422), then
    content of no image type (415) — naming the entry to blame and the first reasons."""

    def rank(s: Skipped) -> int:
        if s.kind == TOO_LARGE:
            return 2
        return 1 if s.kind == MALFORMED or (s.kind == NOT_IMAGE and s.archive) else 0

    reasons = "; ".join(str(s) for s in skipped[:5])
    more = f" (and {len(skipped) - 5} more)" if len(skipped) > 5 else ""
    message = "no image found in the upload" + (f": {reasons}{more}" if reasons else "")
    worst = max(skipped, key=rank, default=None)
    if worst is None:
        return NoImagesError(message)
    kind = (NoImagesError, MalformedArchiveError, UploadTooLargeError)[rank(worst)]
    entry = worst.archive if rank(worst) == 1 and worst.kind == NOT_IMAGE else worst.name
    return kind(message, entry=entry)


def _pid_alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# Services that run a worker are closed at interpreter exit, so a notebook kernel
# that shuts down hands its running items back instead of leaving them to expire.
_running_services: weakref.WeakSet[PhotoService] = weakref.WeakSet()


def _close_at_exit(service: PhotoService) -> None:
    _running_services.add(service)


@atexit.register
def _close_all() -> None:
    for service in list(_running_services):
        try:
            service.close(timeout=5)
        except Exception:
            log.exception("closing %r at exit", service)
