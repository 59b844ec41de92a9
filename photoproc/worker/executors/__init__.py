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

from typing import Any

from .base import ClusterError, Executor, RunSpec
from .pool import LocalPool

__all__ = ["ClusterError", "Executor", "LocalPool", "RunSpec", "dask_executor"]


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
