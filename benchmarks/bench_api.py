"""The HTTP API under `photoproc serve`: upload → results vs `photoproc process`, then load.

    python benchmarks/bench_api.py [--repeats 3] [--duration 60] [--watchers 200] [--pollers 50]
    python benchmarks/bench_api.py --quick        # smoke run: 6 images, 10 s of load

Issue 4's goals, against a server started here on a free 127.0.0.1 port with its
data dir under ``benchmarks/.work`` (stopped by its PID at the end, errors
included):

1. **Round trip.** The 24-image set (``common.make_images``: 2/6/12 MP JPEGs)
   uploaded as one multipart request, progress followed over the WebSocket to
   the final state, the results downloaded as a ZIP and checked (24 RGBA PNGs,
   input sizes) — images/s within 15% of ``photoproc process`` on the same
   images with the same model (the u2netp-size random-weight one) and the same
   number of pipeline processes, runs alternating, medians compared. The
   server is started once, as a server is: its start-up is not in the figure,
   ``photoproc process``'s is (it has no other way to run).
2. **Load.** One job of small JPEGs (``inputs.make_small_images``), watched by
   ``--watchers`` WebSockets and ``--pollers`` clients polling its status every
   second (``api_load.py``, its own process), for ``--duration`` seconds, after
   which the job is cancelled if it is still running. Goals: no errors, every
   watcher gets the final state, and ``/health`` — requested here every 100 ms
   during the load — answers with p99 under 50 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import websocket
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_process import photoproc_cmd
from common import WORK, machine, make_images, median, run_measured
from inputs import find_model, folder_megabytes, make_small_images
from procs import Child, running

LOAD = Path(__file__).resolve().parent / "api_load.py"
CHILD_ENV = {"PHOTOPROC_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}


def start_server(stack: ExitStack, data: Path, workers: int) -> tuple[Child, str]:
    """``photoproc serve --port 0`` (a free port, chosen by the kernel); its URL from its log."""
    cmd = [sys.executable, "-m", "photoproc", "serve", "--host", "127.0.0.1", "--port", "0"]
    cmd += ["--data-dir", str(data), "--workers", str(workers)]
    server = stack.enter_context(running("api-server", cmd, CHILD_ENV))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = re.search(r"serving (http://127\.0\.0\.1:\d+/)", server.tail(20000))
        if found:
            url = found.group(1)
            if httpx.get(url + "health", timeout=10).status_code == 200:
                return server, url
        if server.proc.poll() is not None:
            break
        time.sleep(0.2)
    sys.exit(f"photoproc serve did not start:\n{server.tail()}")


def check_zip(archive: Path, images: list[Path]) -> str:
    """One RGBA PNG per input, named after it, of the input's size."""
    with zipfile.ZipFile(archive) as zf:
        names = sorted(n for n in zf.namelist() if n.lower().endswith(".png"))
        if len(names) != len(images):
            return f"{len(names)}/{len(images)} PNGs in the ZIP"
        for src in images:
            name = src.stem + ".png"
            if name not in names:
                return f"{name} missing from the ZIP"
            with zf.open(name) as f, Image.open(f) as png, Image.open(src) as jpg:
                if png.size != jpg.size or png.mode != "RGBA":
                    return f"{name}: {png.size} {png.mode} vs input {jpg.size}"
    return "ok"


def wait_final(url: str, job_id: str, timeout: float) -> dict[str, Any]:
    """Follow the job's WebSocket to its final message, as the seeds' clients do."""
    ws = websocket.create_connection(
        url.replace("http://", "ws://", 1) + f"ws/job/{job_id}", timeout=timeout
    )
    try:
        while True:
            data = json.loads(ws.recv())
            if data.get("event") == "final":
                return data
    finally:
        ws.close()


def upload(client: httpx.Client, images: list[Path], fields: dict[str, str]) -> str:
    with ExitStack() as files:
        parts = [
            ("files", (p.name, files.enter_context(p.open("rb")), "image/jpeg")) for p in images
        ]
        response = client.post("api/upload-and-process", data=fields, files=parts)
    if response.status_code != 202:
        sys.exit(f"upload refused: HTTP {response.status_code} {response.text[:500]}")
    return response.json()["job_id"]


def api_round_trip(
    url: str, images: list[Path], fields: dict[str, str], tag: str
) -> tuple[float, str]:
    """Seconds from the first upload byte to the last result byte on disk; ZIP check."""
    archive = WORK / f"api-results-{tag}.zip"
    with httpx.Client(base_url=url, timeout=600) as client:
        started = time.perf_counter()
        job_id = upload(client, images, fields)
        final = wait_final(url, job_id, timeout=1800)
        with client.stream("GET", f"api/download-results/{job_id}", params={"format": "zip"}) as r:
            if r.status_code != 200:
                sys.exit(f"download failed: HTTP {r.status_code}")
            with archive.open("wb") as out:
                for chunk in r.iter_bytes(1 << 20):
                    out.write(chunk)
        seconds = time.perf_counter() - started
        check = check_zip(archive, images)
        if final["status"] != "completed" or final["progress"]["failed"]:
            check = f"job {final['status']}, {final['progress']}; {check}"
        archive.unlink()
        client.delete(f"api/jobs/{job_id}")  # keep the disk use of repeats flat
    return seconds, check


