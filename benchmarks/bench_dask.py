"""The same job on the local process pool and on a Dask LocalCluster: the Dask path's cost.

    python benchmarks/bench_dask.py [--count 200] [--repeats 3] [--model PATH]
    python benchmarks/bench_dask.py --quick        # smoke run: 24 images, one repeat

Issue 12's figures, each against a peer in the same run on the same images:

* images/s of a ``--count``-image job (about 1, 1.5 and 2 MP JPEGs, see
  ``inputs.py``) through a :class:`~photoproc.worker.Worker` whose executor is
  (a) its local pool of 2 processes and (b) a ``LocalCluster`` of 2 worker
  processes × 1 thread on the same cores, niced like the pool's children; the
  ratio b / a (target ≥ 0.9×).
  Workers are started and their model loaded before the clock starts; the
  clock stops when the job has ended;
* the head's overhead per item on the Dask path: wall time the worker's loop
  spends in the executor's ``submit`` (read the input, send it) and
  ``outcome`` (receive, write the outputs atomically), per item of the job;
* how many item outcomes the head's SQLite store records per second
  (claim + finish of a stand-in item, no pipeline): the ceiling on throughput
  however many Dask workers are added.

Model: ``--model PATH`` (an ONNX file following rembg's U²-Net contract;
default ``../shared/models/u2netp.onnx``, the real u2netp weights), or
``--model grabcut`` (offline, no weights).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED, WORK, machine, median
from inputs import SMALL_MEGAPIXELS, make_small_images

from photoproc.config import Settings
from photoproc.jobs import JobStatus
from photoproc.service import PhotoService
from photoproc.store import JobStore, NewItem
from photoproc.worker import Worker
from photoproc.worker.executors import LocalPool

ROOT = WORK / "dask"


def timed(executor_class: type) -> type:
    """``executor_class`` whose ``submit`` and ``outcome`` add their wall time to ``head``."""

    class Timed(executor_class):  # type: ignore[misc, valid-type]
        head: list[float]

        def submit(self, task: Any, done: Any) -> Any:
            started = time.perf_counter()
            try:
                return super().submit(task, done)
            finally:
                self.head.append(time.perf_counter() - started)

        def outcome(self, handle: Any) -> dict[str, Any]:
            started = time.perf_counter()
            try:
                return super().outcome(handle)
            finally:
                self.head.append(time.perf_counter() - started)

    return Timed


def run_job(images: Path, options: dict[str, Any], executor: Any, tag: str) -> dict[str, Any]:
    data_dir = ROOT / f"data-{tag}"
    shutil.rmtree(data_dir, ignore_errors=True)
    settings = Settings(data_dir=data_dir, workers=2, item_timeout=600, poll_seconds=0.05)
    executor.head = []
    with PhotoService(settings=settings, start_worker=False) as service:
        worker = Worker(service.store, settings, warm_options=options, executor=executor)
        worker.start()
        try:
            job = service.submit([images], options)
            started = time.perf_counter()
            worker.wake()
            for state in service.watch(job.id, timeout=3600):
                if state.ended:
                    break
            seconds = time.perf_counter() - started
            final = service.get(job.id)
        finally:
            worker.stop()
    if final.status != JobStatus.COMPLETED or final.failed:
        sys.exit(f"{tag}: job ended {final.status} with {final.failed} failed")
    shutil.rmtree(data_dir, ignore_errors=True)
    head = sum(executor.head) / final.total
    return {"seconds": seconds, "images_s": final.total / seconds, "head_s": head}


def store_rate(count: int = 400) -> float:
    """Outcomes per second the head's store records: claim + finish, nothing else."""
    data_dir = ROOT / "data-store"
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    store = JobStore(data_dir / "photoproc.db")
    items = [NewItem(f"{i}.png", f"{i:05d}.png", f"jobs/x/in/{i:05d}.png") for i in range(count)]
    store.create_job(options={"model": "grabcut"}, source="bench", items=items)
    started = time.perf_counter()
    while (claim := store.claim("bench", lease_seconds=60, max_attempts=3)) is not None:
        store.finish(claim, outputs=[f"jobs/x/out/{claim.index:05d}.png"], warnings=(), timings={})
    rate = count / (time.perf_counter() - started)
    store.close()
    shutil.rmtree(data_dir, ignore_errors=True)
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default=str(SHARED / "models" / "u2netp.onnx"))
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.count, args.repeats = 24, 1
    if args.model == "grabcut":
        options: dict[str, Any] = {"model": "grabcut"}
    else:
        if not Path(args.model).is_file():
            sys.exit(f"model {args.model} not found (or pass --model grabcut)")
        options = {"model": "custom", "model_path": str(Path(args.model).resolve())}

    import dask
    from distributed import LocalCluster

    from photoproc.worker.executors.cluster import DaskExecutor

    images = make_small_images(WORK / f"small-{args.count}", args.count)
    print(machine())
    print(f"{args.count} JPEGs of {'/'.join(f'{m:g}' for m in SMALL_MEGAPIXELS)} MP, {options}")
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = LocalCluster(
            processes=True,
            n_workers=2,
            threads_per_worker=1,
            host="127.0.0.1",
            dashboard_address=None,
        )
    # The local pool's children run at niceness +10 (below the server and the kernel);
    # the Dask workers get the same, or other load on the machine would favour them.
    from distributed import Client

    with Client(cluster, set_as_default=False) as client:
        client.run(os.nice, 10)
    results: dict[str, list[dict[str, Any]]] = {"local": [], "dask": []}
    try:
        for repeat in range(args.repeats):
            for tag in ("local", "dask") if repeat % 2 == 0 else ("dask", "local"):
                if tag == "local":
                    executor = timed(LocalPool)(2)
                else:
                    executor = timed(DaskExecutor)(cluster.scheduler_address)
                run = run_job(images[0].parent, options, executor, tag)
                results[tag].append(run)
                print(
                    f"  run {repeat + 1} {tag:5}: {run['seconds']:.2f} s, "
                    f"{run['images_s']:.2f} images/s",
                    flush=True,
                )
    finally:
        cluster.close()
    local = median([r["images_s"] for r in results["local"]])
    remote = median([r["images_s"] for r in results["dask"]])
    head_dask = median([r["head_s"] for r in results["dask"]]) * 1000
    head_local = median([r["head_s"] for r in results["local"]]) * 1000
    rate = median([store_rate() for _ in range(3)])
    print(f"local pool (2 processes):         {local:.2f} images/s (median of {args.repeats})")
    print(f"Dask LocalCluster (2 × 1 thread): {remote:.2f} images/s")
    print(f"ratio Dask / local:               {remote / local:.3f}×  (target ≥ 0.9×)")
    print(f"head time per item in the executor: Dask {head_dask:.2f} ms, local {head_local:.2f} ms")
    print(f"head's store: {rate:.0f} item outcomes/s (claim + finish)")


if __name__ == "__main__":
    main()
