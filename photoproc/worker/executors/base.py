"""The executor contract (see the package docstring), apart from the package so that
the executors can import it without importing each other."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ...errors import PhotoprocError
from ..child import ItemTask

__all__ = ["ClusterError", "Executor", "RunSpec"]


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
