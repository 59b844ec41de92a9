"""``photoproc serve`` as a real subprocess on a free loopback port, for browser and
cluster tests that need the server in a process of its own."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

__all__ = ["Served", "photoproc_serve", "serve_env", "stop_process"]


@dataclass
class Served:
    """A server that answers at ``url`` (with a trailing slash), its data dir under ``root``."""

    url: str
    data: Path
    root: Path
    log: list[str] = field(default_factory=list)


def serve_env(root: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a server (or worker) under ``root``: its own model folder and
    data dir, offline, no token or model folder inherited from the caller."""
    env = {
        **os.environ,
        "REMBG_HOME": str(root / "rembg-home"),
        "PHOTOPROC_DATA_DIR": str(root / "data"),
        "PHOTOPROC_OFFLINE": "1",
        **(extra or {}),
    }
    env.pop("U2NET_HOME", None)
    env.pop("PHOTOPROC_TOKEN", None)
    return env


def stop_process(proc: subprocess.Popen) -> None:
    """SIGTERM (a clean stop), SIGKILL if it does not come; by its PID only."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@contextlib.contextmanager
def photoproc_serve(
    root: Path, *extra: str, env: Mapping[str, str] | None = None
) -> Iterator[Served]:
    """``photoproc serve`` on a free loopback port (``--port 0``; the URL it prints is
    read back), one pipeline process, data under ``root/data``; stopped by its PID."""
    data = root / "data"
    command = [sys.executable, "-m", "photoproc", "serve", "--host", "127.0.0.1", "--port", "0"]
    command += ["--data-dir", str(data), "--workers", "1", *extra]
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=serve_env(root, env),
    )
    lines: queue.Queue[str | None] = queue.Queue()
    served = Served("", data, root)

    def pump() -> None:  # a full pipe would block the server; the log helps on failure
        assert proc.stdout is not None
        for line in proc.stdout:
            served.log.append(line)
            lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        while not served.url:
            line = lines.get(timeout=90)
            if line is None:
                pytest.fail("photoproc serve exited before serving:\n" + "".join(served.log))
            match = re.search(r"serving (http://\S+)", line)
            if match:
                served.url = match.group(1).rstrip("/") + "/"
        yield served
    finally:
        stop_process(proc)
        reader.join(timeout=10)
        assert proc.stdout is not None
        proc.stdout.close()
