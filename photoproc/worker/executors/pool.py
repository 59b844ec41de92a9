"""The local executor: a pebble pool of spawned child processes on this machine.

Each child runs :func:`~photoproc.worker.child.run_item`, which writes the
outputs itself (atomically) and returns paths; pebble kills a child whose item
runs past the timeout and notices one that died, and a fresh child replaces it.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pebble

from ..child import ItemTask, init_child, run_item

if TYPE_CHECKING:
    from .base import RunSpec

__all__ = ["LocalPool", "describe_exit"]

log = logging.getLogger("photoproc.worker")


def describe_exit(exitcode: Any) -> str:
    if isinstance(exitcode, int) and exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"


class LocalPool:
    """``processes`` child processes, each running one item at a time."""

    kind = "processes"

    def __init__(self, processes: int) -> None:
        self.processes = processes
        self._pool: pebble.ProcessPool | None = None
        self._spec: RunSpec | None = None

    @property
    def capacity(self) -> int:
        return self.processes

    def start(self, spec: RunSpec) -> None:
        self._spec = spec
        self._pool = self._new_pool()

    def _new_pool(self) -> pebble.ProcessPool:
        assert self._spec is not None
        # spawn, not fork: the parent may be a Tornado server or a kernel with
        # threads holding locks that a forked child would inherit locked.
        return pebble.ProcessPool(
            max_workers=self.processes,
            initializer=init_child,
            initargs=(os.getpid(), self._spec.item_function, self._spec.warm_options),
            context=multiprocessing.get_context("spawn"),
        )

    def submit(self, task: ItemTask, done: Callable[[], None]) -> pebble.ProcessFuture:
        assert self._pool is not None and self._spec is not None
        timeout = self._spec.item_timeout
        try:
            future = self._pool.schedule(run_item, args=(task,), timeout=timeout)
        except RuntimeError:
            # The pool broke (its manager threads died); one fresh pool, then give up.
            log.exception("process pool broken, restarting it")
            with contextlib.suppress(Exception):
                self._pool.stop()
            self._pool = self._new_pool()
            future = self._pool.schedule(run_item, args=(task,), timeout=timeout)
        future.add_done_callback(lambda _f: done())
        return future

    def outcome(self, handle: pebble.ProcessFuture) -> dict[str, Any]:
        assert self._spec is not None
        try:
            return handle.result()  # CancelledError propagates
        except TimeoutError:
            return {
                "ok": False,
                "retry": True,
                "error": f"timed out after {self._spec.item_timeout:g} s",
            }
        except pebble.ProcessExpired as exc:
            return {
                "ok": False,
                "retry": True,
                "error": f"worker process died ({describe_exit(exc.exitcode)})",
            }
        except Exception as exc:  # pebble could not run the task at all
            return {"ok": False, "retry": True, "error": f"{type(exc).__name__}: {exc}"}

    def cancel(self, handle: pebble.ProcessFuture) -> None:
        handle.cancel()

    def describe(self) -> dict[str, Any]:
        return {"executor": self.kind, "processes": self.processes}

    def stop(self) -> None:
        if self._pool is not None:
            self._pool.stop()
            with contextlib.suppress(Exception):
                self._pool.join(timeout=10)
