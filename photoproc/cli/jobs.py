"""``photoproc jobs`` — list, inspect, cancel and clean up the jobs of a data directory.

Like ``photoproc worker`` (:mod:`.worker`) and ``photoproc submit``
(:mod:`.submit`), it works on a data directory (``--data-dir``, else
``PHOTOPROC_DATA_DIR``, else the per-user data folder) that any number of
processes may share.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import datetime
from typing import Any

from ..errors import InvalidOptionsError
from .options import add_data_dir_argument

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


def register(sub: argparse._SubParsersAction) -> None:
    jobs = sub.add_parser("jobs", help="list, inspect, cancel and clean up jobs")
    jobs_sub = jobs.add_subparsers(dest="jobs_command", metavar="ACTION")
    jobs_sub.required = True

    listing = jobs_sub.add_parser("list", help="jobs, newest first")
    add_data_dir_argument(listing)
    listing.add_argument(
        "--status", choices=["pending", "processing", "completed", "failed", "cancelled"]
    )
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--offset", type=int, default=0)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=run_list)

    show = jobs_sub.add_parser("show", help="a job and each of its items")
    show.add_argument("job_id", metavar="ID")
    add_data_dir_argument(show)
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=run_show)

    cancel = jobs_sub.add_parser("cancel", help="cancel a job (running images may finish)")
    cancel.add_argument("job_id", metavar="ID")
    add_data_dir_argument(cancel)
    cancel.add_argument("--json", action="store_true")
    cancel.set_defaults(func=run_cancel)

    delete = jobs_sub.add_parser("delete", help="remove a job, its rows and its files")
    delete.add_argument("job_id", metavar="ID")
    add_data_dir_argument(delete)
    delete.set_defaults(func=run_delete)

    cleanup = jobs_sub.add_parser("cleanup", help="remove jobs that ended long ago")
    cleanup.add_argument(
        "--older-than",
        type=parse_duration,
        required=True,
        metavar="AGE",
        help="e.g. 7d, 12h, 30m (jobs that ended before that)",
    )
    add_data_dir_argument(cleanup)
    cleanup.add_argument("--json", action="store_true")
    cleanup.set_defaults(func=run_cleanup)


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