def process_run(
    images_dir: Path, images: list[Path], model: Path, workers: int, tag: str
) -> tuple[float, str]:
    out = WORK / f"out-api-process-{tag}"
    shutil.rmtree(out, ignore_errors=True)
    run = run_measured(photoproc_cmd(images_dir, out, model, workers), env=CHILD_ENV)
    if run.returncode != 0:
        sys.exit(f"photoproc process failed ({run.returncode}):\n{run.stderr[-2000:]}")
    pngs = len(list(out.rglob("*.png")))
    shutil.rmtree(out, ignore_errors=True)
    return run.seconds, "ok" if pngs == len(images) else f"{pngs}/{len(images)} PNGs"


def load_phase(url: str, args: argparse.Namespace, fields: dict[str, str]) -> dict[str, Any]:
    """Upload the load job, start ``api_load.py`` on it, probe /health until it ends."""
    count = args.load_images or min(2000, max(20, round(args.duration * 10)))
    folder = WORK / f"small{count}"
    images = make_small_images(folder, count)
    print(
        f"\nload: a job of {count} JPEGs (~1-2 MP, {folder_megabytes(folder):.0f} MB), "
        f"{args.watchers} WebSocket watchers, {args.pollers} pollers every "
        f"{args.poll_interval:g} s, {args.duration:g} s, then cancel if still running",
        flush=True,
    )
    with httpx.Client(base_url=url, timeout=600) as client:
        job_id = upload(client, images, fields)
    ready, out = WORK / "api-load.ready", WORK / "api-load.json"
    ready.unlink(missing_ok=True)
    out.unlink(missing_ok=True)
    cmd = [sys.executable, str(LOAD), "--url", url, "--job", job_id, "--out", str(out)]
    cmd += ["--watchers", str(args.watchers), "--pollers", str(args.pollers)]
    cmd += ["--poll-interval", str(args.poll_interval), "--duration", str(args.duration)]
    cmd += ["--ready", str(ready)]
    health: list[float] = []
    health_errors: list[str] = []
    with running("api-load", cmd, CHILD_ENV) as load, httpx.Client(base_url=url, timeout=30) as hc:
        limit = time.monotonic() + args.duration + 180
        while load.proc.poll() is None and time.monotonic() < limit:
            if ready.exists():
                t = time.perf_counter()
                try:
                    r = hc.get("health")
                    if r.status_code != 200:
                        health_errors.append(f"HTTP {r.status_code}")
                except httpx.HTTPError as exc:
                    health_errors.append(f"{type(exc).__name__}: {exc}")
                health.append(time.perf_counter() - t)
            time.sleep(0.1)
        try:
            code, _ = load.wait(5)
        except subprocess.TimeoutExpired:
            sys.exit(f"the load did not end in time:\n{load.tail()}")
        if code != 0 or not out.exists():
            sys.exit(f"the load client failed ({code}):\n{load.tail()}")
    result = json.loads(out.read_text())
    with httpx.Client(base_url=url, timeout=60) as client:
        client.delete(f"api/jobs/{job_id}")
    result["health_ms"] = [h * 1000 for h in health]
    result["health_errors"] = health_errors
    result["images"] = count
    return result


