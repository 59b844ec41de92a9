"""The worker: claims items from the store and runs them on an executor.

The executor (:mod:`photoproc.worker.executors`) is a pool of child processes
on this machine by default, or a Dask cluster; either way this process stays
the only one that touches the database. Threads in the worker's process, none
of them the caller's (an IOLoop or a kernel is never blocked):

- the **loop** claims items while the executor has room, hands them over, and
  records each outcome with the claim's fencing token — so an item whose lease
  this worker lost (it was frozen, another worker took over) can never
  overwrite the newer result;
- the **keeper** renews the leases of running items and writes the heartbeat;
- the executor's own threads, which kill a process whose item runs past
  ``item_timeout`` or notice one that died, and start a fresh one.

A crash or a timeout is retried (a new child, a new attempt) up to
``max_attempts``; then the item fails with the reason and the job goes on. A
:class:`~photoproc.errors.PhotoprocError` (a bad image, a missing model) fails
at once: it would fail the same way again.

If the worker process itself dies (``kill -9``), its items keep their leases
until they expire and another worker claims them again; its children notice
that their parent is gone and exit (see :func:`.child.init_child`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import CancelledError
from dataclasses import dataclass, field
from typing import Any

from ..config import Settings, usable_cores
from ..store import Claim, JobStore
from .child import ItemTask
from .executors import Executor, LocalPool, RunSpec

__all__ = ["Worker"]

log = logging.getLogger("photoproc.worker")

# How long an idle worker waits before trying to claim again even though the
# database did not change: expired leases of dead workers become claimable by
# the clock alone.
_IDLE_CLAIM_SECONDS = 1.0


@dataclass
class _Running:
    claim: Claim
    #: the executor's handle of the running item
    handle: Any = None
    started: float = field(default_factory=time.monotonic)
    #: another worker owns the item now; forget it without writing anything.
    lost: bool = False
    #: handed back to the queue on stop; the outcome is no longer ours to record.
    released: bool = False


class Worker:
    """Processes claimable items of one data directory until :meth:`stop` is called.

    ``item_function`` / ``write_function`` replace ``process_image`` /
    ``write_atomic`` in the children (``"module:function"`` strings or
    module-level callables, so they pickle); they default to the settings'
    values and then to the real ones. ``on_change(job_id)`` is called from the
    worker's thread after every item outcome, to wake in-process watchers.
    ``executor`` runs the items (default: a :class:`~.executors.LocalPool` of
    ``settings.workers`` processes).
    """

    def __init__(
        self,
        store: JobStore,
        settings: Settings,
        *,
        worker_id: str | None = None,
        item_function: str | Callable[..., Any] | None = None,
        write_function: str | Callable[..., Any] | None = None,
        warm_options: dict[str, Any] | None = None,
        on_change: Callable[[str], None] | None = None,
        executor: Executor | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.executor: Executor = executor or LocalPool(settings.workers)
        self._item_function = item_function or settings.item_function
        self._write_function = write_function or settings.write_function
        self._warm_options = warm_options
        self._on_change = on_change
        self._events: queue.SimpleQueue[tuple[str, str | None]] = queue.SimpleQueue()
        self._running: dict[str, _Running] = {}  # by claim token; touched by the loop only
        self._renewable: dict[str, _Running] = {}  # snapshot for the keeper
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._keeper_stop = threading.Event()
        self._stop_deadline = float("inf")
        self._loop_thread: threading.Thread | None = None
        self._keeper_thread: threading.Thread | None = None
        self.started_at: float | None = None
        self.counts = {"done": 0, "failed": 0, "retried": 0, "released": 0}

    # -- lifecycle ---------------------------------------------------------------

    @property
    def concurrency(self) -> int:
        """Items this worker runs at once (a Dask cluster's threads change with its size)."""
        return self.executor.capacity

    @property
    def alive(self) -> bool:
        return self._loop_thread is not None and self._loop_thread.is_alive()

    def start(self) -> Worker:
        if self._loop_thread is not None:
            return self
        self.started_at = time.time()
        # A cluster that cannot be reached (or runs another version) raises here,
        # before anything is claimed.
        self.executor.start(
            RunSpec(
                item_function=self._item_function,
                write_function=self._write_function,
                warm_options=self._warm_options,
                item_timeout=self.settings.item_timeout,
            )
        )
        self._heartbeat()
        self._loop_thread = threading.Thread(
            target=self._loop, name=f"photoproc-worker-{self.id}", daemon=True
        )
        self._keeper_thread = threading.Thread(
            target=self._keep, name=f"photoproc-keeper-{self.id}", daemon=True
        )
        self._loop_thread.start()
        self._keeper_thread.start()
        log.info("worker %s started on %s", self.id, self.executor.describe())
        return self

    def wake(self) -> None:
        """Look for work now (a job was just submitted in this process)."""
        self._events.put(("wake", None))

    def stop(self, timeout: float = 30.0) -> None:
        """Graceful stop: claim nothing more, let running items finish for up to
        ``timeout`` seconds, hand the rest back to the queue, stop the children.

        Returns when nothing of this worker is left ``processing``.
        """
        if self._loop_thread is None:
            return
        self._stop_deadline = time.monotonic() + max(0.0, timeout)
        self._stopping.set()
        self._events.put(("stop", None))
        self._loop_thread.join()
        self._stopped.wait()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the worker has stopped; ``False`` on timeout."""
        return self._stopped.wait(timeout)

    def __enter__(self) -> Worker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the loop ------------------------------------------------------------------

    def _loop(self) -> None:
        try:
            self._run_loop()
        except Exception:  # a bug here must not leave leases to expire silently
            log.exception("worker %s loop crashed", self.id)
        finally:
            try:
                self._shutdown()
            finally:
                self._stopped.set()

    def _run_loop(self) -> None:
        last_version = -1
        last_claim = 0.0
        while True:
            if self._stopping.is_set():
                if not self._running:
                    return
                if time.monotonic() >= self._stop_deadline:
                    self._release_all()
                    return
            else:
                now = time.monotonic()
                try:
                    version = self.store.data_version()
                    if version != last_version or now - last_claim >= _IDLE_CLAIM_SECONDS:
                        last_version = version
                        last_claim = now
                        self._fill()
                except sqlite3.OperationalError:
                    # Locked past busy_timeout (a disk that stalls): try again later
                    # rather than die; running items keep their leases meanwhile.
                    log.exception("worker %s: claiming failed", self.id)
            try:
                kind, token = self._events.get(timeout=self._wait_time())
            except queue.Empty:
                continue
            while True:
                if kind == "done" and token is not None:
                    try:
                        self._complete(token)
                    except sqlite3.OperationalError:
                        # The outcome is lost; the lease runs out and the item is retried.
                        log.exception("worker %s: recording a result failed", self.id)
                # A child is free, or work was submitted here: claim at once.
                last_version = -1
                try:
                    kind, token = self._events.get_nowait()
                except queue.Empty:
                    break

    def _wait_time(self) -> float:
        if self._stopping.is_set():
            return max(0.01, min(0.2, self._stop_deadline - time.monotonic()))
        return self.settings.poll_seconds

    def _fill(self) -> None:
        while not self._stopping.is_set() and len(self._running) < self.concurrency:
            claim = self.store.claim(
                self.id,
                lease_seconds=self.settings.lease_seconds,
                max_attempts=self.settings.max_attempts,
            )
            if claim is None:
                return
            self._start_item(claim)

    def _start_item(self, claim: Claim) -> None:
        data_dir = self.settings.data_dir
        running = _Running(claim)
        if claim.input_path is None:  # cannot happen for claimable items; be safe
            self._record(running, {"ok": False, "retry": False, "error": "no staged input"})
            return
        task = ItemTask(
            job_id=claim.job_id,
            index=claim.index,
            storage_name=claim.item.storage_name,
            input_path=str(data_dir / claim.input_path),
            out_dir=str(data_dir / "jobs" / claim.job_id / "out"),
            data_dir=str(data_dir),
            options=dict(claim.options),
            max_pixels=self.settings.max_pixels,
            item_function=self._item_function,
            write_function=self._write_function,
            # One item alone gets every core; a full pool, one core each.
            threads=max(1, usable_cores() // (len(self._running) + 1)),
        )
        token = claim.token
        try:
            # ``done`` only queues an event: the loop (this thread) handles it after
            # the item is registered below, however fast it ends.
            running.handle = self.executor.submit(task, lambda: self._events.put(("done", token)))
        except BaseException:
            self.store.release(claim)  # not ours to keep if we cannot run it
            raise
        self._running[token] = running
        with self._lock:
            self._renewable[token] = running
        self._changed(claim.job_id)

    def _complete(self, token: str) -> None:
        running = self._running.pop(token, None)
        with self._lock:
            self._renewable.pop(token, None)
        if running is None or running.handle is None or running.lost or running.released:
            return
        try:
            outcome = self.executor.outcome(running.handle)
        except CancelledError:
            return
        self._record(running, outcome)

    def _record(self, running: _Running, outcome: dict[str, Any]) -> None:
        claim = running.claim
        if outcome.get("ok"):
            accepted = self.store.finish(
                claim,
                outputs=outcome["outputs"],
                warnings=outcome.get("warnings", ()),
                timings=outcome.get("timings"),
                width=outcome.get("width"),
                height=outcome.get("height"),
            )
            self.counts["done"] += accepted
        else:
            error = str(outcome.get("error") or "unknown error")
            retry = bool(outcome.get("retry"))
            if outcome.get("traceback"):
                log.warning(
                    "item %s/%d failed:\n%s", claim.job_id, claim.index, outcome["traceback"]
                )
            if retry and claim.attempt >= self.settings.max_attempts:
                error = f"failed {claim.attempt} times, giving up; last: {error}"
            accepted = self.store.fail(claim, error, retry=retry)
            if retry and claim.attempt < self.settings.max_attempts:
                self.counts["retried"] += accepted
            else:
                self.counts["failed"] += accepted
        if not accepted:
            log.info("item %s/%d: claim lost, outcome dropped", claim.job_id, claim.index)
        self._changed(claim.job_id)

    def _release_all(self) -> None:
        """Stop deadline reached: hand running items back, the children are stopped next."""
        for token, running in list(self._running.items()):
            running.released = True
            if running.handle is not None:
                self.executor.cancel(running.handle)
            if self.store.release(running.claim):
                self.counts["released"] += 1
            self._changed(running.claim.job_id)
            self._running.pop(token, None)
        with self._lock:
            self._renewable.clear()

    def _shutdown(self) -> None:
        if self._running:  # the loop crashed: do not leave anything 'processing'
            self._release_all()
        try:
            self.executor.stop()
        except Exception:
            log.exception("worker %s: stopping its executor", self.id)
        self._stopping.set()
        self._keeper_stop.set()
        if self._keeper_thread is not None:
            self._keeper_thread.join(timeout=10)
        with contextlib.suppress(Exception):
            self.store.remove_worker(self.id)
        log.info("worker %s stopped (%s)", self.id, self.counts)

    def _changed(self, job_id: str) -> None:
        if self._on_change is not None:
            try:
                self._on_change(job_id)
            except Exception:
                log.exception("on_change callback failed")

    # -- the keeper --------------------------------------------------------------

    def _keep(self) -> None:
        # Leases are renewed while a graceful stop waits for running items, so the
        # keeper ends only after the loop (``_keeper_stop``), not on ``_stopping``.
        interval = min(self.settings.heartbeat_seconds, self.settings.lease_seconds / 3)
        next_beat = time.monotonic() + self.settings.heartbeat_seconds
        while not self._keeper_stop.wait(interval):
            try:
                self._renew()
                if time.monotonic() >= next_beat:
                    self._heartbeat()
                    next_beat = time.monotonic() + self.settings.heartbeat_seconds
            except Exception:  # a locked database now and then must not end the keeper
                log.exception("worker %s keeper", self.id)

    def _renew(self) -> None:
        with self._lock:
            running = list(self._renewable.values())
        for item in running:
            if item.lost or item.released:
                continue
            if not self.store.renew(item.claim, lease_seconds=self.settings.lease_seconds):
                with self._lock:
                    if item.claim.token not in self._renewable:
                        continue  # it just ended here: not lost, merely recorded
                # Another worker has the item now: stop spending a core on it.
                item.lost = True
                if item.handle is not None:
                    self.executor.cancel(item.handle)
                log.warning(
                    "worker %s lost its claim on %s/%d",
                    self.id,
                    item.claim.job_id,
                    item.claim.index,
                )

    def _heartbeat(self) -> None:
        self.store.heartbeat(
            self.id,
            pid=os.getpid(),
            host=socket.gethostname(),
            info={
                "processes": self.concurrency,
                **self.executor.describe(),
                "running": len(self._renewable),
                "started_at": self.started_at,
                **self.counts,
            },
        )
