"""Batch processing of files, folders and ZIPs into an output tree (``photoproc process``).

Images are processed by a pool of threads that share one model session: every
heavy step (decode, resize, onnxruntime's ``run``, encode) releases the GIL, so
two threads keep two cores busy like two processes would, without loading the
model twice (docs/architecture.md). At most ``2 × workers`` images are in memory at once,
whatever the size of the input, so memory stays flat on long runs.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from .errors import PhotoprocError
from .fsutil import contained, write_atomic
from .ingest import IngestLimits, Skipped, Source, iter_sources
from .options import ProcessOptions
from .pipeline.decode import DEFAULT_MAX_PIXELS
from .pipeline.process import configure_threads, process_image, warm_up

__all__ = ["BatchReport", "Failure", "output_stem", "run_batch"]


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


def output_stem(name: str) -> PurePosixPath:
    """``"sub/cat.jpg"`` → ``sub/cat``: the relative output path without extension."""
    path = PurePosixPath(name)
    return path.with_suffix("") if path.suffix else path


def _targets(stem: PurePosixPath, options: ProcessOptions, count: int) -> list[str]:
    if count == 1:
        return [f"{stem}{options.extension}"]
    return [f"{stem}_face{i}{options.extension}" for i in range(1, count + 1)]


def _existing(out_dir: Path, stem: PurePosixPath, options: ProcessOptions) -> bool:
    candidates = [f"{stem}{options.extension}", f"{stem}_face1{options.extension}"]
    return any((out_dir / c).exists() for c in candidates)


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
) -> BatchReport:
    """Process every image in ``inputs`` into ``out_dir``, keeping relative paths.

    Existing outputs are skipped unless ``overwrite`` (so a re-run resumes);
    per-file errors are collected, never raised, and written to
    ``out_dir/failures.json``. ``on_progress(name, ok)`` is called once per
    input from the calling thread. A ``KeyboardInterrupt`` stops submitting,
    lets running images finish (their writes are atomic) and returns a report
    marked ``interrupted``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = BatchReport()
    started = time.perf_counter()
    configure_threads(1)
    warm_up(options)  # a missing model fails here, once, before any image is read
    used: set[str] = set()
    pending: deque[tuple[Future[tuple[list[str], list[str]]], str]] = deque()
    progress = on_progress or (lambda name, ok: None)

    def fail(name: str, reason: str) -> None:
        report.failures.append(Failure(name, reason))
        progress(name, False)

    def work(data: bytes, targets: list[str]) -> tuple[list[str], list[str]]:
        result = process_image(data, options, max_pixels=max_pixels)
        if len(result.outputs) != 1:  # every face of the image: name_face1, name_face2, …
            targets = _targets(output_stem(targets[0]), options, len(result.outputs))
        for target, output in zip(targets, result.outputs, strict=True):
            write_atomic(contained(out_dir, target), output.data)
        return targets, result.warnings

    def collect(block: bool) -> None:
        while pending and (block or pending[0][0].done()):
            future, name = pending.popleft()
            try:
                written, warnings = future.result()
            except PhotoprocError as exc:
                fail(name, str(exc))
                continue
            except Exception as exc:  # a bug must not lose the rest of the batch
                fail(name, f"{type(exc).__name__}: {exc}")
                continue
            report.processed += 1
            report.outputs.extend(out_dir / w for w in written)
            if warnings:
                report.warnings[name] = list(warnings)
            progress(name, True)

    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="photoproc")
    try:
        for source in iter_sources(inputs, limits=limits or IngestLimits()):
            if isinstance(source, Skipped):
                fail(source.name, source.reason)
                continue
            assert isinstance(source, Source)
            stem = output_stem(source.name)
            base = f"{stem}{options.extension}"
            serial = 2
            while base in used:  # a.jpg and a.png in one folder both want a.png
                stem = output_stem(source.name).with_name(
                    f"{output_stem(source.name).name} ({serial})"
                )
                base = f"{stem}{options.extension}"
                serial += 1
            used.add(base)
            if not overwrite and _existing(out_dir, stem, options):
                report.skipped_existing += 1
                progress(source.name, True)
                continue
            try:
                data = source.read()
            except PhotoprocError as exc:
                fail(source.name, str(exc))
                continue
            pending.append((pool.submit(work, data, _targets(stem, options, 1)), source.name))
            del data
            if len(pending) >= 2 * max(1, workers):
                wait([pending[0][0]], return_when=FIRST_COMPLETED)
                collect(block=False)
        collect(block=True)
    except KeyboardInterrupt:
        report.interrupted = True
        # Queued images never start; running ones finish (their writes are atomic).
        pool.shutdown(wait=True, cancel_futures=True)
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
