"""Helpers for worker tests: stand-in pipeline functions and worker processes.

The functions below have ``process_image``'s signature and run inside the
worker's *child* processes, so they are module-level (picklable by reference)
and configured through environment variables, which children inherit:

    PHOTOPROC_TEST_LOG     a file every call appends ``<ppid> <pid> <sha1 of input>`` to,
                           so tests can count how often each image was processed
    PHOTOPROC_TEST_SLEEP   seconds ``slow`` sleeps (default 0.5)
    PHOTOPROC_TEST_WRITE_SLEEP  seconds ``slow_write`` waits between writing the
                           temporary file and renaming it (default 1)

Select them with ``PHOTOPROC_ITEM_FUNCTION=support.worker_proc:slow`` (or
``Settings(item_function=...)``); a ``photoproc worker`` subprocess needs the
tests folder on ``PYTHONPATH`` (``worker_env`` does that).

Test images are tiny PNGs; markers appended after the PNG's end (decoders
ignore trailing bytes) tell the functions to misbehave: ``POISON`` kills the
child, ``HANG`` sleeps for an hour, ``BAD`` raises ``InvalidImageError``.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

from photoproc.errors import InvalidImageError
from photoproc.pipeline.types import Output, Result

TESTS_DIR = Path(__file__).resolve().parents[1]
ROOT = TESTS_DIR.parent

POISON = b"POISON"
HANG = b"HANG"
BAD = b"BAD"

# -- inputs ---------------------------------------------------------------------------


def _chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")


def make_png(seed: int, *, size: int = 4, marker: bytes = b"") -> bytes:
    """A valid ``size``×``size`` grey PNG whose pixels depend on ``seed`` (so every
    image has distinct bytes), optionally followed by a misbehaviour marker."""
    header = (
        size.to_bytes(4, "big") + size.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    )  # 8-bit greyscale
    rows = b"".join(
        b"\x00" + bytes(((seed * 31 + y * size + x) & 0xFF) for x in range(size))
        for y in range(size)
    )
    png = (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"tEXt", b"seed\x00" + str(seed).encode())
        + _chunk(b"IDAT", zlib.compress(rows))
        + _chunk(b"IEND", b"")
    )
    return png + marker


def write_images(folder: Path, count: int, *, start: int = 0, markers: dict | None = None) -> list:
    """``img-00000.png`` … in ``folder``; ``markers`` maps an index to a marker."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(start, start + count):
        path = folder / f"img-{i:05d}.png"
        path.write_bytes(make_png(i, marker=(markers or {}).get(i, b"")))
        paths.append(path)
    return paths


