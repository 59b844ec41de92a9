"""Child processes of the service and API benchmarks: started, timed, always stopped.

Each child gets its own session (process group), so that stopping it also stops
the pool processes it started, even when it can no longer stop them itself;
its output goes to a log file under ``benchmarks/.work/logs`` (a pipe nobody
reads would stall a chatty child), whose tail is shown when it fails.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from common import WORK

__all__ = ["Child", "running"]

LOGS = WORK / "logs"


@dataclass
class Child:
    name: str
    proc: subprocess.Popen
    log: Path
    started: float

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait(self, timeout: float | None = None) -> tuple[int, float]:
        """``(exit status, seconds since start)``; ``TimeoutExpired`` past ``timeout``."""
        code = self.proc.wait(timeout)
        return code, time.perf_counter() - self.started

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM to the child's process group (graceful stop), SIGKILL if it lingers."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        # Pool processes that outlived their parent: same group, same fate.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        return self.proc.returncode


def start(name: str, cmd: list[str], env: dict[str, str] | None = None) -> Child:
    LOGS.mkdir(parents=True, exist_ok=True)
    log = LOGS / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd,
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Child(name, proc, log, time.perf_counter())


@contextlib.contextmanager
def running(name: str, cmd: list[str], env: dict[str, str] | None = None) -> Iterator[Child]:
    """A child for the duration of the block, stopped (by its process group) at the end
    whatever happens — a failed benchmark leaves no server or pool behind."""
    child = start(name, cmd, env)
    try:
        yield child
    finally:
        child.stop()
