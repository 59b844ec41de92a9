"""A 1,000-image job through PhotoService vs `photoproc process`: speed, memory, event delay.

    python benchmarks/bench_service.py [--count 1000] [--small-count 50] [--repeats 1]
    python benchmarks/bench_service.py --quick        # smoke run: 40 and 10 images

Issue 3's goals, each measured against a peer in the same run:

* images/s of one job of ``--count`` JPEGs (about 1, 1.5 and 2 MP: see
  ``inputs.py``) through a :class:`PhotoService` with its worker, no more than
  10% below ``photoproc process`` on the same folder, same model (the
  u2netp-size random-weight model), same number of pipeline processes. Both
  are timed as whole processes, start-up, staging and model loading included;
* peak RSS of the service's whole process tree (service + pool children,
  sampled every 100 ms) for that job, no more than 10% above a
  ``--small-count`` job;
* the delay from an item finishing (the ``updated_at`` its finish transaction
  writes) to the first progress event that counts it, at a watcher in the
  service's own process (p95 ≤ 50 ms) and in another process that only sees the
  database (p95 ≤ 250 ms).

The service runs in ``service_roles.py driver``, the other-process watcher in
``service_roles.py watcher``, both under ``benchmarks/.work``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_process import photoproc_cmd
from common import WORK, machine, median
from inputs import SMALL_MEGAPIXELS, find_model, folder_megabytes, make_small_images
from procs import running
from tree_rss import TreeRssSampler

ROLES = Path(__file__).resolve().parent / "service_roles.py"
#: no download may be attempted, and children's warnings stay out of the figures.
CHILD_ENV = {"PHOTOPROC_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}


@dataclass
class Measured:
    seconds: float
    peak_rss_mb: float
    processes: int
    outputs: str
    detail: dict[str, Any] = field(default_factory=dict)


def measure_process(images: Path, count: int, model: Path, workers: int, tag: str) -> Measured:
    """`photoproc process` on the folder, timed and tree-sampled like the service."""
    out = WORK / f"out-service-process-{tag}"
    shutil.rmtree(out, ignore_errors=True)
    cmd = photoproc_cmd(images, out, model, workers)
    with running(f"process-{tag}", cmd, CHILD_ENV) as child:
        sampler = TreeRssSampler(child.pid).start()
        code, seconds = child.wait()
        sampler.stop()
        if code != 0:
            sys.exit(f"photoproc process failed ({code}):\n{child.tail()}")
    pngs = len(list(out.rglob("*.png")))
    shutil.rmtree(out, ignore_errors=True)
    outputs = "ok" if pngs == count else f"{pngs}/{count} PNGs"
    return Measured(seconds, sampler.peak_mb, sampler.peak_processes, outputs)


def measure_service(
    images: Path, count: int, model: Path, workers: int, tag: str, timeout: float
) -> Measured:
    """One job through PhotoService in a driver process, watched from another process."""
    data = WORK / f"service-data-{tag}"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    ready, driver_json, watcher_json = (
        data / "watcher.ready",
        data / "driver.json",
        data / "watcher.json",
    )
    py = [sys.executable, str(ROLES)]
    watcher_cmd = [*py, "watcher", "--data-dir", str(data), "--ready", str(ready)]
    watcher_cmd += ["--out", str(watcher_json), "--timeout", str(timeout + 120)]
    driver_cmd = [*py, "driver", "--data-dir", str(data), "--images", str(images)]
    driver_cmd += ["--model", str(model), "--workers", str(workers), "--out", str(driver_json)]
    driver_cmd += ["--timeout", str(timeout)]
    with running(f"watcher-{tag}", watcher_cmd, CHILD_ENV) as watcher:
        deadline = time.monotonic() + 60
        while not ready.exists():
            if watcher.proc.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"the watcher did not start:\n{watcher.tail()}")
            time.sleep(0.05)
        with running(f"service-{tag}", driver_cmd, CHILD_ENV) as driver:
            sampler = TreeRssSampler(driver.pid).start()
            try:
                code, seconds = driver.wait(timeout + 120)
            except subprocess.TimeoutExpired:
                sys.exit(f"the service run did not end in {timeout + 120:.0f} s:\n{driver.tail()}")
            finally:
                sampler.stop()
            if code != 0 or not driver_json.exists():
                sys.exit(f"the service run failed ({code}):\n{driver.tail()}")
        try:
            watcher.wait(30)
        except subprocess.TimeoutExpired:
            print("  (the other-process watcher did not see the end within 30 s)")
    drv = json.loads(driver_json.read_text())
    wat = json.loads(watcher_json.read_text()) if watcher_json.exists() else {"events": []}
    pngs = len(list((data / "jobs" / drv["job_id"] / "out").rglob("*.png")))
    shutil.rmtree(data, ignore_errors=True)
    if drv["status"] == "completed" and drv["failed"] == 0 and pngs == count == drv["total"]:
        outputs = "ok"
    else:
        outputs = (
            f"{drv['status']}: {drv['processed']}/{drv['total']} ended, {drv['failed']} failed, "
            f"{pngs}/{count} PNGs {drv['errors']}"
        )
    detail = {
        "job_seconds": drv["ended"] - drv["submitted"],
        "submit_seconds": drv["submitted"] - drv["service_ready"],
        "same_process": delays(drv["events"], drv["items"]),
        "other_process": delays(wat["events"], drv["items"]),
    }
    return Measured(seconds, sampler.peak_mb, sampler.peak_processes, outputs, detail)


def delays(events: list[list[Any]], items: list[list[Any]]) -> dict[str, Any]:
    """Per item: arrival of the first event whose ``processed`` count includes it,
    minus the item's finish time. Items end one transaction at a time, so the
    k-th item to finish (by finish time) is the one that makes ``processed`` k."""
    finishes = sorted(t for t, status in items if status in ("done", "failed") and t is not None)
    if not events:
        return {"n": 0, "missed": len(finishes)}
    subscribed = events[0][0]
    measured, before, missed = [], 0, 0
    arrivals = [(t, processed) for t, processed, *_ in events]
    j = 0
    for k, finished in enumerate(finishes, start=1):
        while j < len(arrivals) and arrivals[j][1] < k:
            j += 1
        if finished < subscribed:
            before += 1  # ended before this watcher subscribed: nothing to time
        elif j == len(arrivals):
            missed += 1
        else:
            measured.append(arrivals[j][0] - finished)
    out: dict[str, Any] = {"n": len(measured), "before_subscribing": before, "missed": missed}
    if measured:
        ms = np.array(measured) * 1000
        out.update(
            p50_ms=float(np.percentile(ms, 50)),
            p95_ms=float(np.percentile(ms, 95)),
            max_ms=float(ms.max()),
            events=len(events),
        )
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=1000, help="images in the big job")
    ap.add_argument("--small-count", type=int, default=50, help="images in the memory baseline job")
    ap.add_argument("--repeats", type=int, default=1, help="runs of each tool (alternating)")
    ap.add_argument("--model", default="u2netp", help="name under benchmarks/.work/models")
    ap.add_argument(
        "--workers",
        type=int,
        default=len(os.sched_getaffinity(0)),
        help="pipeline processes for both tools (default: usable cores)",
    )
    ap.add_argument("--timeout", type=float, help="seconds a service job may take")
    ap.add_argument("--quick", action="store_true", help="smoke run: 40 and 10 images")
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args()
    if args.quick:
        args.count, args.small_count, args.repeats = 40, 10, 1
    timeout = args.timeout or 300 + 5.0 * args.count

    model = find_model(args.model)
    big_dir, small_dir = WORK / f"small{args.count}", WORK / f"small{args.small_count}"
    make_small_images(big_dir, args.count)
    make_small_images(small_dir, args.small_count)
    mps = "/".join(f"{mp:g}" for mp in SMALL_MEGAPIXELS)
    print(f"machine: {machine()}")
    print(
        f"images: {args.count} JPEGs of ~{mps} MP ({folder_megabytes(big_dir):.0f} MB) in "
        f"{big_dir}; memory baseline: the first {args.small_count} of them"
    )
    print(
        f"model: {model.name}; pipeline processes: {args.workers}; repeats: {args.repeats}; "
        f"RSS: whole process tree, {TreeRssSampler(os.getpid()).method}, every 100 ms\n"
    )

    runs: dict[str, list[Measured]] = {"process": [], "service": [], "service-small": []}
    for r in range(args.repeats):
        for tool in ("process", "service", "service-small"):
            tag = f"{tool}-{r}"
            if tool == "process":
                m = measure_process(big_dir, args.count, model, args.workers, tag)
            elif tool == "service":
                m = measure_service(big_dir, args.count, model, args.workers, tag, timeout)
            else:
                m = measure_service(small_dir, args.small_count, model, args.workers, tag, timeout)
            runs[tool].append(m)
            n = args.small_count if tool == "service-small" else args.count
            extra = ""
            if m.detail:
                extra = f", job {m.detail['job_seconds']:.1f} s (staging {m.detail['submit_seconds']:.1f} s)"
            print(
                f"  {tool:13s} run {r + 1}: {n:5d} images {m.seconds:7.1f} s "
                f"({n / m.seconds:5.2f} img/s){extra}, peak tree RSS {m.peak_rss_mb:5.0f} MB "
                f"in {m.processes} processes, outputs {m.outputs}",
                flush=True,
            )

    proc_s = median([m.seconds for m in runs["process"]])
    svc_s = median([m.seconds for m in runs["service"]])
    ratio = proc_s / svc_s
    big_rss = max(m.peak_rss_mb for m in runs["service"])
    small_rss = max(m.peak_rss_mb for m in runs["service-small"])
    growth = big_rss / small_rss - 1
    last = runs["service"][-1].detail
    same, other = last["same_process"], last["other_process"]

    def verdict(ok: bool) -> str:
        return "ok" if ok else "MISSED"

    print(f"\nimages/s, {args.count} images (median of {args.repeats}):")
    print(f"  photoproc process     {args.count / proc_s:6.2f}  ({proc_s:.1f} s)")
    print(f"  PhotoService job      {args.count / svc_s:6.2f}  ({svc_s:.1f} s)")
    print(f"  ratio service/process {ratio:6.2f}x  (target ≥ 0.90: {verdict(ratio >= 0.9)})")
    print("peak RSS of the service's process tree:")
    print(f"  {args.small_count:5d}-image job {small_rss:6.0f} MB")
    print(f"  {args.count:5d}-image job {big_rss:6.0f} MB")
    print(f"  growth {growth * 100:+.1f}%  (target ≤ +10%: {verdict(growth <= 0.10)})")
    print(
        f"  (photoproc process on {args.count}: "
        f"{max(m.peak_rss_mb for m in runs['process']):.0f} MB, for comparison)"
    )
    print("item finished → progress event arrives (last service run):")
    for label, d, target in (("same process", same, 50), ("other process", other, 250)):
        if not d.get("n"):
            print(f"  {label:13s} no item measured ({d})")
            continue
        print(
            f"  {label:13s} p50 {d['p50_ms']:6.1f} ms  p95 {d['p95_ms']:6.1f} ms  "
            f"max {d['max_ms']:6.1f} ms  over {d['n']} items, {d['events']} events "
            f"(target p95 ≤ {target} ms: {verdict(d['p95_ms'] <= target)})"
        )

    if args.json:
        figures = {
            "count": args.count,
            "small_count": args.small_count,
            "megapixels": list(SMALL_MEGAPIXELS),
            "model": model.name,
            "workers": args.workers,
            "runs": {
                tool: [{k: v for k, v in vars(m).items()} for m in ms] for tool, ms in runs.items()
            },
            "images_per_s": {"process": args.count / proc_s, "service": args.count / svc_s},
            "ratio": ratio,
            "peak_rss_mb": {"small": small_rss, "big": big_rss, "growth": growth},
            "latency": {"same_process": same, "other_process": other},
        }
        args.json.write_text(json.dumps({"machine": machine(), "figures": figures}, indent=2))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    sys.exit(main())
