"""Batch processing of files, folders and ZIPs into an output tree (``photoproc process``).

Images are processed by a pool of threads that share one model session: every
heavy step (decode, resize, onnxruntime's ``run``, encode) releases the GIL, so
two threads keep two cores busy like two processes would, without loading the
model twice (docs/architecture.md). At most ``2 × workers`` images are in memory at once,
whatever the size of the input, so memory stays flat on long runs.

With ``executor`` (``photoproc process --dask``: a Dask client's
``get_executor()``) the images are processed there and their outputs come
back as bytes, written here.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import PhotoprocError, describe_error
from .fsutil import contained, write_atomic
from .ingest import IngestLimits, Skipped, Source, iter_sources
from .naming import UniqueStems, output_names, output_stem
from .options import ProcessOptions
from .pipeline.decode import DEFAULT_MAX_PIXELS
from .pipeline.process import configure_threads, default_threads, process_image, warm_up
from .pipeline.types import Result

__all__ = ["BatchReport", "Failure", "run_batch"]


@dataclass(frozen=True)
class Failure:
    name: str
    error: str


@dataclass
class BatchReport:
    processed: int = 0
    skipped_existing: int = 0
    outputs: list[Path] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    warnings: dict[str, list[str]] = field(default_factory=dict)
    elapsed: float = 0.0
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        return not self.failures and not self.interrupted


def _targets(stem: str, options: ProcessOptions, count: int) -> list[str]:
    return output_names(stem, [options.extension] * count)


def _existing(out_dir: Path, stem: str, options: ProcessOptions) -> bool:
    candidates = [*_targets(stem, options, 1), _targets(stem, options, 2)[0]]
    return any((out_dir / c).exists() for c in candidates)


def _process_remote(data: bytes, options: ProcessOptions, max_pixels: int) -> Result | str:
    """``process_image`` on another machine: a bad image comes back as its message
    (photoproc's errors have custom signatures and do not survive unpickling)."""
    try:
        return process_image(data, options, max_pixels=max_pixels)
    except PhotoprocError as exc:
        return str(exc) or type(exc).__name__


def run_batch(
    inputs: Iterable[object],
    out_dir: str | Path,
    options: ProcessOptions,
    *,
    workers: int = 2,
    overwrite: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    limits: IngestLimits | None = None,
    on_progress: Callable[[str, bool], None] | None = None,
    executor: Executor | None = None,
) -> BatchReport:
    """Process every image in ``inputs`` into ``out_dir``, keeping relative paths.

    Existing outputs are skipped unless ``overwrite`` (so a re-run resumes);
    per-file errors are collected, never raised, and written to
    ``out_dir/failures.json``. ``on_progress(name, ok)`` is called once per
    input from the calling thread. A ``KeyboardInterrupt`` stops submitting,
    lets running images finish (their writes are atomic) and returns a report
    marked ``interrupted``. ``executor`` runs the pipeline elsewhere (see the
    module docstring; ``workers`` is then its parallelism).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = BatchReport()
    started = time.perf_counter()
    threads = 1  # a remote executor's workers choose their own
    if executor is None:
        configure_threads(1)
        threads = max(1, default_threads() // max(1, workers))  # the model's share of the cores
        warm_up(options, threads=threads)  # a missing model fails here, once, before any image
    # a.jpg and A.png in one folder both want a.png (on macOS and Windows).
    stems = UniqueStems()
    pending: deque[tuple[Future[Any], str, str]] = deque()
    progress = on_progress or (lambda name, ok: None)

    def fail(name: str, reason: str) -> None:
        report.failures.append(Failure(name, reason))
        progress(name, False)

    def work(data: bytes, stem: str) -> tuple[list[str], list[str]]:
        return write(process_image(data, options, max_pixels=max_pixels, threads=threads), stem)

    def write(result: Result, stem: str) -> tuple[list[str], list[str]]:
        # One output keeps the stem; one per face: name_face1, name_face2, …
        targets = _targets(stem, options, len(result.outputs))
        for target, output in zip(targets, result.outputs, strict=True):
            write_atomic(contained(out_dir, target), output.data)
        return targets, result.warnings

    def collect(block: bool) -> None:
        while pending and (block or pending[0][0].done()):
            future, name, stem = pending.popleft()
            try:
                value: Any = future.result()
                if isinstance(value, str):
                    raise PhotoprocError(value)
                written, warnings = write(value, stem) if isinstance(value, Result) else value
            except PhotoprocError as exc:
                fail(name, str(exc))
                continue
            except Exception as exc:  # a bug must not lose the rest of the batch
                fail(name, describe_error(exc))
                continue
            report.processed += 1
            report.outputs.extend(out_dir / w for w in written)
            if warnings:
                report.warnings[name] = list(warnings)
            progress(name, True)

    pool = executor or ThreadPoolExecutor(
        max_workers=max(1, workers), thread_name_prefix="photoproc"
    )
    try:
        for source in iter_sources(inputs, limits=limits or IngestLimits()):
            if isinstance(source, Skipped):
                fail(source.name, source.reason)
                continue
            assert isinstance(source, Source)
            stem = stems.claim(output_stem(source.name))
            if not overwrite and _existing(out_dir, stem, options):
                report.skipped_existing += 1
                progress(source.name, True)
                continue
            try:
                data = source.read()
            except PhotoprocError as exc:
                fail(source.name, str(exc))
                continue
            future: Future[Any]
            if executor is None:
                future = pool.submit(work, data, stem)
            else:
                future = pool.submit(_process_remote, data, options, max_pixels)
            pending.append((future, source.name, stem))
            del data
            if len(pending) >= 2 * max(1, workers):
                wait([pending[0][0]], return_when=FIRST_COMPLETED)
                collect(block=False)
        collect(block=True)
    except KeyboardInterrupt:
        report.interrupted = True
        # Queued images never start; running ones finish (their writes are atomic).
        for entry in pending:
            entry[0].cancel()
        pool.shutdown(wait=True)
        for entry in [e for e in pending if e[0].cancelled()]:
            pending.remove(entry)
        collect(block=True)
    finally:
        pool.shutdown(wait=True)
        report.elapsed = time.perf_counter() - started
        write_atomic(
            out_dir / "failures.json",
            json.dumps([f.__dict__ for f in report.failures], indent=2).encode(),
        )
    return report
