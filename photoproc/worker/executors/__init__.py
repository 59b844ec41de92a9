"""Where a worker's items run: the seam between the queue and the compute.

The :class:`~photoproc.worker.Worker` owns the queue side (claims, leases,
fencing, retries, progress); an executor only runs claimed items and reports
how each one ended, as the outcome dict of :func:`~photoproc.worker.child.run_item`
(``{"ok": True, "outputs": [...], ...}`` or ``{"ok": False, "retry": …, "error": …}``).

- :class:`LocalPool` — child processes on this machine (pebble), the default;
- :class:`~.cluster.DaskExecutor` — a Dask cluster; imported on demand, since
  ``dask`` is the optional ``photoproc[dask]`` extra.

An executor never raises from :meth:`Executor.outcome` except
:class:`concurrent.futures.CancelledError` for an item that was cancelled: a
crash, a timeout or a lost machine are outcomes with ``retry`` set.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ...errors import PhotoprocError
from ..child import ItemTask
from .pool import LocalPool

__all__ = ["ClusterError", "Executor", "LocalPool", "RunSpec", "dask_executor"]


class ClusterError(PhotoprocError):
    """The Dask cluster cannot be used: unreachable, another photoproc version, no extra."""


@dataclass(frozen=True)
class RunSpec:
    """What the worker tells its executor when it starts."""

    #: ``process_image`` replacement (``"module:function"`` or a picklable callable)
    item_function: str | Callable[..., Any] | None
    #: ``write_atomic`` replacement
    write_function: str | Callable[..., Any] | None
    #: options whose model every process loads before its first item
    warm_options: dict[str, Any] | None
    #: seconds one item may run before its process is killed
    item_timeout: float


class Executor(Protocol):
    """Runs items; see the module docstring for the contract."""

    #: ``"processes"`` or ``"dask"``: shown in heartbeats and the apps.
    kind: str

    def start(self, spec: RunSpec) -> None:
        """Get ready (start processes, connect); raise a clear error if it cannot."""

    @property
    def capacity(self) -> int:
        """Items that can run at once now; the worker keeps at most this many claimed."""

    def submit(self, task: ItemTask, done: Callable[[], None]) -> Any:
        """Start ``task``; ``done()`` is called (from any thread) once it has ended.
        Returns a handle for :meth:`outcome` and :meth:`cancel`."""

    def outcome(self, handle: Any) -> dict[str, Any]:
        """The ended item's outcome dict (outputs are written by then)."""

    def cancel(self, handle: Any) -> None:
        """Stop caring about an item: it will not be started if it has not been."""

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary for the heartbeat (what runs the items, how many)."""

    def stop(self) -> None:
        """Stop everything this executor started."""


def dask_executor(address: str, **kwargs: Any) -> Executor:
    """A :class:`~.cluster.DaskExecutor` for the scheduler at ``address``, with an
    error that says which extra to install when dask is missing."""
    try:
        from .cluster import DaskExecutor
    except ModuleNotFoundError as exc:
        if exc.name not in ("dask", "distributed"):
            raise
        raise ClusterError(
            f"--dask needs the dask extra: pip install 'photoproc[dask]' ({exc})"
        ) from None
    return DaskExecutor(address, **kwargs)
