"""What runs inside the worker's child processes: one item in, file paths out.

A child reads the staged input, runs the pipeline, writes every output
atomically under the job's ``out/`` folder with names derived only from the
item (so a retry overwrites the same files instead of adding new ones), and
returns a small dict of metadata — pixels and encoded bytes never cross the
pipe. Every exception is turned into that dict as well: pebble would have to
unpickle the exception in the parent, and exceptions with custom ``__init__``
signatures (most of :mod:`photoproc.errors`) do not survive the round trip.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from .. import naming
from ..errors import PhotoprocError, describe_error

__all__ = [
    "DEFAULT_ITEM_FUNCTION",
    "DEFAULT_WRITE_FUNCTION",
    "ItemTask",
    "init_child",
    "output_names",
    "resolve",
    "run_item",
]

DEFAULT_ITEM_FUNCTION = "photoproc.pipeline.process:process_image"
DEFAULT_WRITE_FUNCTION = "photoproc.fsutil:write_atomic"

# Per-process cache of resolved functions: the import happens once per child.
_resolved: dict[str, Callable[..., Any]] = {}


@dataclass(frozen=True)
class ItemTask:
    """One claimed item, as the child needs it (picklable, small)."""

    job_id: str
    index: int
    storage_name: str
    #: absolute path of the staged input
    input_path: str
    #: absolute path of the job's output folder
    out_dir: str
    #: output paths are recorded relative to this folder (the data dir)
    data_dir: str
    options: dict[str, Any] = field(default_factory=dict)
    max_pixels: int = 80_000_000
    item_function: str | Callable[..., Any] | None = None
    write_function: str | Callable[..., Any] | None = None
    #: the model's intra-op threads for this item: the cores left idle by the items in flight.
    threads: int = 1


def resolve(spec: str | Callable[..., Any] | None, default: str) -> Callable[..., Any]:
    """``"pkg.module:function"`` (or a callable, or ``None`` for ``default``) → the callable."""
    if callable(spec):
        return spec
    spec = spec or default
    if spec not in _resolved:
        module_name, sep, attr = spec.partition(":")
        if not sep or not module_name or not attr:
            raise ValueError(f"{spec!r} is not of the form 'module:function'")
        target: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
        if not callable(target):
            raise ValueError(f"{spec!r} is not callable")
        _resolved[spec] = target
    return _resolved[spec]


def output_names(storage_name: str, extensions: list[str]) -> list[str]:
    """Deterministic output file names: ``00003-cat.png`` or ``00003-cat_face1.png``, … .

    The storage name's stem under :func:`photoproc.naming.output_names`, the rule
    ``photoproc process`` and the download names follow too.
    """
    return naming.output_names(PurePosixPath(storage_name).stem or "item", extensions)


def _watch_parent(parent: int, interval: float = 0.5) -> None:
    # A worker killed with -9 cannot stop its pool; children that outlive it would
    # keep a core busy on items whose leases are expiring anyway.
    while True:
        time.sleep(interval)
        if os.getppid() != parent:
            os._exit(0)


#: added to the pipeline processes' niceness (lower CPU priority than their parent).
PIPELINE_NICENESS = 10


def init_child(
    parent_pid: int,
    item_function: str | Callable[..., Any] | None = None,
    warm_options: dict[str, Any] | None = None,
) -> None:
    """Pool initializer: one thread per library (processes give the parallelism), an
    orphan watchdog, imports paid once, and the model loaded when we know which."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    # Images are background work: the process that answers HTTP, a kernel or a
    # notebook's widgets must get the CPU first when the pool keeps every core busy.
    with contextlib.suppress(OSError):
        os.nice(PIPELINE_NICENESS)
    threading.Thread(
        target=_watch_parent, args=(parent_pid,), name="photoproc-orphan-watch", daemon=True
    ).start()
    try:
        resolve(item_function, DEFAULT_ITEM_FUNCTION)
        if item_function is None or item_function == DEFAULT_ITEM_FUNCTION:
            from ..pipeline.process import configure_threads, warm_up

            configure_threads(1)
            if warm_options is not None:
                from ..options import ProcessOptions
                from ..pipeline.process import default_threads

                # Both sessions an item may ask for: one image alone, or one of many.
                warm_up(ProcessOptions.from_mapping(warm_options), threads=(1, default_threads()))
    except Exception:
        # An initializer that raises makes pebble respawn the child forever; the
        # same error will reach the item (and its job) with a useful message.
        traceback.print_exc()


def run_item(task: ItemTask) -> dict[str, Any]:
    """Process one item; always returns ``{"ok": bool, ...}`` (see module docstring).

    Which failures are tried again: an exception raised by the pipeline is
    deterministic — the same bytes and options fail the same way — so it fails
    the item at once, whatever its type (a :class:`PhotoprocError` with its own
    message, anything else with :func:`describe_error`'s plain line; the
    traceback goes to the worker's log only). Only what can pass are retried:
    running out of memory (other children hold it), a failed read or write of
    our own files, and crashes and timeouts of the child (see the runner).
    """
    started = time.perf_counter()
    try:
        from ..options import ProcessOptions

        process = resolve(task.item_function, DEFAULT_ITEM_FUNCTION)
        write = resolve(task.write_function, DEFAULT_WRITE_FUNCTION)
        options = ProcessOptions.from_mapping(task.options)
        data = Path(task.input_path).read_bytes()
    except FileNotFoundError:
        # The job was deleted while queued: nothing left to process.
        return {"ok": False, "retry": False, "error": "the staged input is gone (job deleted?)"}
    except PhotoprocError as exc:
        return {"ok": False, "retry": False, "error": describe_error(exc)}
    except Exception as exc:
        return _unexpected(exc, retry=isinstance(exc, (OSError, MemoryError)))
    try:
        default = task.item_function in (None, DEFAULT_ITEM_FUNCTION)
        extra = {"threads": task.threads} if default else {}  # stand-ins take no threads
        result = process(data, options, max_pixels=task.max_pixels, **extra)
    except PhotoprocError as exc:
        # The image or the options are at fault: trying again cannot help.
        return {"ok": False, "retry": False, "error": describe_error(exc)}
    except MemoryError as exc:
        return _unexpected(exc, retry=True)
    except Exception as exc:
        return _unexpected(exc, retry=False)
    del data
    try:
        if not Path(task.input_path).exists():
            # The job was deleted meanwhile: writing would re-create its folder.
            return {"ok": False, "retry": False, "error": "the job was deleted"}
        out_dir = Path(task.out_dir)
        names = output_names(task.storage_name, [o.extension for o in result.outputs])
        written: list[str] = []
        for name, output in zip(names, result.outputs, strict=True):
            write(out_dir / name, output.data)
            written.append((out_dir / name).relative_to(task.data_dir).as_posix())
    except Exception as exc:  # a full disk may have room on the next try
        return _unexpected(exc, retry=True)
    timings = {k: round(float(v), 6) for k, v in result.timings.items()}
    timings["total"] = round(time.perf_counter() - started, 6)
    return {
        "ok": True,
        "outputs": written,
        "warnings": [str(w) for w in result.warnings],
        "timings": timings,
        "width": int(result.width),
        "height": int(result.height),
    }


def _unexpected(exc: BaseException, *, retry: bool) -> dict[str, Any]:
    """An outcome for an exception that is not ours: a plain message, the traceback for the log."""
    what = "internal error" if not retry else "error"
    return {
        "ok": False,
        "retry": retry,
        "error": f"{what} while processing the image ({describe_error(exc)})",
        "traceback": traceback.format_exc(limit=8),
    }
