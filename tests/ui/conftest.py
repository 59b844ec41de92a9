"""The Voilà app as a subprocess and a headless Debian Chromium, for the browser tests.

``photoproc app`` is started once per session on a free loopback port, with its
own data dir and an empty model folder, offline: what a fresh machine has, so
the app's default is the offline ``grabcut`` model. It is stopped by its PID at
the end; its kernels and pool processes live in the session it was started in,
which is ended too.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.browser import CHROMIUM, SKIP_REASON, launch

ROOT = Path(__file__).resolve().parents[2]
#: seconds the app may take to start and preheat its first kernel (2 busy cores).
START_TIMEOUT = 150


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RunningApp:
    process: subprocess.Popen
    url: str
    data_dir: Path
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output():
            if self.process.poll() is not None:
                raise AssertionError(f"photoproc app exited:\n{self.output()[-4000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} within {timeout} s:\n{self.output()[-4000:]}")
            time.sleep(0.2)

    def get(self, path: str, timeout: float = 30) -> bytes:
        with urllib.request.urlopen(self.url + path.lstrip("/"), timeout=timeout) as response:
            return response.read()


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    # Kernels and pool processes that outlived it (the session we created, by its id).
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def voila_app(tmp_path_factory) -> Iterator[RunningApp]:
    base = tmp_path_factory.mktemp("voila-app")
    home = base / "rembg"
    home.mkdir()
    env = dict(os.environ)
    env.update(
        REMBG_HOME=str(home),
        PHOTOPROC_OFFLINE="1",
        PHOTOPROC_DATA_DIR=str(base / "data"),
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
    )
    env.pop("U2NET_HOME", None)
    for name in ("VOILA_BASE_URL", "PHOTOPROC_API_BASE_URL", "PHOTOPROC_TOKEN", "JPY_SESSION_NAME"):
        env.pop(name, None)
    port = free_port()
    log = base / "app.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "photoproc", "app", "--no-browser", "--port", str(port),
             "--data-dir", str(base / "data"), "--workers", "2"],
            cwd=base,  # not the checkout: the app must find its notebook and voila.json itself
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    app = RunningApp(process, f"http://127.0.0.1:{port}/", base / "data", log)
    try:
        app.wait_for_log(f"photoproc app: open http://127.0.0.1:{port}/", START_TIMEOUT)
        app.wait_for_log("Kernel pool of photo_processor.ipynb is filled", START_TIMEOUT)
        yield app
    finally:
        _stop(process)


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.is_file():
        pytest.skip(SKIP_REASON)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch(playwright)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        yield page
    finally:
        context.close()
