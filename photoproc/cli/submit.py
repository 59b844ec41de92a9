"""``photoproc submit`` — queue images, folders or ZIPs as a job (and optionally wait).

``submit`` only enqueues into the data directory (``--data-dir``, else
``PHOTOPROC_DATA_DIR``, else the per-user data folder); with ``--wait`` it
watches the job, starting a worker of its own when none is alive.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .options import (
    add_dask_argument,
    add_data_dir_argument,
    add_pipeline_arguments,
    options_from_args,
)

__all__ = ["register", "run_submit"]


def register(sub: argparse._SubParsersAction) -> None:
    submit = sub.add_parser(
        "submit",
        help="queue images, folders or ZIPs as a job",
        description="Queue a job and print its id on the first line. With --wait, show "
        "progress until the job ends (starting a worker in this process if none is running) "
        "and exit with status 1 if any image failed.",
    )
    submit.add_argument("inputs", nargs="+", metavar="INPUT", help="image, folder or ZIP")
    add_data_dir_argument(submit)
    submit.add_argument("--wait", action="store_true", help="wait until the job ends")
    submit.add_argument("--json", action="store_true", help="print the job as JSON after its id")
    submit.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    submit.add_argument(
        "-w",
        "--workers",
        type=int,
        help="processes of the worker that --wait starts when none is running (default: cores)",
    )
    add_dask_argument(submit)
    add_pipeline_arguments(submit)
    submit.set_defaults(func=run_submit)


def run_submit(args: argparse.Namespace) -> int:
    from ..service import PhotoService
    from ..worker.executors import dask_executor

    options = options_from_args(args)
    # --dask: the worker that --wait may start runs its images on that cluster.
    executor = dask_executor(args.dask) if args.dask else None
    service = PhotoService(
        args.data_dir, start_worker=False, workers=args.workers, executor=executor
    )
    try:
        job = service.submit(args.inputs, options, source="cli")
        print(job.id, flush=True)
        if not args.wait:
            if args.json:
                print(json.dumps(job.to_dict()))
            else:
                print(f"queued {job.total} images in {service.data_dir}", file=sys.stderr)
            if not service.worker_alive():
                print(
                    "note: no worker is running on this data dir; start one with "
                    f"`photoproc worker --data-dir {service.data_dir}`",
                    file=sys.stderr,
                )
            return 0
        final = _wait(service, job.id, total=job.total, quiet=args.quiet)
        items = service.items(final.id)
        if args.json:
            print(json.dumps(final.to_dict(items)))
        else:
            _print_failures(items)
            print(
                f"{final.status}: {final.succeeded} done, {final.failed} failed of "
                f"{final.total} → {service.data_dir / 'jobs' / final.id / 'out'}",
                file=sys.stderr,
            )
        return 0 if final.status == "completed" and final.failed == 0 else 1
    except KeyboardInterrupt:
        print(
            "photoproc: stopped waiting; the job stays queued "
            "(`photoproc jobs cancel ID` to cancel it)",
            file=sys.stderr,
        )
        service.close(timeout=5)
        raise
    finally:
        service.close()


def _wait(service: Any, job_id: str, *, total: int, quiet: bool) -> Any:
    """Follow the job to its end, starting a worker here whenever none is alive."""
    from tqdm import tqdm

    bar = tqdm(total=total, unit="img", desc=job_id[:8], disable=quiet or None, dynamic_ncols=True)
    try:
        while True:
            if not service.worker_alive():
                service.start_worker()
            try:
                for job in service.watch(job_id, timeout=5.0):
                    bar.n = job.processed
                    if job.failed:
                        bar.set_postfix(failed=job.failed, refresh=False)
                    bar.refresh()
                    if job.ended:
                        return job
            except TimeoutError:
                continue  # look at the workers again
            return service.get(job_id)  # the watch ended without a terminal state
    finally:
        bar.close()


def _print_failures(items: list[Any]) -> None:
    for item in items:
        if item.status == "failed":
            print(f"  failed: {item.name}: {item.error}", file=sys.stderr)
