"""`/health` latency while hostile uploads arrive: a 10,001-part request and 50 normal uploads.

    python benchmarks/hostile_uploads.py [--repeats 3] [--uploads 50] [--parts 10001]

Issue 14's goal: the server's event loop stays responsive under any upload, so
``/health`` keeps answering quickly while one client sends a multipart body of
``--parts`` tiny file parts (one more than the default limit of 10,000 files,
so it is refused with 413) and ``--uploads`` clients each upload one small JPEG
at the same time. The server is ``photoproc serve`` in its own process, on a
free 127.0.0.1 port, with its data dir under ``benchmarks/.work`` (stopped by
its PID at the end).

Per repeat, ``/health`` is requested every 10 ms on one kept-alive connection
in four phases: for 3 s on the idle server; while the hostile request runs
alone; while the ``--uploads`` normal uploads run alone (the peer: the same
load without the hostile request); and while the hostile request runs together
with ``--uploads`` normal ones.
Printed: p50/p99/max of each phase, the ratio of the last two p99s (what the
hostile request adds), how long it took to be refused, and the status codes.
Quote the medians over repeats; on a busy machine compare ratios, not ms.

``--loop-lag`` adds a direct measure: a server started in this process (same
settings) whose own event loop runs a probe — ``sleep(5 ms)`` in a loop,
recording how late each wake-up is — while the hostile request is refused.
The probe's lag is what every other client of that loop waits, whatever the
HTTP client measures.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import re
import secrets
import statistics
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import WORK, machine
from procs import running

CHILD_ENV = {"PHOTOPROC_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
INTERVAL = 0.01


def start_server(stack: ExitStack, data: Path) -> str:
    cmd = [sys.executable, "-m", "photoproc", "serve", "--host", "127.0.0.1", "--port", "0"]
    cmd += ["--data-dir", str(data), "--workers", "1"]
    server = stack.enter_context(running("hostile-server", cmd, CHILD_ENV))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = re.search(r"serving http://127\.0\.0\.1:(\d+)/", server.tail(20000))
        if found:
            return found.group(1)
        if server.proc.poll() is not None:
            break
        time.sleep(0.2)
    sys.exit(f"photoproc serve did not start:\n{server.tail()}")


def multipart(files: list[tuple[str, bytes]], fields: dict[str, str]) -> tuple[bytes, str]:
    boundary = "bench-" + secrets.token_hex(8)
    out = bytearray()
    for name, value in fields.items():
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        out += value.encode() + b"\r\n"
    for name, data in files:
        out += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '
            f'filename="{name}"\r\nContent-Type: image/jpeg\r\n\r\n'
        ).encode()
        out += data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


def post(port: int, body: bytes, ctype: str, statuses: list[int], took: list[float]) -> None:
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        conn.request("POST", "/api/upload-and-process", body, {"Content-Type": ctype})
        reply = conn.getresponse()
        reply.read()
        statuses.append(reply.status)
    except (OSError, http.client.HTTPException) as exc:
        statuses.append(-1)
        print(f"  upload error: {type(exc).__name__}: {exc}", file=sys.stderr)
    finally:
        conn.close()
        took.append(time.perf_counter() - started)


def health_latencies(port: int, until: threading.Event | float) -> list[float]:
    """``/health`` every INTERVAL s on one kept-alive connection, in ms, until the event
    is set (or for that many seconds)."""
    stop_at = time.monotonic() + until if isinstance(until, float) else None
    done = (lambda: time.monotonic() >= stop_at) if stop_at else until.is_set
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    out = []
    try:
        while not done():
            started = time.perf_counter()
            conn.request("GET", "/health")
            reply = conn.getresponse()
            reply.read()
            if reply.status != 200:
                raise SystemExit(f"/health answered {reply.status}")
            elapsed = time.perf_counter() - started
            out.append(elapsed * 1000)
            time.sleep(max(0.0, INTERVAL - elapsed))
    finally:
        conn.close()
    return out


def p99(values: list[float]) -> float:
    return (
        statistics.quantiles(values, n=100, method="inclusive")[98]
        if len(values) > 1
        else values[0]
    )


def loaded(port: int, uploads: list[tuple[bytes, str]]) -> tuple[list[float], list, list]:
    """``/health`` latencies while ``uploads`` are posted at once; their statuses and seconds."""
    statuses: list[list[int]] = [[] for _ in uploads]
    took: list[list[float]] = [[] for _ in uploads]
    threads = [
        threading.Thread(target=post, args=(port, body, ctype, statuses[i], took[i]))
        for i, (body, ctype) in enumerate(uploads)
    ]
    done = threading.Event()
    result: list[list[float]] = []
    poller = threading.Thread(target=lambda: result.append(health_latencies(port, done)))
    poller.start()
    time.sleep(0.1)
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    done.set()
    poller.join(60)
    return result[0], [s[0] if s else None for s in statuses], [t[0] if t else None for t in took]


def summary(values: list[float]) -> dict:
    return {
        "p50": statistics.median(values),
        "p99": p99(values),
        "max": max(values),
        "n": len(values),
    }


def one_run(port: int, parts: int, uploads: int, image: bytes) -> dict:
    hostile = multipart([(f"p{i}.jpg", b"x") for i in range(parts)], {"model": "grabcut"})
    normal = multipart([("small.jpg", image)], {"model": "grabcut"})
    loaded(port, [normal])  # warm-up: the first upload pays one-time imports on the loop
    idle = health_latencies(port, 3.0)
    alone, alone_status, alone_took = loaded(port, [hostile])
    peer, peer_statuses, _ = loaded(port, [normal] * uploads)
    under, statuses, took = loaded(port, [hostile] + [normal] * uploads)
    return {
        "idle": summary(idle),
        "hostile_only": summary(alone),
        "normal_only": summary(peer),
        "with_hostile": summary(under),
        "hostile_status": statuses[0],
        "hostile_seconds": took[0],
        "hostile_alone_seconds": alone_took[0],
        "upload_statuses": sorted(set(peer_statuses + statuses[1:]), key=str),
    }


def loop_lag(parts: int) -> dict:
    """Lateness (ms) of 5 ms sleeps on the server's own loop while ``parts`` tiny parts arrive."""
    from photoproc.config import Settings
    from photoproc.server.app import start_server

    os.environ.update(CHILD_ENV)  # the worker's children inherit it
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    data = WORK / "hostile-lag-data"
    settings = Settings(data_dir=data, workers=1)
    future = asyncio.run_coroutine_threadsafe(start_server(settings, port=0), loop)
    server = future.result(120)
    lags: list[float] = []
    probing = [True]

    async def probe() -> None:
        while probing[0]:
            started = time.perf_counter()
            await asyncio.sleep(0.005)
            lags.append((time.perf_counter() - started - 0.005) * 1000)

    try:
        body, ctype = multipart([(f"p{i}.jpg", b"x") for i in range(parts)], {"model": "grabcut"})
        asyncio.run_coroutine_threadsafe(probe(), loop)
        time.sleep(1.0)
        idle, lags[:] = list(lags), []
        statuses: list[int] = []
        post(server.port, body, ctype, statuses, [])
        probing[0] = False
        return {"idle": summary(idle), "hostile": summary(lags), "status": statuses[0]}
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(timeout=15), loop).result(60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--uploads", type=int, default=50)
    parser.add_argument("--parts", type=int, default=10_001)
    parser.add_argument("--loop-lag", action="store_true", help="also probe the loop in-process")
    args = parser.parse_args()
    print(machine())
    rng = np.random.default_rng(0)
    pixels = cv2.GaussianBlur(rng.integers(0, 255, (96, 128, 3), np.uint8), (9, 9), 0)
    image = cv2.imencode(".jpg", pixels)[1].tobytes()
    runs = []
    with ExitStack() as stack:
        data = WORK / "hostile-data"
        port = int(start_server(stack, data))
        for repeat in range(args.repeats):
            run = one_run(port, args.parts, args.uploads, image)
            runs.append(run)
            print(f"run {repeat + 1}: {json.dumps(run)}", flush=True)

    def med(phase: str, key: str) -> float:
        return statistics.median(r[phase][key] for r in runs)

    line = "; ".join(
        f"{phase} p50 {med(phase, 'p50'):.1f} / p99 {med(phase, 'p99'):.1f} / "
        f"max {med(phase, 'max'):.1f} ms"
        for phase in ("idle", "hostile_only", "normal_only", "with_hostile")
    )
    ratio = med("with_hostile", "p99") / med("normal_only", "p99")
    refused = statistics.median(r["hostile_seconds"] for r in runs)
    print(f"median of {len(runs)}: /health {line}")
    if args.loop_lag:
        lag = [loop_lag(args.parts) for _ in range(args.repeats)]
        for phase in ("idle", "hostile"):
            p99s = statistics.median(r[phase]["p99"] for r in lag)
            worst = statistics.median(r[phase]["max"] for r in lag)
            print(f"event-loop lag, {phase}: p99 {p99s:.1f} ms, max {worst:.1f} ms (median)")
    print(
        f"the {args.parts:,}-part request changes /health p99 by {ratio:.2f}x against "
        f"{args.uploads} normal uploads alone; refused with {runs[-1]['hostile_status']} "
        f"in {refused:.2f} s"
    )


if __name__ == "__main__":
    main()
