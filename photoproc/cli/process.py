"""``photoproc process INPUT... --out DIR`` — the batch command."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from typing import Any

from .options import add_dask_argument, add_pipeline_arguments, options_from_args


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "process",
        help="process files, folders and ZIP archives into an output folder",
        description="Remove backgrounds and/or crop faces. Relative paths from folders and "
        "ZIPs are kept; existing outputs are skipped (re-run to resume) unless --overwrite.",
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image, folder or ZIP")
    parser.add_argument("-o", "--out", required=True, help="output folder")
    parser.add_argument(
        "-w",
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="images processed in parallel (default: cores, %(default)s)",
    )
    parser.add_argument("--overwrite", action="store_true", help="redo existing outputs")
    parser.add_argument(
        "--max-pixels",
        type=int,
        default=None,
        help="refuse images with more pixels (default 80 MP)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_dask_argument(parser)
    add_pipeline_arguments(parser)
    parser.set_defaults(func=run)


@contextlib.contextmanager
def _dask_pool(address: str) -> Any:
    """``(executor, threads)`` on the Dask cluster at ``address``: the images go there,
    at most two per cluster thread in flight, and their outputs come back here."""
    from ..worker.executors import ClusterError

    try:
        from distributed import Client
    except ModuleNotFoundError:
        raise ClusterError("--dask needs the dask extra: pip install 'photoproc[dask]'") from None

    try:
        client = Client(address, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise ClusterError(f"cannot reach the Dask scheduler at {address} ({exc})") from None
    try:
        threads = sum(client.nthreads().values())
        if not threads:
            raise ClusterError(f"the Dask cluster at {address} has no workers")
        yield client.get_executor(pure=False), threads
    finally:
        client.close()


def run(args: argparse.Namespace) -> int:
    from ..config import Settings

    address = args.dask or Settings.from_env().dask
    if address:
        with _dask_pool(address) as (executor, threads):
            return _run(args, executor, threads)
    return _run(args, None, args.workers)


def _run(args: argparse.Namespace, executor: Any, workers: int) -> int:
    from tqdm import tqdm

    from ..batch import run_batch
    from ..pipeline.decode import DEFAULT_MAX_PIXELS

    options = options_from_args(args)
    bar = tqdm(unit="img", desc="photoproc", disable=args.quiet or None, dynamic_ncols=True)
    failed = 0

    def progress(name: str, ok: bool) -> None:
        nonlocal failed
        failed += not ok
        bar.update(1)
        if failed:
            bar.set_postfix(failed=failed, refresh=False)

    try:
        report = run_batch(
            args.inputs,
            args.out,
            options,
            workers=workers,
            executor=executor,
            overwrite=args.overwrite,
            max_pixels=args.max_pixels or DEFAULT_MAX_PIXELS,
            on_progress=progress,
        )
    finally:
        bar.close()
    out = sys.stdout
    print(
        f"{report.processed} processed, {report.skipped_existing} already done, "
        f"{len(report.failures)} failed in {report.elapsed:.1f} s → {os.path.abspath(args.out)}",
        file=out,
    )
    for name, warnings in sorted(report.warnings.items()):
        print(f"  warning: {name}: {'; '.join(warnings)}", file=out)
    if report.failures:
        print(f"failures (also in {os.path.join(args.out, 'failures.json')}):", file=sys.stderr)
        for failure in report.failures:
            print(f"  {failure.name}: {failure.error}", file=sys.stderr)
    if report.interrupted:
        print("interrupted: finished images are kept; run again to resume", file=sys.stderr)
        return 130
    return 1 if report.failures else 0
