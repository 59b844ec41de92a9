"""``photoproc worker`` — process queued jobs of a data directory until stopped."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from typing import TYPE_CHECKING

from .options import add_dask_argument, add_data_dir_argument

if TYPE_CHECKING:
    from ..worker import Worker

__all__ = ["register", "run_worker"]


def register(sub: argparse._SubParsersAction) -> None:
    worker = sub.add_parser(
        "worker",
        help="process queued jobs until stopped",
        description="Run a worker on a data directory: claim queued images, process them in "
        "a pool of child processes (or on a Dask cluster with --dask), record the results. "
        "Several workers (on one or several machines sharing the folder) may run at once. "
        "SIGTERM or Ctrl-C stops it gracefully: running images finish (up to --grace "
        "seconds) or go back to the queue.",
    )
    add_data_dir_argument(worker)
    worker.add_argument(
        "-w", "--workers", type=int, help="images processed in parallel (default: cores)"
    )
    worker.add_argument("--item-timeout", type=float, help="seconds before an image is killed")
    worker.add_argument("--max-attempts", type=int, help="tries per image (crash, timeout)")
    worker.add_argument("--warm", metavar="MODEL", help="load this model in every process at start")
    worker.add_argument(
        "--grace", type=float, default=30.0, help="seconds running images get to finish on stop"
    )
    add_dask_argument(worker)
    worker.set_defaults(func=run_worker)


def _describe(worker: Worker) -> str:
    info = worker.executor.describe()
    if info.get("executor") == "dask":
        dashboard = f", dashboard {info['dashboard']}" if info.get("dashboard") else ""
        return (
            f"Dask cluster at {info['scheduler']} ({info['dask_workers']} workers, "
            f"{info['threads']} threads{dashboard})"
        )
    return f"{info.get('processes')} processes"


def run_worker(args: argparse.Namespace) -> int:
    from ..config import Settings
    from ..store import JobStore
    from ..worker import Worker
    from ..worker.executors import dask_executor

    # A long-running daemon: say what happens (claims lost, retries, tracebacks of bugs).
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = Settings.from_env(
        data_dir=args.data_dir,
        workers=args.workers,
        item_timeout=args.item_timeout,
        max_attempts=args.max_attempts,
        dask=args.dask,
    )
    settings.jobs_dir.mkdir(parents=True, exist_ok=True)
    store = JobStore(settings.db_path)
    warm = {"model": args.warm} if args.warm else None
    executor = dask_executor(settings.dask) if settings.dask else None
    worker = Worker(store, settings, warm_options=warm, executor=executor)
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        worker.start()
        print(
            f"photoproc worker {worker.id}: {_describe(worker)} on "
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