def summarize_load(result: dict[str, Any], watchers: int) -> dict[str, Any]:
    ws = result["watchers"]
    finals = sum(1 for w in ws if w["final_status"] is not None)
    ws_errors = [w["error"] for w in ws if w["error"]]
    poll_requests = sum(p["requests"] for p in result["pollers"])
    poll_errors = [e for p in result["pollers"] for e in p["errors"]]
    poll_error_count = sum(p["error_count"] for p in result["pollers"])
    health = np.array(result["health_ms"] or [float("nan")])
    return {
        "load_seconds": result["load_seconds"],
        "job": f"{result['job_status']} {result['job_progress']}"
        + (" (cancelled at the deadline)" if result["cancelled_at_deadline"] else ""),
        "watchers_connected": sum(1 for w in ws if w["connected"]),
        "watchers_with_final": finals,
        "final_statuses": sorted({w["final_status"] for w in ws if w["final_status"]}),
        "ws_messages": sum(w["messages"] for w in ws),
        "ws_megabytes": sum(w["bytes"] for w in ws) / 1e6,
        "ws_errors": len(ws_errors),
        "ws_error_examples": sorted(set(ws_errors))[:3],
        "poll_requests": poll_requests,
        "poll_errors": poll_error_count,
        "poll_error_examples": sorted(set(poll_errors))[:3],
        "health_requests": len(result["health_ms"]),
        "health_errors": len(result["health_errors"]),
        "health_p50_ms": float(np.percentile(health, 50)),
        "health_p99_ms": float(np.percentile(health, 99)),
        "health_max_ms": float(health.max()),
        "ok_errors": not ws_errors and not poll_error_count and not result["health_errors"],
        "ok_finals": finals == watchers,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3, help="round trips per tool (alternating)")
    ap.add_argument("--count", type=int, default=24, help="images of the round trip (2/6/12 MP)")
    ap.add_argument("--model", default="u2netp", help="name under benchmarks/.work/models")
    ap.add_argument(
        "--workers",
        type=int,
        default=len(os.sched_getaffinity(0)),
        help="pipeline processes for both (default: usable cores)",
    )
    ap.add_argument("--duration", type=float, default=60, help="seconds of load")
    ap.add_argument("--watchers", type=int, default=200)
    ap.add_argument("--pollers", type=int, default=50)
    ap.add_argument("--poll-interval", type=float, default=1.0)
    ap.add_argument("--load-images", type=int, help="images in the load job (default 10 per s)")
    ap.add_argument("--skip-load", action="store_true", help="only the round trip")
    ap.add_argument("--quick", action="store_true", help="smoke run: 6 images, 1 repeat, 10 s load")
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args()
    if args.quick:
        args.count, args.repeats, args.duration = 6, 1, 10.0

    model = find_model(args.model)
    images_dir = WORK / f"images{args.count}"
    images = make_images(images_dir, args.count)
    data = WORK / "api-data"
    shutil.rmtree(data, ignore_errors=True)
    # Over HTTP a model file must lie inside the server's model folder.
    CHILD_ENV["REMBG_HOME"] = str(model.parent.resolve())
    fields = {"model": "custom", "model_path": str(model)}
    print(f"machine: {machine()}")
    print(
        f"images: {len(images)} JPEGs (2/6/12 MP, {folder_megabytes(images_dir):.0f} MB) in "
        f"{images_dir}; model {model.name}; pipeline processes: {args.workers}; "
        f"repeats: {args.repeats}"
    )
    figures: dict[str, Any] = {"count": len(images), "model": model.name, "workers": args.workers}
    with ExitStack() as stack:
        server, url = start_server(stack, data, args.workers)
        print(f"server: {url} (pid {server.pid}, data {data})\n", flush=True)
        times: dict[str, list[float]] = {"process": [], "api": []}
        for r in range(args.repeats):
            for tool in ("process", "api"):
                if tool == "process":
                    seconds, check = process_run(images_dir, images, model, args.workers, str(r))
                else:
                    seconds, check = api_round_trip(url, images, fields, str(r))
                times[tool].append(seconds)
                print(
                    f"  {tool:8s} run {r + 1}: {seconds:6.1f} s "
                    f"({len(images) / seconds:4.2f} img/s), outputs {check}",
                    flush=True,
                )
                if check != "ok":
                    sys.exit(f"{tool}: outputs wrong: {check}")
        proc_s, api_s = median(times["process"]), median(times["api"])
        ratio = proc_s / api_s
        print(f"\nimages/s, {len(images)} images (median of {args.repeats}):")
        print(f"  photoproc process             {len(images) / proc_s:5.2f}  ({proc_s:.1f} s)")
        print(f"  upload → results over the API {len(images) / api_s:5.2f}  ({api_s:.1f} s)")
        ok = "ok" if ratio >= 0.85 else "MISSED"
        print(f"  ratio api/process {ratio:.2f}x  (target ≥ 0.85: {ok})", flush=True)
        figures.update(times=times, ratio=ratio)

        if not args.skip_load:
            s = summarize_load(load_phase(url, args, fields), args.watchers)
            figures["load"] = s
            print(
                f"  job: {s['job']}; load lasted {s['load_seconds']:.1f} s\n"
                f"  watchers: {s['watchers_connected']}/{args.watchers} connected, "
                f"{s['watchers_with_final']} got the final state {s['final_statuses']} "
                f"({'ok' if s['ok_finals'] else 'MISSED'}); {s['ws_messages']} messages, "
                f"{s['ws_megabytes']:.0f} MB\n"
                f"  errors: {s['ws_errors']} WebSocket {s['ws_error_examples']}, "
                f"{s['poll_errors']} of {s['poll_requests']} polls {s['poll_error_examples']}, "
                f"{s['health_errors']} health ({'ok' if s['ok_errors'] else 'MISSED'})\n"
                f"  /health during the load: p50 {s['health_p50_ms']:.1f} ms, "
                f"p99 {s['health_p99_ms']:.1f} ms, max {s['health_max_ms']:.1f} ms over "
                f"{s['health_requests']} requests "
                f"(target p99 < 50 ms: {'ok' if s['health_p99_ms'] < 50 else 'MISSED'})"
            )
        code = server.stop()
        print(f"\nserver stopped (pid {server.pid}, exit status {code})")
    shutil.rmtree(data, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "figures": figures}, indent=2))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    sys.exit(main())
