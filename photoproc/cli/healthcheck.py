"""``photoproc healthcheck`` — exit 0 when a running server's ``/health`` says ok.

For container health checks: slim images have no curl, and this needs only the
standard library (it imports nothing heavy, so it costs one interpreter start).
It asks ``http://HOST:PORT/health`` with the token the server was given, and
exits 0 for a 200 ``{"status": "ok"}``, 1 for anything else (refused, timed
out, 503, a wrong token), printing one line either way.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request

__all__ = ["check", "health_url", "register"]

# A server bound to every address is asked on loopback (inside its own container).
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "healthcheck",
        help="exit 0 if the server on this host answers /health with ok (for containers)",
        description="Ask a running `photoproc serve` or `photoproc app` for GET /health. "
        "Exit status 0: healthy; 1: not running, not answering in time, unhealthy or "
        "refusing the token. Defaults come from the server's own environment: "
        "PHOTOPROC_HOST (a wildcard address means loopback), PHOTOPROC_PORT, PHOTOPROC_TOKEN.",
    )
    parser.add_argument(
        "--url", help="full health URL (overrides --host/--port), e.g. http://app:5000/health"
    )
    parser.add_argument("--host", default=os.environ.get("PHOTOPROC_HOST") or "127.0.0.1")
    parser.add_argument("--port", default=os.environ.get("PHOTOPROC_PORT") or "5000")
    parser.add_argument("--token", default=os.environ.get("PHOTOPROC_TOKEN") or None)
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait (%(default)s)")
    parser.set_defaults(func=run)


def health_url(host: str, port: str | int) -> str:
    host = _WILDCARDS.get(host.strip(), host.strip())
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{int(port)}/health"


def check(url: str, token: str | None = None, timeout: float = 5.0) -> tuple[bool, str]:
    """``(healthy, one-line description)``."""
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    if token:
        request.add_header("Authorization", f"token {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, body = response.status, response.read(65536)
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read(65536)
    except (OSError, ValueError) as exc:  # refused, timed out, bad URL
        reason = getattr(exc, "reason", exc)
        return False, f"{url}: {reason}"
    try:
        payload = json.loads(body)
    except ValueError:
        payload = {}
    state = payload.get("status") if isinstance(payload, dict) else None
    if status == 200 and state == "ok":
        worker = payload.get("worker_alive")
        return True, f"{url}: ok (worker alive: {worker}, queue: {payload.get('queue_depth')})"
    detail = payload.get("message") or payload.get("db") if isinstance(payload, dict) else None
    return False, f"{url}: HTTP {status}" + (f" ({detail})" if detail else "")


def run(args: argparse.Namespace) -> int:
    try:
        url = args.url or health_url(args.host, args.port)
    except ValueError:
        print(f"photoproc healthcheck: {args.port!r} is not a port", file=sys.stderr)
        return 1
    healthy, line = check(url, args.token, args.timeout)
    print(line, file=sys.stdout if healthy else sys.stderr)
    return 0 if healthy else 1
