"""Load on one job of a running `photoproc serve`: WebSocket watchers and status pollers.

    python benchmarks/api_load.py --url http://127.0.0.1:PORT/ --job ID --out J
        [--watchers 200] [--pollers 50] [--poll-interval 1] [--duration 60] [--ready R]

All clients share one asyncio loop (Tornado's WebSocket client, httpx for
HTTP). After ``--duration`` seconds the job is cancelled if it has not ended,
so the load is bounded and every watcher must then receive a final state;
watchers get ``--grace`` seconds more for it. Runs in its own process, started
by ``bench_api.py``, so that the ``/health`` latencies measured there are the
server's, not this loop's.

Writes JSON: per-watcher outcome (connected, messages, final state received,
unexpected close), poller request and error counts, whether the job ended by
itself or was cancelled.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
from tornado.websocket import websocket_connect

FINAL_MARK = '"event":"final"'


@dataclass
class WatcherResult:
    connected: bool = False
    messages: int = 0
    final_status: str | None = None
    final_percentage: float | None = None
    error: str | None = None
    bytes: int = 0


@dataclass
class PollerResult:
    requests: int = 0
    errors: list[str] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)


async def watch(url: str, result: WatcherResult, stop_at: list[float]) -> None:
    """Receive until the final message (the server then closes) or the deadline."""
    try:
        conn = await asyncio.wait_for(websocket_connect(url), 30)
    except Exception as exc:
        result.error = f"connect: {type(exc).__name__}: {exc}"
        return
    result.connected = True
    try:
        while True:
            remaining = stop_at[0] - time.monotonic()
            if remaining <= 0:
                result.error = "no final state before the deadline"
                return
            try:
                message = await asyncio.wait_for(conn.read_message(), remaining)
            except asyncio.TimeoutError:
                continue
            if message is None:  # closed by the server
                if result.final_status is None:
                    result.error = f"closed before the final state (code {conn.close_code})"
                return
            result.messages += 1
            result.bytes += len(message)
            if FINAL_MARK in message:  # cheap test; parse only the final one
                data = json.loads(message)
                result.final_status = data["status"]
                result.final_percentage = data["progress"]["percentage"]
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        conn.close()


async def poll(
    client: httpx.AsyncClient, path: str, interval: float, result: PollerResult, stop: asyncio.Event
) -> None:
    """GET process-status every ``interval`` until ``stop``, like a page without WebSockets."""
    while not stop.is_set():
        try:
            response = await client.get(path)
            result.statuses[response.status_code] += 1
            if response.status_code != 200:
                result.errors.append(f"HTTP {response.status_code}")
        except httpx.HTTPError as exc:
            result.errors.append(f"{type(exc).__name__}: {exc}")
        result.requests += 1
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)


async def run(args: argparse.Namespace) -> dict:
    base = args.url.rstrip("/")
    ws_url = base.replace("http://", "ws://", 1) + f"/ws/job/{args.job}"
    status_path = f"/api/process-status/{args.job}"
    # watchers wait for their final state until stop_at; moved out on cancel.
    stop_at = [time.monotonic() + args.duration + args.grace]
    watchers = [WatcherResult() for _ in range(args.watchers)]
    pollers = [PollerResult() for _ in range(args.pollers)]
    stop_polling = asyncio.Event()
    limits = httpx.Limits(max_connections=args.pollers + 5, max_keepalive_connections=args.pollers)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        started = time.monotonic()
        # Connect in batches: a burst of 200 SYNs overflows a 128-entry accept backlog.
        tasks = []
        for first in range(0, len(watchers), 50):
            batch = [
                asyncio.ensure_future(watch(ws_url, w, stop_at))
                for w in watchers[first : first + 50]
            ]
            tasks += batch
            await asyncio.sleep(0.05)
        poll_tasks = [
            asyncio.ensure_future(poll(client, status_path, args.poll_interval, p, stop_polling))
            for p in pollers
        ]
        if args.ready:
            args.ready.write_text("ready")
        loaded = time.monotonic()
        deadline = started + args.duration
        cancelled = False
        all_watchers = asyncio.gather(*tasks)
        try:
            await asyncio.wait_for(
                asyncio.shield(all_watchers), max(0.0, deadline - time.monotonic())
            )
        except asyncio.TimeoutError:
            response = await client.post(f"/api/cancel-job/{args.job}")
            cancelled = response.status_code == 200
            stop_at[0] = time.monotonic() + args.grace
            await all_watchers
        watchers_done = time.monotonic()
        stop_polling.set()
        await asyncio.gather(*poll_tasks)
        job = (await client.get(status_path, params={"items_limit": 0})).json()
    return {
        "load_seconds": watchers_done - loaded,
        "cancelled_at_deadline": cancelled,
        "job_status": job.get("status"),
        "job_progress": job.get("progress"),
        "watchers": [asdict(w) for w in watchers],
        "pollers": [
            {"requests": p.requests, "errors": p.errors[:5], "error_count": len(p.errors)}
            for p in pollers
        ],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--job", required=True)
    ap.add_argument("--watchers", type=int, default=200)
    ap.add_argument("--pollers", type=int, default=50)
    ap.add_argument("--poll-interval", type=float, default=1.0)
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--grace", type=float, default=30, help="seconds for finals after cancel")
    ap.add_argument("--ready", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    result = asyncio.run(run(args))
    args.out.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
