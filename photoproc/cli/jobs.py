"""The job-queue commands: ``photoproc worker``, ``photoproc submit`` and ``photoproc jobs``.

All three work on a data directory (``--data-dir``, else ``PHOTOPROC_DATA_DIR``,
else the per-user data folder) that any number of processes may share:
``submit`` only enqueues (and with ``--wait`` watches, starting a worker of its
own when none is alive), ``worker`` processes whatever is queued.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import signal
import sys
import threading
from datetime import datetime
from typing import Any

from ..errors import InvalidOptionsError
from .options import add_pipeline_arguments, options_from_args

__all__ = ["parse_duration", "register"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([smhdw]?)", re.IGNORECASE)


def parse_duration(text: str) -> float:
    """``"7d"``, ``"12h"``, ``"1d12h"``, ``"90m"``, ``"30s"``, ``"45"`` (seconds) → seconds."""
    text = text.strip()
    pos, total = 0, 0.0
    for match in _DURATION.finditer(text):
        if match.start() != pos and text[pos : match.start()].strip():
            break
        total += float(match.group(1)) * _UNITS[(match.group(2) or "s").lower()]
        pos = match.end()
    if not text or text[pos:].strip():
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration (examples: 7d, 12h, 1d12h, 30m, 45s)"
        )
    return total


def _data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        help="job database and files (default: $PHOTOPROC_DATA_DIR, else the per-user data folder)",
    )


def register(sub: argparse._SubParsersAction) -> None:
    worker = sub.add_parser(
        "worker",
        help="process queued jobs until stopped",
        description="Run a worker on a data directory: claim queued images, process them in "
        "a pool of child processes, record the results. Several workers (on one or several "
        "machines sharing the folder) may run at once. SIGTERM or Ctrl-C stops it "
        "gracefully: running images finish (up to --grace seconds) or go back to the queue.",
    )
    _data_dir(worker)
    worker.add_argument(
        "-w", "--workers", type=int, help="images processed in parallel (default: cores)"
    )
    worker.add_argument("--item-timeout", type=float, help="seconds before an image is killed")
    worker.add_argument("--max-attempts", type=int, help="tries per image (crash, timeout)")
    worker.add_argument("--warm", metavar="MODEL", help="load this model in every process at start")
    worker.add_argument(
        "--grace", type=float, default=30.0, help="seconds running images get to finish on stop"
    )
    worker.set_defaults(func=run_worker)

    submit = sub.add_parser(
        "submit",
        help="queue images, folders or ZIPs as a job",
        description="Queue a job and print its id on the first line. With --wait, show "
        "progress until the job ends (starting a worker in this process if none is running) "
        "and exit with status 1 if any image failed.",
    )
    submit.add_argument("inputs", nargs="+", metavar="INPUT", help="image, folder or ZIP")
    _data_dir(submit)
    submit.add_argument("--wait", action="store_true", help="wait until the job ends")
    submit.add_argument("--json", action="store_true", help="print the job as JSON after its id")
    submit.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    submit.add_argument(
        "-w",
        "--workers",
        type=int,
        help="processes of the worker that --wait starts when none is running (default: cores)",
    )
    add_pipeline_arguments(submit)
    submit.set_defaults(func=run_submit)

    jobs = sub.add_parser("jobs", help="list, inspect, cancel and clean up jobs")
    jobs_sub = jobs.add_subparsers(dest="jobs_command", metavar="ACTION")
    jobs_sub.required = True

    listing = jobs_sub.add_parser("list", help="jobs, newest first")
    _data_dir(listing)
    listing.add_argument(
        "--status", choices=["pending", "processing", "completed", "failed", "cancelled"]
    )
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--offset", type=int, default=0)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=run_list)

    show = jobs_sub.add_parser("show", help="a job and each of its items")
    show.add_argument("job_id", metavar="ID")
    _data_dir(show)
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=run_show)

    cancel = jobs_sub.add_parser("cancel", help="cancel a job (running images may finish)")
    cancel.add_argument("job_id", metavar="ID")
    _data_dir(cancel)
    cancel.add_argument("--json", action="store_true")
    cancel.set_defaults(func=run_cancel)

    delete = jobs_sub.add_parser("delete", help="remove a job, its rows and its files")
    delete.add_argument("job_id", metavar="ID")
    _data_dir(delete)
    delete.set_defaults(func=run_delete)

    cleanup = jobs_sub.add_parser("cleanup", help="remove jobs that ended long ago")
    cleanup.add_argument(
        "--older-than",
        type=parse_duration,
        required=True,
        metavar="AGE",
        help="e.g. 7d, 12h, 30m (jobs that ended before that)",
    )
    _data_dir(cleanup)
    cleanup.add_argument("--json", action="store_true")
    cleanup.set_defaults(func=run_cleanup)


# -- worker ---------------------------------------------------------------------------


def run_worker(args: argparse.Namespace) -> int:
    from ..config import Settings
    from ..store import JobStore
    from ..worker import Worker

    # A long-running daemon: say what happens (claims lost, retries, tracebacks of bugs).
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = Settings.from_env(
        data_dir=args.data_dir,
        workers=args.workers,
        item_timeout=args.item_timeout,
        max_attempts=args.max_attempts,
    )
    settings.jobs_dir.mkdir(parents=True, exist_ok=True)
    store = JobStore(settings.db_path)
    warm = {"model": args.warm} if args.warm else None
    worker = Worker(store, settings, warm_options=warm)
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        worker.start()
        print(
            f"photoproc worker {worker.id}: {worker.concurrency} processes on "
            f"{settings.data_dir} (SIGTERM or Ctrl-C to stop)",
            file=sys.stderr,
            flush=True,
        )
        while not stop.wait(0.5):
            if not worker.alive:
                print("photoproc worker: stopped unexpectedly", file=sys.stderr)
                return 1
        print("photoproc worker: stopping…", file=sys.stderr, flush=True)
        worker.stop(timeout=args.grace)
        counts = ", ".join(f"{k} {v}" for k, v in worker.counts.items())
        print(f"photoproc worker: stopped ({counts})", file=sys.stderr)
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if worker.alive:
            worker.stop(timeout=0)
        store.close()


# -- submit ---------------------------------------------------------------------------


def run_submit(args: argparse.Namespace) -> int:
    from ..service import PhotoService

    options = options_from_args(args)
    service = PhotoService(args.data_dir, start_worker=False, workers=args.workers)
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


# -- jobs -----------------------------------------------------------------------------


def _service(args: argparse.Namespace) -> Any:
    from ..service import PhotoService

    return PhotoService(args.data_dir, start_worker=False)


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")


def run_list(args: argparse.Namespace) -> int:
    with _service(args) as service:
        jobs = service.list(status=args.status, limit=args.limit, offset=args.offset)
        if args.json:
            print(json.dumps([job.to_dict() for job in jobs], indent=2))
            return 0
        if not jobs:
            print("no jobs", file=sys.stderr)
            return 0
        print(f"{'ID':36}  {'STATUS':10}  {'DONE':>11}  {'FAILED':>6}  CREATED")
        for job in jobs:
            done = f"{job.processed}/{job.total}"
            print(
                f"{job.id:36}  {job.status.value:10}  {done:>11}  {job.failed:>6}  "
                f"{_when(job.created_at)}"
            )
    return 0


def run_show(args: argparse.Namespace) -> int:
    with _service(args) as service:
        job = service.get(args.job_id)
        items = service.items(job.id)
        if args.json:
            data = job.to_dict(items)
            for entry, item in zip(data["items"], items, strict=True):
                entry["output_files"] = [str(service.data_dir / p) for p in item.outputs]
            print(json.dumps(data, indent=2))
            return 0
        print(f"job       {job.id}")
        print(f"status    {job.status.value}" + (f" ({job.error})" if job.error else ""))
        print(f"progress  {job.processed}/{job.total} ended, {job.failed} failed")
        print(f"created   {_when(job.created_at)}   finished {_when(job.finished_at)}")
        print(f"options   {json.dumps(_changed_options(job.options))}")
        for item in items:
            print(f"{item.index:5}  {item.status.value:10}  {item.name}")
            for output in item.outputs:
                print(f"         → {service.data_dir / output}")
            if item.error:
                print(f"         error: {item.error}")
            for warning in item.warnings:
                print(f"         warning: {warning}")
    return 0


def _changed_options(options: dict[str, Any]) -> dict[str, Any]:
    """Only what differs from the defaults: the interesting part of a job's options."""
    from ..options import ProcessOptions

    defaults = ProcessOptions().to_dict()
    return {k: v for k, v in options.items() if defaults.get(k, object()) != v}


def run_cancel(args: argparse.Namespace) -> int:
    with _service(args) as service:
        job = service.cancel(args.job_id)
        if args.json:
            print(json.dumps(job.to_dict()))
        else:
            print(f"{job.id} {job.status.value}")
    return 0


def run_delete(args: argparse.Namespace) -> int:
    with _service(args) as service:
        service.delete(args.job_id)
        print(f"{args.job_id} deleted")
    return 0


def run_cleanup(args: argparse.Namespace) -> int:
    if args.older_than < 0:
        raise InvalidOptionsError("older_than", "must not be negative")
    with _service(args) as service:
        removed = service.cleanup(args.older_than)
        if args.json:
            print(json.dumps({"removed": removed}))
        else:
            print(f"removed {removed} job{'s' if removed != 1 else ''}")
    return 0