def digest(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def expected_output(data: bytes) -> bytes:
    """What the stand-in functions write for an input: checkable, and big enough
    (64 KiB) that a partly written file would differ from it."""
    return b"OUT:" + digest(data).encode() + b"\n" + data * max(1, 65_536 // max(1, len(data)))


# -- stand-in pipeline functions (run in the worker's children) ------------------------


def _log(data: bytes) -> None:
    path = os.environ.get("PHOTOPROC_TEST_LOG")
    if path:
        # One write() of a short line with O_APPEND: lines from many processes never mix.
        line = f"{os.getppid()} {os.getpid()} {digest(data)}\n".encode()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)


def _result(data: bytes, options) -> Result:
    if data.endswith(BAD):
        raise InvalidImageError("not an image: test marker BAD")
    return Result(
        outputs=[Output(data=expected_output(data), format=options.format, width=4, height=4)],
        width=4,
        height=4,
        source_format="png",
        warnings=["stand-in pipeline"],
        timings={"fake": 0.0},
    )


# Each stand-in logs once, when it starts: a call killed halfway is still counted.


def fast(data: bytes, options, *, max_pixels: int = 0) -> Result:
    _log(data)
    return _result(data, options)


def slow(data: bytes, options, *, max_pixels: int = 0) -> Result:
    _log(data)
    time.sleep(float(os.environ.get("PHOTOPROC_TEST_SLEEP", "0.5")))
    return _result(data, options)


def misbehave(data: bytes, options, *, max_pixels: int = 0) -> Result:
    """Kills its own process on ``POISON``, hangs on ``HANG``, else like ``slow``."""
    _log(data)
    if data.endswith(POISON):
        os.kill(os.getpid(), signal.SIGKILL)
    if data.endswith(HANG):
        time.sleep(3600)
    time.sleep(float(os.environ.get("PHOTOPROC_TEST_SLEEP", "0.5")))
    return _result(data, options)


def slow_write(path, data: bytes, *, fsync: bool = False) -> Path:
    """``write_atomic`` with a pause between the complete temporary file and the rename:
    the window in which a killed worker leaves a ``.tmp-*`` file behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=path.suffix, dir=path.parent)
    with os.fdopen(fd, "wb") as fh:
        half = len(data) // 2
        fh.write(data[:half])
        fh.flush()
        time.sleep(float(os.environ.get("PHOTOPROC_TEST_WRITE_SLEEP", "1")))
        fh.write(data[half:])
    os.replace(tmp, path)
    return path


# -- worker processes ------------------------------------------------------------------


def worker_env(**extra: str) -> dict[str, str]:
    """The current environment plus the tests folder on PYTHONPATH and ``extra``."""
    env = dict(os.environ)
    paths = [str(TESTS_DIR), str(ROOT)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.update(extra)
    return env


def start_worker_process(
    data_dir: Path,
    *,
    workers: int = 1,
    env: dict[str, str] | None = None,
    log_path: Path | None = None,
) -> subprocess.Popen:
    """``python -m photoproc worker --data-dir D --workers N`` as a subprocess."""
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    try:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "photoproc",
                "worker",
                "--data-dir",
                str(data_dir),
                "--workers",
                str(workers),
            ],
            env=env or worker_env(),
            stdout=out,
            stderr=subprocess.STDOUT if log_path else subprocess.DEVNULL,
            cwd=str(data_dir),
        )
    finally:
        if log_path:
            out.close()


def children_of(pid: int) -> list[int]:
    """PIDs whose parent is ``pid`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ..." — comm may hold spaces and parentheses.
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def process_running(pid: int) -> bool:
    """Alive and not a zombie (a zombie has exited; only its parent has not reaped it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_for(predicate, timeout: float, interval: float = 0.05, message: str = "condition"):
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        time.sleep(interval)


def read_log(path: Path) -> list[tuple[int, int, str]]:
    """``(worker pid, child pid, input digest)`` per processed call."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        ppid, pid, sha = line.split()
        rows.append((int(ppid), int(pid), sha))
    return rows


def make_settings(data_dir: Path, **overrides):
    """Settings for tests: the fast stand-in pipeline, short leases and heartbeats."""
    from photoproc.config import Settings

    values = {
        "data_dir": data_dir,
        "workers": 2,
        "item_function": "support.worker_proc:fast",
        "lease_seconds": 2.0,
        "item_timeout": 30.0,
        "heartbeat_seconds": 0.5,
        "poll_seconds": 0.05,
    }
    values.update(overrides)
    return Settings(**values)


def store_job(store, data_dir: Path, images: list[bytes], *, options: dict | None = None) -> str:
    """Stage ``images`` and create a job directly in the store (no ingest); returns its id."""
    import uuid

    from photoproc.store import NewItem

    job_id = str(uuid.uuid4())
    items = []
    for index, data in enumerate(images):
        storage = f"{index:05d}-img.png"
        relative = f"jobs/{job_id}/in/{storage}"
        path = data_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        items.append(NewItem(f"img{index}.png", storage, relative))
    store.create_job(
        options=options or {"model": "grabcut"}, source="test", items=items, job_id=job_id
    )
    return job_id
