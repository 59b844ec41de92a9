"""Progress throttling and cancel delay as delivered, figures the tests no longer time.

    python benchmarks/bench_responsiveness.py [--items 80] [--repeats 5]
    python benchmarks/bench_responsiveness.py --quick     # 40 items, 3 repeats

The suite checks the throttle's *rule* on a clock it drives (tests/test_throttle.py):
at most one event per 100 ms on average, bursts of 3. This script measures what a
watcher actually receives on this machine, against that rule as the peer:

* events in the busiest one-second window, at a ``PhotoService`` subscriber and at a
  ``ws/job/{id}`` WebSocket client of ``photoproc serve`` (rule: at most 10 + 3);
* the mean event rate over the job (rule: at most 10/s);
* the delay from calling ``cancel()`` to the cancelled state reaching a subscriber in
  the same process (median of ``--repeats``), against the service's poll interval.

Time to usable widgets of the Voilà app is printed by
``tests/ui/test_voila_app_browser.py`` (run it with ``-s``).
All jobs use the offline ``grabcut`` model on small generated JPEGs.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import websocket

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_api import start_server
from common import machine, median

from photoproc.config import Settings
from photoproc.jobs import JobStatus
from photoproc.service import PhotoService

RATE, BURST = 10.0, 3  # photoproc.events.EventHub's defaults


def photos(count: int) -> list[tuple[str, bytes]]:
    rng = np.random.default_rng(7)
    out = []
    for i in range(count):
        image = rng.integers(0, 255, (90, 120, 3), dtype=np.uint8)
        cv2.circle(image, (60, 45), 25, (200, 180, 160), -1)
        ok, data = cv2.imencode(".jpg", image)
        assert ok
        out.append((f"{i:03d}.jpg", data.tobytes()))
    return out


def busiest_second(times: list[float]) -> int:
    return max(
        (sum(1 for t in times[i:] if t < start + 1.0) for i, start in enumerate(times)), default=0
    )


def windows(times: list[float]) -> dict[str, Any]:
    """Figures of the progress events (the final one excluded: it is never throttled)."""
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    return {
        "events": len(times),
        "busiest_second": busiest_second(times),
        "mean_rate": round((len(times) - 1) / span, 2) if span > 0 else None,
    }


def service_figures(data: Path, items: int, repeats: int) -> dict[str, Any]:
    settings = Settings(data_dir=data, workers=2)
    figures: dict[str, Any] = {}
    with PhotoService(settings=settings, start_worker=True) as service:
        arrivals: list[float] = []
        done = threading.Event()

        def on_event(job: Any) -> None:
            if job.ended:
                done.set()
            else:
                arrivals.append(time.monotonic())

        job = service.submit(photos(items), {"model": "grabcut"})
        service.subscribe(job.id, on_event)
        if not done.wait(600):
            sys.exit("the service job did not end within 600 s")
        figures["subscriber"] = windows(arrivals)

        delays = []
        for _ in range(repeats):
            job = service.submit(photos(items), {"model": "grabcut"})
            seen: list[tuple[float, Any]] = []
            service.subscribe(job.id, lambda j, seen=seen: seen.append((time.monotonic(), j)))
            deadline = time.monotonic() + 300
            while service.get(job.id).processed < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            asked = time.monotonic()
            service.cancel(job.id)
            while time.monotonic() < deadline:
                if seen and seen[-1][1].status is JobStatus.CANCELLED:
                    delays.append(seen[-1][0] - asked)
                    break
                time.sleep(0.001)
        figures["cancel_delay_ms"] = round(median(delays) * 1000, 1) if delays else None
        figures["poll_ms"] = round(min(settings.poll_seconds, 0.1) * 1000, 1)
    return figures


def websocket_figures(data: Path, items: int) -> dict[str, Any]:
    with ExitStack() as stack:
        _server, url = start_server(stack, data, workers=2)
        parts = [("files", (name, body, "image/jpeg")) for name, body in photos(items)]
        reply = httpx.post(url + "api/upload-and-process", data={"model": "grabcut"}, files=parts)
        reply.raise_for_status()
        job_id = reply.json()["job_id"]
        ws = websocket.create_connection(
            url.replace("http://", "ws://", 1) + f"ws/job/{job_id}", timeout=600
        )
        arrivals: list[float] = []
        try:
            while True:
                message = json.loads(ws.recv())
                if message.get("event") == "final":
                    break
                arrivals.append(time.monotonic())
        finally:
            ws.close()
        return windows(arrivals)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--items", type=int, default=80, help="images per job")
    ap.add_argument("--repeats", type=int, default=5, help="cancels measured")
    ap.add_argument("--quick", action="store_true", help="40 items, 3 repeats")
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args()
    if args.quick:
        args.items, args.repeats = 40, 3
    with tempfile.TemporaryDirectory(prefix="photoproc-bench-") as tmp:
        figures = {
            "machine": machine(),
            "service": service_figures(Path(tmp) / "service", args.items, args.repeats),
            "websocket": websocket_figures(Path(tmp) / "server", args.items),
        }
    for where in ("service", "websocket"):
        f = figures[where] if where == "websocket" else figures[where]["subscriber"]
        print(
            f"{where:9s}: {f['events']} progress events, busiest second {f['busiest_second']}"
            f" (rule {RATE:g} + {BURST}: ratio {f['busiest_second'] / (RATE + BURST):.2f}),"
            f" mean {f['mean_rate']}/s (rule {RATE:g}/s)"
        )
    s = figures["service"]
    print(f"cancel   : median {s['cancel_delay_ms']} ms to the subscriber (poll {s['poll_ms']} ms)")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
