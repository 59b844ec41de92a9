"""What runs on the Dask workers: an item's bytes in, its outputs' bytes out.

The item goes through the same :func:`~photoproc.worker.child.run_item` as in
the local pool — same pipeline, same error classification — with its input in
a scratch folder of the Dask worker and a writer that keeps the outputs in
memory: they travel back to the head, which writes them. Dask workers never
see the head's database or data folder.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from distributed import WorkerPlugin

from ..child import DEFAULT_ITEM_FUNCTION, ItemTask, resolve, run_item

__all__ = ["PhotoprocPlugin", "RemoteItem", "run_remote"]


def _local_version() -> str:
    from ..._version import __version__

    return __version__


def version_mismatch(head_version: str, where: str) -> str | None:
    """The error text when this process's photoproc differs from the head's."""
    mine = _local_version()
    if mine == head_version:
        return None
    return (
        f"photoproc {mine} on Dask worker {where}, but {head_version} on the head: "
        "install the same photoproc version on the cluster"
    )


@dataclass(frozen=True)
class RemoteItem:
    """One claimed item as a Dask task sees it (the input travels beside it, as bytes)."""

    job_id: str
    index: int
    storage_name: str
    head_version: str
    options: dict[str, Any] = field(default_factory=dict)
    max_pixels: int = 80_000_000
    item_function: str | Callable[..., Any] | None = None


class _Keep:
    """A ``write_atomic`` stand-in that keeps each output's bytes by file name."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    def __call__(self, path: str | os.PathLike[str], data: bytes, **_: Any) -> Path:
        self.files[Path(path).name] = bytes(data)
        return Path(path)


def _worker_address() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except ValueError:  # not inside a Dask worker (called directly in a test)
        return f"pid {os.getpid()}"


def run_remote(item: RemoteItem, data: bytes) -> dict[str, Any]:
    """Run one item; the outcome dict of ``run_item`` with ``files`` — ``[(name, bytes)]``
    in output order — instead of ``outputs``."""
    mismatch = version_mismatch(item.head_version, _worker_address())
    if mismatch:
        # Another worker of the cluster may be right: a retry, not the image's fault.
        return {"ok": False, "retry": True, "error": mismatch}
    keep = _Keep()
    with tempfile.TemporaryDirectory(prefix="photoproc-") as scratch:
        source = Path(scratch, "input")
        source.write_bytes(data)
        del data
        outcome = run_item(
            ItemTask(
                job_id=item.job_id,
                index=item.index,
                storage_name=item.storage_name,
                input_path=str(source),
                out_dir=str(Path(scratch, "out")),
                data_dir=scratch,
                options=item.options,
                max_pixels=item.max_pixels,
                item_function=item.item_function,
                write_function=keep,
            )
        )
    if outcome.get("ok"):
        names = [PurePosixPath(path).name for path in outcome.pop("outputs")]
        outcome["files"] = [(name, keep.files[name]) for name in names]
    return outcome


class PhotoprocPlugin(WorkerPlugin):
    """On every Dask worker, now and joining later: refuse another photoproc version,
    one library thread per Dask thread, the model loaded before the first item."""

    name = "photoproc"

    def __init__(
        self,
        head_version: str,
        item_function: str | Callable[..., Any] | None = None,
        warm_options: dict[str, Any] | None = None,
    ) -> None:
        self.head_version = head_version
        self.item_function = item_function
        self.warm_options = warm_options

    def setup(self, worker: Any) -> None:
        mismatch = version_mismatch(self.head_version, str(worker.address))
        if mismatch:
            # A RuntimeError pickles back to the head as itself (photoproc's errors
            # have custom signatures); the head turns it into a ClusterError.
            raise RuntimeError(mismatch)
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(var, "1")
        resolve(self.item_function, DEFAULT_ITEM_FUNCTION)
        if self.item_function in (None, DEFAULT_ITEM_FUNCTION):
            from ...pipeline.process import configure_threads, warm_up

            # Dask's threads give the parallelism, as the pool's processes do.
            configure_threads(1)
            if self.warm_options is not None:
                from ...options import ProcessOptions

                warm_up(ProcessOptions.from_mapping(self.warm_options))
