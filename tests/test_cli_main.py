"""The ``photoproc`` entry point itself: a closed pipe ends the command quietly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.timeout(120)


def _with_closed_stdout(*args: str) -> subprocess.CompletedProcess:
    """Run ``photoproc ARGS`` writing into a pipe whose reader is already gone (what
    ``| head`` leaves once it has its lines): every write fails, no timing involved."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run(
            [sys.executable, "-m", "photoproc", *args],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            timeout=100,
        )
    finally:
        os.close(write)


def test_a_closed_pipe_ends_the_command_quietly():
    proc = _with_closed_stdout("models", "list")
    assert proc.returncode == 141, proc.stderr
    assert proc.stderr == ""


def test_help_into_a_closed_pipe_is_quiet_too():
    # argparse drops its own write errors; nothing may surface at exit either.
    proc = _with_closed_stdout("--help")
    assert proc.stderr == ""


def test_the_same_command_into_a_live_pipe_prints_everything():
    proc = subprocess.run(
        [sys.executable, "-m", "photoproc", "models", "list"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=100,
    )
    assert proc.returncode == 0, proc.stderr
    assert "grabcut" in proc.stdout
