"""The processes of the service benchmark: a service that runs a job, a watcher elsewhere.

    python benchmarks/service_roles.py driver  --data-dir D --images DIR --model F --out J
    python benchmarks/service_roles.py watcher --data-dir D --ready R --out J

``driver`` is what a server or a kernel does: a :class:`PhotoService` with its
worker (and the worker's process pool) in this process; it submits the folder
as one job, subscribes to it, and waits for the final state. ``watcher`` runs a
service without a worker on the same data dir, waits for the job to appear,
subscribes, and records what it sees — progress that can only reach it through
the database.

Both write JSON: every event's arrival time (``time.time()``) and job counts;
the driver adds its phases and each item's status and finish time (the item
row's ``updated_at``, stamped inside the transaction that counts it in the
job). ``bench_service.py`` turns these into images/s and event latencies.
They run in separate processes so that the benchmark itself, which samples
memory, is in neither's process tree.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any


class _Recorder:
    """Subscription callback: arrival time and counts of each snapshot, and the end."""

    def __init__(self) -> None:
        self.events: list[list[Any]] = []
        self.ended = threading.Event()

    def __call__(self, job: Any) -> None:
        self.events.append([time.time(), job.processed, job.failed, job.status.value])
        if job.ended:
            self.ended.set()


def _write(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


def driver(args: argparse.Namespace) -> int:
    from photoproc import PhotoService, ProcessOptions

    started = time.time()
    service = PhotoService(args.data_dir, start_worker=True, workers=args.workers)
    try:
        ready = time.time()
        options = ProcessOptions(model="custom", model_path=str(args.model))
        job = service.submit([str(args.images)], options, source="benchmark")
        submitted = time.time()
        recorder = _Recorder()
        unsubscribe = service.subscribe(job.id, recorder)
        finished = recorder.ended.wait(args.timeout)
        if not finished:
            unsubscribe()
            service.cancel(job.id)
        items = service.items(job.id)
        final = service.get(job.id)
    finally:
        service.close(timeout=30)
    _write(
        args.out,
        {
            "job_id": job.id,
            "timed_out": not finished,
            "status": final.status.value,
            "total": final.total,
            "processed": final.processed,
            "failed": final.failed,
            "errors": sorted({i.error for i in items if i.error})[:5],
            "started": started,
            "service_ready": ready,
            "submitted": submitted,
            "ended": recorder.events[-1][0] if finished else time.time(),
            "events": recorder.events,
            "items": [[i.updated_at, i.status.value] for i in items],
        },
    )
    return 0 if finished else 1


def watcher(args: argparse.Namespace) -> int:
    from photoproc import PhotoService

    service = PhotoService(args.data_dir, start_worker=False)
    try:
        args.ready.write_text("ready")
        deadline = time.monotonic() + args.timeout
        jobs = []
        while not jobs and time.monotonic() < deadline:
            jobs = service.list(limit=1)
            if not jobs:
                time.sleep(0.02)
        if not jobs:
            _write(args.out, {"timed_out": True, "events": []})
            return 1
        recorder = _Recorder()
        subscribed = time.time()
        unsubscribe = service.subscribe(jobs[0].id, recorder)
        finished = recorder.ended.wait(max(1.0, deadline - time.monotonic()))
        unsubscribe()
    finally:
        service.close()
    _write(
        args.out,
        {
            "job_id": jobs[0].id,
            "timed_out": not finished,
            "subscribed": subscribed,
            "events": recorder.events,
        },
    )
    return 0 if finished else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="role", required=True)
    d = sub.add_parser("driver")
    d.add_argument("--data-dir", type=Path, required=True)
    d.add_argument("--images", type=Path, required=True)
    d.add_argument("--model", type=Path, required=True)
    d.add_argument("--workers", type=int, default=None)
    d.add_argument("--timeout", type=float, default=3600)
    d.add_argument("--out", type=Path, required=True)
    d.set_defaults(func=driver)
    w = sub.add_parser("watcher")
    w.add_argument("--data-dir", type=Path, required=True)
    w.add_argument("--ready", type=Path, required=True)
    w.add_argument("--timeout", type=float, default=3600)
    w.add_argument("--out", type=Path, required=True)
    w.set_defaults(func=watcher)
    args = ap.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # the worker's pool is spawned: this guard is required
    sys.exit(main())
