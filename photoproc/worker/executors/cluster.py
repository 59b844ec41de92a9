"""The Dask executor: claimed items run on a Dask cluster, the head keeps the rest.

The worker that owns this executor (the *head*) still claims, leases, retries
and records every item in its SQLite database; the cluster only computes.
An item travels as bytes (:func:`.remote.run_remote`) and its outputs come
back as bytes, which the head writes atomically where the local pool's
children would have: no shared file system, one writer.

- **Bounded in flight.** The worker claims at most :attr:`capacity` items —
  the cluster's thread count, followed as workers join and leave — so the
  rest stays queued in SQLite: cancelling them is a database update, and a
  head restart loses nothing (leases run out, items are claimed again).
- **One attempt per try.** Every submission gets a new key. A Dask worker
  that dies mid-item fails the task (run the scheduler with
  ``distributed.scheduler.allowed-failures: 0``, else Dask retries it on its
  own first); the head records the attempt and SQLite decides on a retry.
- **Timeouts.** A task that has been running on a Dask worker longer than the
  item timeout is given up and its worker restarted through its nanny: a hung
  native call cannot be interrupted any other way.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import CancelledError
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distributed import Client, Future
from distributed.client import FutureCancelledError

from ..child import DEFAULT_WRITE_FUNCTION, ItemTask, resolve
from .base import ClusterError
from .remote import PhotoprocPlugin, RemoteItem, run_remote

if TYPE_CHECKING:
    from .base import RunSpec

__all__ = ["DaskExecutor"]

log = logging.getLogger("photoproc.worker.dask")

# Inputs above this go to the cluster with ``scatter`` rather than inside the
# task message (Dask warns about task graphs over 10 MB).
_SCATTER_BYTES = 8 << 20
# How often the cluster's size and running tasks' ages are looked at.
_MONITOR_SECONDS = 0.5


@dataclass(eq=False)
class _Submission:
    task: ItemTask
    key: str
    done: Callable[[], None]
    future: Future | None = None
    scattered: Future | None = None
    #: an outcome known without the cluster (the input is gone)
    outcome: dict[str, Any] | None = None
    #: when the scheduler was first seen running it on a worker
    started: float | None = None
    worker: str | None = None
    timed_out: bool = False
    cancelled: bool = False


def _allowed_failures(dask_scheduler: Any) -> int:
    return int(dask_scheduler.allowed_failures)


class DaskExecutor:
    """Runs items on the Dask cluster at ``address`` (``tcp://host:8786``), or through
    an existing :class:`distributed.Client` (which the executor then does not close).

    ``connect_timeout`` defaults to Dask's ``distributed.comm.timeouts.connect``
    (30 s; ``DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT``)."""

    kind = "dask"

    def __init__(self, address: str | Client, *, connect_timeout: float | None = None) -> None:
        if isinstance(address, Client):
            self._client: Client | None = address
            self._own_client = False
            self.address = str(address.scheduler.address)
        else:
            self._client = None
            self._own_client = True
            self.address = address
        self.connect_timeout = connect_timeout
        self.dashboard: str | None = None
        self._spec: RunSpec | None = None
        self._write: Callable[..., Any] | None = None
        self._version = ""
        self._threads = 0
        self._workers = 0
        self._pending: dict[str, _Submission] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._monitor: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------

    def start(self, spec: RunSpec) -> None:
        from ..._version import __version__

        self._spec = spec
        self._stop = threading.Event()  # a stopped executor may be started again
        self._version = __version__
        self._write = resolve(spec.write_function, DEFAULT_WRITE_FUNCTION)
        if self._client is None:
            try:
                timeout = {} if self.connect_timeout is None else {"timeout": self.connect_timeout}
                self._client = Client(self.address, set_as_default=False, **timeout)
            except (OSError, TimeoutError) as exc:
                raise ClusterError(
                    f"cannot reach the Dask scheduler at {self.address} ({exc}); "
                    "is it running, and is the address right?"
                ) from None
        client = self._client
        try:
            client.register_plugin(
                PhotoprocPlugin(__version__, spec.item_function, spec.warm_options),
                name="photoproc",
            )
        except Exception as exc:
            # Workers that join later must not run the refused plugin either.
            with contextlib.suppress(Exception):
                client.unregister_worker_plugin("photoproc")
            self._close_client()
            raise ClusterError(
                f"the Dask workers at {self.address} cannot run photoproc {__version__}: {exc}"
            ) from None
        try:
            allowed = client.run_on_scheduler(_allowed_failures)
        except Exception:  # an old or locked-down scheduler: only a warning is lost
            allowed = 0
        if allowed:
            log.warning(
                "the Dask scheduler retries a task %d times when its worker dies; start it "
                "with DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES=0 so that every crash "
                "counts as an attempt in photoproc",
                allowed,
            )
        try:
            self.dashboard = client.dashboard_link
        except Exception:
            self.dashboard = None
        self._measure()
        self._monitor = threading.Thread(
            target=self._watch, name="photoproc-dask-monitor", daemon=True
        )
        self._monitor.start()

    def stop(self) -> None:
        self._stop.set()
        if self._monitor is not None:
            self._monitor.join(timeout=10)
        with self._lock:
            left = list(self._pending.values())
            self._pending.clear()
        for sub in left:
            self.cancel(sub)
        self._close_client()

    def _close_client(self) -> None:
        if self._own_client and self._client is not None:
            try:
                self._client.close(timeout=10)
            except Exception:
                log.exception("closing the Dask client")
            self._client = None

    @property
    def capacity(self) -> int:
        return self._threads

    def describe(self) -> dict[str, Any]:
        return {
            "executor": self.kind,
            "scheduler": self.address,
            "dashboard": self.dashboard,
            "dask_workers": self._workers,
            "threads": self._threads,
        }

    # -- items -----------------------------------------------------------------------

    def submit(self, task: ItemTask, done: Callable[[], None]) -> _Submission:
        assert self._client is not None and self._spec is not None
        sub = _Submission(task, f"photoproc-{task.job_id}-{task.index}-{uuid.uuid4().hex}", done)
        try:
            data = Path(task.input_path).read_bytes()
        except FileNotFoundError as exc:  # the job was deleted while queued
            sub.outcome = {"ok": False, "retry": False, "error": f"input missing: {exc.filename}"}
            done()
            return sub
        item = RemoteItem(
            job_id=task.job_id,
            index=task.index,
            storage_name=task.storage_name,
            head_version=self._version,
            options=task.options,
            max_pixels=task.max_pixels,
            item_function=self._spec.item_function,
        )
        payload: Any = data
        if len(data) > _SCATTER_BYTES:
            sub.scattered = payload = self._client.scatter(data, hash=False)
        del data
        with self._lock:
            self._pending[sub.key] = sub
        sub.future = self._client.submit(run_remote, item, payload, key=sub.key, pure=False)
        sub.future.add_done_callback(lambda _f: sub.done())
        return sub

    def outcome(self, sub: _Submission) -> dict[str, Any]:
        with self._lock:
            self._pending.pop(sub.key, None)
        sub.scattered = None
        if sub.outcome is not None:
            return sub.outcome
        assert self._spec is not None and sub.future is not None
        if sub.timed_out:
            return {
                "ok": False,
                "retry": True,
                "error": f"timed out after {self._spec.item_timeout:g} s "
                f"(Dask worker {sub.worker} restarted)",
            }
        try:
            result = sub.future.result()
        except (FutureCancelledError, CancelledError):
            if sub.cancelled:
                raise
            # Not by us: the scheduler dropped it (restarted, client reconnected).
            result = {"ok": False, "retry": True, "error": "the Dask scheduler dropped the task"}
        except Exception as exc:
            # KilledWorker (the process died mid-item), or the task could not run at all.
            result = {
                "ok": False,
                "retry": True,
                "error": f"Dask worker failed: {type(exc).__name__}: {exc}",
            }
        finally:
            sub.future.release()
        if result.get("ok"):
            try:
                result["outputs"] = self._write_outputs(sub.task, result.pop("files"))
            except OSError as exc:
                return {"ok": False, "retry": True, "error": f"writing the result: {exc}"}
        return result

    def _write_outputs(self, task: ItemTask, files: list[tuple[str, bytes]]) -> list[str]:
        if not Path(task.input_path).exists():
            # The job was deleted meanwhile: writing would re-create its folder.
            raise FileNotFoundError(f"the job was deleted: {task.input_path}")
        assert self._write is not None
        out_dir = Path(task.out_dir)
        written = []
        for name, data in files:
            self._write(out_dir / name, data)
            written.append((out_dir / name).relative_to(task.data_dir).as_posix())
        return written

    def cancel(self, sub: _Submission) -> None:
        sub.cancelled = True
        with self._lock:
            self._pending.pop(sub.key, None)
        if sub.future is not None and not sub.future.done():
            try:
                sub.future.cancel()
            except Exception:  # the client is closing: the task dies with it
                log.debug("cancelling %s", sub.key, exc_info=True)

    # -- the monitor -------------------------------------------------------------------

    def _measure(self) -> None:
        assert self._client is not None
        threads = self._client.nthreads()
        self._workers = len(threads)
        self._threads = sum(threads.values())

    def _watch(self) -> None:
        while not self._stop.wait(_MONITOR_SECONDS):
            try:
                self._measure()
                self._expire()
            except Exception:  # the scheduler is away for a moment: look again later
                log.debug("dask monitor", exc_info=True)

    def _expire(self) -> None:
        assert self._client is not None and self._spec is not None
        with self._lock:
            running = [s for s in self._pending.values() if not s.timed_out]
        if not running:
            return
        where = {
            key: address for address, keys in self._client.processing().items() for key in keys
        }
        now = time.monotonic()
        expired: list[_Submission] = []
        for sub in running:
            address = where.get(sub.key)
            if address is None:  # queued at the scheduler, or finishing
                sub.started = None
                continue
            if sub.started is None or sub.worker != address:
                sub.started, sub.worker = now, address
            elif now - sub.started > self._spec.item_timeout:
                expired.append(sub)
        if not expired:
            return
        for sub in expired:
            sub.timed_out = True
            sub.done()
        workers = sorted({sub.worker for sub in expired if sub.worker})
        log.warning(
            "items ran past %g s; restarting Dask workers %s", self._spec.item_timeout, workers
        )
        for sub in expired:
            if sub.future is not None:
                sub.future.cancel()
        self._client.restart_workers(workers, raise_for_error=False)
