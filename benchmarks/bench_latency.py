"""One image, alone: photoproc vs rembg on the real u2netp, both measured in this run.

    python benchmarks/bench_latency.py [--repeats 5] [--image animal-1] [--skip-api]

1. **API round trip** of one image: ``photoproc serve`` (upload → WebSocket to the final
   event → download of the PNG) against rembg's own server ``rembg s`` (one ``POST
   /api/remove``), same image, same model file, runs alternating; both servers started
   once and warmed up by untimed requests first (sessions created, both pool processes
   used). Target: photoproc <= 1.0x rembg's time.
2. **In process**: ``process_image()`` against ``rembg.remove()`` with the same
   session file, on every shared photo, alternating, and ``process_image(threads=1)``
   (one image on one intra-op thread, as before issue 10). Target: <= 0.8x.

rembg's CLI comes from the benchmark environment (``.bench-venv``, benchmarks/README.md);
``rembg.remove`` from the project's own environment. Medians are quoted; the machine's
load average is printed next to them.
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import statistics
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_api import start_server, wait_final
from common import ROOT, SHARED, WORK, machine, real_u2netp, real_u2netp_home
from procs import running


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def check_png(data: bytes, size: tuple[int, int]) -> str:
    with Image.open(io.BytesIO(data)) as png:
        if png.size != size or png.mode != "RGBA":
            return f"{png.size} {png.mode}, expected {size} RGBA"
    return "ok"


def start_rembg(stack: ExitStack, rembg: str, home: Path) -> str:
    port = free_port()
    cmd = [rembg, "s", "--host", "127.0.0.1", "--port", str(port), "--no-ui", "-l", "warning"]
    env = {"REMBG_HOME": str(home), "U2NET_HOME": "", "PYTHONWARNINGS": "ignore"}
    child = stack.enter_context(running("rembg-s", cmd, env))
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "api", timeout=5)  # any answer: the server is up
            return url
        except httpx.HTTPError:
            pass
        if child.proc.poll() is not None:
            break
        time.sleep(0.3)
    sys.exit(f"rembg s did not start:\n{child.tail()}")


def photoproc_round_trip(url: str, name: str, data: bytes) -> tuple[float, bytes]:
    with httpx.Client(base_url=url, timeout=600) as client:
        started = time.perf_counter()
        reply = client.post(
            "api/upload-and-process",
            data={"model": "u2netp"},
            files=[("files", (name, data, "image/jpeg"))],
        )
        if reply.status_code != 202:
            sys.exit(f"upload refused: HTTP {reply.status_code} {reply.text[:300]}")
        job_id = reply.json()["job_id"]
        final = wait_final(url, job_id, timeout=600)
        result = client.get(
            f"api/download-results/{job_id}", params={"format": "individual", "item": 0}
        )
        seconds = time.perf_counter() - started
        if final["status"] != "completed" or result.status_code != 200:
            sys.exit(f"photoproc job {final['status']}, download HTTP {result.status_code}")
        client.delete(f"api/jobs/{job_id}")
    return seconds, result.content


def rembg_round_trip(url: str, name: str, data: bytes) -> tuple[float, bytes]:
    started = time.perf_counter()
    reply = httpx.post(
        url + "api/remove",
        data={"model": "u2netp"},
        files={"file": (name, data, "image/jpeg")},
        timeout=600,
    )
    seconds = time.perf_counter() - started
    if reply.status_code != 200:
        sys.exit(f"rembg s answered HTTP {reply.status_code}: {reply.text[:300]}")
    return seconds, reply.content


def load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--image", default="animal-1", help="shared photo for the API round trip")
    ap.add_argument("--rembg", default=str(ROOT / ".bench-venv" / "bin" / "rembg"))
    ap.add_argument("--skip-api", action="store_true")
    args = ap.parse_args(argv)
    model = real_u2netp()
    if model is None:
        sys.exit("real u2netp weights not found: `photoproc models pull u2netp`")
    home = real_u2netp_home(model)
    os.environ["REMBG_HOME"] = str(home)
    os.environ.pop("U2NET_HOME", None)
    photos = sorted((SHARED / "testdata" / "photos").glob("*.jpg"))
    print(machine())
    print(f"model {model}; {args.repeats} repeats; {load()}\n")
    figures = {}

    if not args.skip_api:
        if not Path(args.rembg).exists():
            sys.exit(f"rembg CLI not found at {args.rembg}; see benchmarks/README.md")
        photo = SHARED / "testdata" / "photos" / f"{args.image}.jpg"
        data = photo.read_bytes()
        with Image.open(photo) as img:
            size = img.size
        with ExitStack() as stack:
            server, url = start_server(stack, WORK / "latency-data", workers=os.cpu_count() or 1)
            rembg_url = start_rembg(stack, args.rembg, home)
            for _ in range(3):  # sessions created, every pool process used once
                photoproc_round_trip(url, photo.name, data)
                rembg_round_trip(rembg_url, photo.name, data)
            runs: dict[str, list[float]] = {"photoproc": [], "rembg": []}
            for r in range(args.repeats):
                for tool, trip, where in (
                    ("rembg", rembg_round_trip, rembg_url),
                    ("photoproc", photoproc_round_trip, url),
                ):
                    seconds, png = trip(where, photo.name, data)
                    runs[tool].append(seconds)
                    print(f"  API {tool:9s} run {r + 1}: {seconds:6.3f} s  {check_png(png, size)}")
        med = {tool: statistics.median(v) for tool, v in runs.items()}
        figures["api"] = med["photoproc"] / med["rembg"]
        print(
            f"API round trip, {photo.name} {size[0]}x{size[1]}: photoproc {med['photoproc']:.3f} s"
            f" vs rembg s {med['rembg']:.3f} s → {figures['api']:.2f}x (target <= 1.0x); {load()}\n"
        )

    from bench_process import pure_inference
    from rembg import new_session, remove

    from photoproc.options import ProcessOptions
    from photoproc.pipeline.process import process_image

    session = new_session("u2netp")
    options = ProcessOptions(model="u2netp")
    inputs = [(p.stem, p.read_bytes()) for p in photos]
    process_image(inputs[0][1], options)  # sessions created before timing
    remove(inputs[0][1], session=session)
    process_image(inputs[0][1], options, threads=1)
    times: dict[str, list[float]] = {"photoproc": [], "rembg": [], "one-thread": []}
    per_photo: dict[str, dict[str, list[float]]] = {}
    for _ in range(args.repeats):
        for name, data in inputs:
            for tool in ("rembg", "photoproc", "one-thread"):
                started = time.perf_counter()
                if tool == "rembg":
                    remove(data, session=session)
                elif tool == "photoproc":
                    process_image(data, options)
                else:  # before issue 10: one intra-op thread for an image alone
                    process_image(data, options, threads=1)
                seconds = time.perf_counter() - started
                times[tool].append(seconds)
                per_photo.setdefault(name, {}).setdefault(tool, []).append(seconds)
    for name, tools in per_photo.items():
        p, r, o = (statistics.median(tools[t]) for t in ("photoproc", "rembg", "one-thread"))
        print(
            f"  {name:<14} process_image {p:6.3f} s  remove {r:6.3f} s  {p / r:.2f}x"
            f"   (one thread: {o:6.3f} s, {o / r:.2f}x)"
        )
    med = {tool: statistics.median(v) for tool, v in times.items()}
    figures["in_process"] = med["photoproc"] / med["rembg"]
    print(
        f"in process, {len(inputs)} photos x {args.repeats}: process_image {med['photoproc']:.3f} s"
        f" vs rembg.remove {med['rembg']:.3f} s (medians) → {figures['in_process']:.2f}x "
        f"(target <= 0.8x); one thread, as before issue 10: {med['one-thread']:.3f} s → "
        f"{med['one-thread'] / med['rembg']:.2f}x; {load()}"
    )
    cores = os.cpu_count() or 1
    one, every = (pure_inference(model, t) * 1000 for t in (1, cores))
    print(
        f"pure onnxruntime inference, same run: {one:.0f} ms @1 thread, {every:.0f} ms "
        f"@{cores} threads ({one / every:.2f}x from the extra threads: what idle cores give); "
        f"{load()}"
    )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    sys.exit(main())
