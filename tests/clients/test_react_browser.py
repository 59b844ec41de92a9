"""``clients/react/PhotoProcessor.jsx`` in Debian Chromium against ``photoproc serve``.

The test app (``clients/react/test-app``: the component under ``<StrictMode>``, React's
development build) is bundled with the pinned esbuild from ``clients/react/node_modules``
and served by a small static server on its own loopback port, so every call the component
makes is cross-origin: the API servers run with ``--cors-origin`` for that origin and with a
token. Two real ``photoproc serve`` subprocesses: one that processes (offline ``grabcut``),
and one without a worker, whose jobs wait — cancelling one, dropping its WebSocket or
unmounting mid-job is then not a race; a ``photoproc jobs worker`` started by the test
finishes the job whose WebSocket was dropped. Every process is stopped by its PID.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlencode

import pytest
from PIL import Image
from support.browser import CHROMIUM, SKIP_REASON, launch
from support.serve_proc import Served, photoproc_serve, serve_env, stop_process

from photoproc.config import Settings
from photoproc.samples import sample_bytes
from photoproc.server.app import start_server

sync_api = pytest.importorskip("playwright.sync_api", reason="python playwright is not installed")

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "clients" / "react"
TOKEN = "react-test-token-0123456789"
JOB_TIMEOUT_MS = 180_000
TERMINAL = re.compile(r"^(completed|failed|cancelled)$")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.timeout(420),
    pytest.mark.skipif(not CHROMIUM.exists(), reason=SKIP_REASON),
]


# ------------------------------------------------------------------------------- processes


def _get(served: Served, path: str) -> dict:
    """A JSON answer of ``served``'s API, with the test token."""
    request = urllib.request.Request(served.url + path, headers={"Authorization": f"token {TOKEN}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@contextlib.contextmanager
def photoproc_worker(served: Served) -> Iterator[None]:
    """``photoproc worker`` on a server's data dir (its jobs then get processed); its output
    goes to ``worker.log`` beside the data dir."""
    command = [sys.executable, "-m", "photoproc", "worker"]
    command += ["--data-dir", str(served.data), "--workers", "1", "--grace", "5"]
    with open(served.root / "worker.log", "ab") as log:
        proc = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=serve_env(served.root)
        )
    try:
        yield
    finally:
        stop_process(proc)


@contextlib.contextmanager
def page_server(root: Path, app_dir: Path) -> Iterator[Served]:
    """The server ``photoproc serve`` runs (``start_server``), in a thread, with the test
    app as its page (``static_dir``): the component then finds the API at its own origin.
    No worker: its jobs wait."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    settings = Settings(data_dir=root / "data", workers=1)
    start = start_server(settings, port=0, token=TOKEN, start_worker=False, static_dir=app_dir)
    running = asyncio.run_coroutine_threadsafe(start, loop).result(timeout=120)
    try:
        yield Served(running.url, settings.data_dir, root)
    finally:
        try:
            asyncio.run_coroutine_threadsafe(running.stop(timeout=15), loop).result(60)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=30)
            loop.close()


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def static_origin(directory: Path) -> Iterator[str]:
    """The test app on its own loopback origin (cross-origin to every API server)."""
    handler = functools.partial(_Quiet, directory=str(directory))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


class TcpRelay:
    """A loopback TCP relay to a server: the WebSocket goes through it, and ``drop()``
    cuts every connection the way a proxy or a flaky network would."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            with self.lock:
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def drop(self) -> None:
        with self.lock:
            conns, self.conns = self.conns, []
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def close(self) -> None:
        self.listener.close()
        self.drop()
        self.thread.join(timeout=10)


# ------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def test_app(tmp_path_factory) -> Path:
    """The bundled test app; ``npm ci`` first when node_modules is missing."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the React test app cannot be bundled")
    if not (CLIENT / "node_modules" / "esbuild").is_dir():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("clients/react/node_modules is missing and npm is not installed")
        subprocess.run(
            [npm, "ci", "--prefix", str(CLIENT), "--no-audit", "--no-fund"],
            check=True,
            capture_output=True,
            timeout=300,
        )
    out = tmp_path_factory.mktemp("react-test-app")
    subprocess.run(
        [node, str(CLIENT / "test-app" / "build.mjs"), str(out)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert (out / "main.js").stat().st_size > 0
    return out


@pytest.fixture(scope="module")
def origin(test_app) -> Iterator[str]:
    with static_origin(test_app) as url:
        yield url


@pytest.fixture(scope="module")
def server(origin, tmp_path_factory) -> Iterator[Served]:
    """Processes jobs (one pipeline process); allows the test app's origin."""
    root = tmp_path_factory.mktemp("react-server")
    with photoproc_serve(root, "--token", TOKEN, "--cors-origin", origin) as s:
        yield s


@pytest.fixture(scope="module")
def idle_server(origin, tmp_path_factory) -> Iterator[Served]:
    """No worker: its jobs wait until a test starts one."""
    root = tmp_path_factory.mktemp("react-idle")
    with photoproc_serve(root, "--token", TOKEN, "--no-worker", "--cors-origin", origin) as s:
        yield s


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


@dataclass
class Tab:
    page: object
    origin: str
    errors: list[str]
    console_errors: list[str]
    sockets: list[object]

    def open(self, api: Served, **query: str) -> None:
        params = {"api": api.url, "token": TOKEN, **query}
        self.page.goto(f"{self.origin}/index.html?{urlencode(params)}")

    def record(self) -> dict:
        return self.page.evaluate("window.__photoproc")

    def assert_clean(self) -> None:
        assert not self.errors, f"the page threw: {self.errors}"
        assert not self.console_errors, f"console errors: {self.console_errors}"


@pytest.fixture
def tab(browser, origin) -> Iterator[Tab]:
    context = browser.new_context(accept_downloads=True, viewport={"width": 1100, "height": 900})
    context.set_default_timeout(30_000)
    page = context.new_page()
    t = Tab(page, origin, [], [], [])
    page.on("pageerror", lambda exc: t.errors.append(str(exc)))
    page.on("console", lambda msg: msg.type == "error" and t.console_errors.append(msg.text))
    page.on("websocket", lambda ws: t.sockets.append(ws))
    yield t
    context.close()


@pytest.fixture
def photos(tmp_path) -> dict[str, Path]:
    """Small real photos, and a ZIP holding two more."""
    folder = tmp_path / "photos"
    folder.mkdir()
    paths = {}
    for name in ("chelsea", "coffee", "astronaut", "rocket"):
        paths[name] = folder / f"{name}.jpg"
        paths[name].write_bytes(sample_bytes(name, scale=0.25))
    archive = folder / "more.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(paths["astronaut"], "zipped/astronaut.jpg")
        zf.write(paths["rocket"], "zipped/rocket.jpg")
    paths["zip"] = archive
    paths["broken"] = folder / "broken.jpg"
    paths["broken"].write_bytes(b"this is not a JPEG, whatever its name says")
    return paths


# ------------------------------------------------------------------------------- helpers


def root(page):
    return page.locator(".photoproc")


def wait_ready(page) -> None:
    """processing-info arrived: the model list shows grabcut, installed and chosen."""
    sync_api.expect(page.get_by_label("Model")).to_have_value("grabcut")


def process(page) -> None:
    page.get_by_role("button", name="Process photos").click()


def wait_end(page) -> str:
    sync_api.expect(root(page)).to_have_attribute("data-status", TERMINAL, timeout=JOB_TIMEOUT_MS)
    return root(page).get_attribute("data-status")


def wait_thumbnails(page, count: int) -> None:
    page.wait_for_function(
        """(n) => {
        const imgs = [...document.querySelectorAll(".pp-thumbs img")];
        return imgs.length === n && imgs.every((img) => img.complete && img.naturalWidth > 0);
    }""",
        arg=count,
        timeout=60_000,
    )


def drop_files(page, paths: list[Path]) -> None:
    """Drag files onto the drop zone: dragenter, dragover and drop carry a DataTransfer."""
    files = [
        {
            "name": p.name,
            "b64": base64.b64encode(p.read_bytes()).decode(),
            "zip": p.suffix == ".zip",
        }
        for p in paths
    ]
    transfer = page.evaluate_handle(
        """(files) => {
        const dt = new DataTransfer();
        for (const f of files) {
            const bytes = Uint8Array.from(atob(f.b64), (c) => c.charCodeAt(0));
            const type = f.zip ? "application/zip" : "image/jpeg";
            dt.items.add(new File([bytes], f.name, { type }));
        }
        return dt;
    }""",
        files,
    )
    zone = page.get_by_test_id("dropzone")
    for event in ("dragenter", "dragover"):
        zone.dispatch_event(event, {"dataTransfer": transfer})
    sync_api.expect(root(page)).to_have_class(re.compile(r"\bpp-dragging\b"))
    zone.dispatch_event("drop", {"dataTransfer": transfer})


def png_rgba(data: bytes) -> bool:
    with Image.open(io.BytesIO(data)) as image:
        return image.format == "PNG" and image.mode == "RGBA"


# ------------------------------------------------------------------------------- tests


def test_chooser_upload_of_images_and_a_zip_results_and_downloads(server, tab, photos) -> None:
    page = tab.page
    tab.open(server)
    wait_ready(page)
    assert "not installed" in page.locator("option[value=u2net]").inner_text()

    chosen = [photos["chelsea"], photos["coffee"], photos["zip"], photos["broken"]]
    page.locator("input[type=file]").set_input_files([str(p) for p in chosen])
    sync_api.expect(page.get_by_role("list", name="Chosen files").locator("li")).to_have_count(4)
    sync_api.expect(page.get_by_text("4 files chosen")).to_contain_text("1 ZIP archive")
    process(page)
    sync_api.expect(page.get_by_role("button", name="Cancel")).to_be_enabled()

    assert wait_end(page) == "completed", page.get_by_test_id("job-status").inner_text()
    assert root(page).get_attribute("data-transport") == "websocket"
    assert page.get_by_test_id("upload-progress").evaluate("bar => bar.value") == 100
    assert page.get_by_test_id("job-progress").evaluate("bar => bar.value") == 100
    sync_api.expect(page.get_by_test_id("job-text")).to_have_text("100%")
    sync_api.expect(page.get_by_test_id("job-status")).to_have_text(
        "Finished: 4 of 5 files processed, 1 failed."
    )
    rows = page.get_by_role("list", name="Status of each file").locator("li")
    sync_api.expect(rows).to_have_count(5)
    sync_api.expect(rows.filter(has=page.locator(".pp-status-badge.pp-done"))).to_have_count(4)
    broken = rows.filter(has_text="broken.jpg")
    sync_api.expect(broken.locator(".pp-status-badge")).to_have_text("Failed")
    assert broken.locator(".pp-item-error").inner_text().strip()
    wait_thumbnails(page, 4)
    alts = page.locator(".pp-thumbs img").evaluate_all("imgs => imgs.map((img) => img.alt)")
    assert sorted(alts) == sorted(
        f"Result for {n}"
        for n in (
            "chelsea.jpg",
            "coffee.jpg",
            "more/zipped/astronaut.jpg",
            "more/zipped/rocket.jpg",
        )
    )
    sync_api.expect(page.get_by_role("button", name="Process photos")).to_be_enabled()
    sync_api.expect(page.get_by_role("button", name="Cancel")).to_be_disabled()

    with page.expect_download() as download:
        page.get_by_role("link", name="Download all (ZIP)").click()
    archive = zipfile.ZipFile(download.value.path())
    pngs = [n for n in archive.namelist() if n.lower().endswith(".png")]
    assert len(pngs) == 4, archive.namelist()
    assert all(png_rgba(archive.read(n)) for n in pngs)
    with page.expect_download() as one:
        page.get_by_role("link", name="Download the result for coffee.jpg").click()
    assert one.value.suggested_filename.endswith(".png")
    assert png_rgba(Path(one.value.path()).read_bytes())

    # StrictMode mounted the component twice; one WebSocket was opened all the same.
    record = tab.record()
    assert record["mountEffects"] == 2
    assert len(tab.sockets) == 1
    assert [job["status"] for job in record["completed"]] == ["completed"]
    assert record["errors"] == []
    tab.assert_clean()


def test_drag_and_drop_of_an_image_and_a_zip(server, tab, photos) -> None:
    page = tab.page
    tab.open(server)
    wait_ready(page)
    drop_files(page, [photos["rocket"], photos["zip"]])
    chosen = page.get_by_role("list", name="Chosen files").locator("li")
    sync_api.expect(chosen).to_have_count(2)
    sync_api.expect(chosen.filter(has_text="more.zip").locator(".pp-badge")).to_have_text("ZIP")
    sync_api.expect(root(page)).not_to_have_class(re.compile(r"\bpp-dragging\b"))

    process(page)
    assert wait_end(page) == "completed"
    sync_api.expect(page.get_by_test_id("job-text")).to_have_text("100%")
    wait_thumbnails(page, 3)
    assert len(tab.sockets) == 1
    tab.assert_clean()


def test_api_errors_are_shown(server, tab, tmp_path) -> None:
    page = tab.page
    # A wrong token: the server's JSON message is shown, and onError hears it.
    tab.open(server, token="not-the-token")
    banner = page.get_by_role("alert").filter(has_text="token")
    sync_api.expect(banner).to_contain_text("this server needs its token")
    assert any("needs its token" in e for e in tab.record()["errors"])

    # The right token, and an upload the server refuses (415, no image in it).
    tab.open(server)
    wait_ready(page)
    notes = tmp_path / "notes.txt"
    notes.write_text("not a photo")
    page.locator("input[type=file]").set_input_files(str(notes))
    process(page)
    message = page.locator(".pp-message")
    sync_api.expect(message).to_contain_text("no image found in the upload: notes.txt")
    sync_api.expect(page.get_by_role("button", name="Process photos")).to_be_enabled()
    assert any("no image found" in e for e in tab.record()["errors"])
    assert tab.sockets == []
    assert not tab.errors, tab.errors


def test_cancel_a_waiting_job(idle_server, tab, photos) -> None:
    page = tab.page
    tab.open(idle_server)
    wait_ready(page)
    page.locator("input[type=file]").set_input_files(
        [str(photos["chelsea"]), str(photos["coffee"])]
    )
    process(page)
    sync_api.expect(root(page)).to_have_attribute("data-status", "pending")
    sync_api.expect(root(page)).to_have_attribute("data-transport", "websocket")
    sync_api.expect(page.get_by_test_id("job-status")).to_contain_text("waiting for the worker")
    badges = page.get_by_role("list", name="Status of each file").locator(".pp-status-badge")
    sync_api.expect(badges).to_have_text(["Waiting", "Waiting"])

    page.get_by_role("button", name="Cancel").click()
    assert wait_end(page) == "cancelled"
    sync_api.expect(page.get_by_test_id("job-status")).to_have_text("Cancelled after 0 of 2.")
    sync_api.expect(badges).to_have_text(["Cancelled", "Cancelled"])
    sync_api.expect(page.get_by_role("link", name="Download all (ZIP)")).to_have_count(0)
    record = tab.record()
    assert [job["status"] for job in record["completed"]] == ["cancelled"]
    job_id = record["completed"][0]["id"]
    assert _get(idle_server, f"api/process-status/{job_id}")["status"] == "cancelled"
    tab.assert_clean()


def test_websocket_dropped_mid_job_polling_finishes(idle_server, tab, photos) -> None:
    page = tab.page
    relay = TcpRelay(int(idle_server.url.rsplit(":", 1)[1].strip("/")))
    try:
        tab.open(idle_server, ws=f"ws://127.0.0.1:{relay.port}/")
        wait_ready(page)
        page.locator("input[type=file]").set_input_files(str(photos["chelsea"]))
        process(page)
        sync_api.expect(root(page)).to_have_attribute("data-transport", "websocket")
        sync_api.expect(root(page)).to_have_attribute("data-status", "pending")

        relay.drop()  # mid-job: nothing has been processed yet
        sync_api.expect(root(page)).to_have_attribute("data-transport", "polling")
        with photoproc_worker(idle_server):
            assert wait_end(page) == "completed"
            sync_api.expect(page.get_by_test_id("job-text")).to_have_text("100%")
            wait_thumbnails(page, 1)
    finally:
        relay.close()
    assert len(tab.sockets) == 1  # no second WebSocket: the polling finished the job
    assert [job["status"] for job in tab.record()["completed"]] == ["completed"]
    assert not tab.errors, tab.errors


def test_unmount_mid_job_leaks_nothing(idle_server, tab, photos) -> None:
    page = tab.page
    tab.open(idle_server)
    wait_ready(page)
    page.locator("input[type=file]").set_input_files(str(photos["coffee"]))
    process(page)
    sync_api.expect(root(page)).to_have_attribute("data-transport", "websocket")
    (socket_,) = tab.sockets
    assert not socket_.is_closed()

    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.get_by_role("button", name="Unmount the component").click()
    sync_api.expect(root(page)).to_have_count(0)
    deadline = time.monotonic() + 30
    while not socket_.is_closed() and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    assert socket_.is_closed()
    # Longer than the polling interval: no timer survived the unmount.
    page.wait_for_timeout(2500)
    assert requests == []
    assert len(tab.sockets) == 1
    tab.assert_clean()


def test_unmount_during_the_upload_aborts_it(idle_server, tab, tmp_path) -> None:
    page = tab.page
    tab.open(idle_server)
    wait_ready(page)
    jobs_before = _get(idle_server, "api/jobs")["total"]
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 200_000},
    )
    big = tmp_path / "big.png"
    big.write_bytes(os.urandom(4_000_000))  # never sent whole: the upload is aborted
    page.locator("input[type=file]").set_input_files(str(big))
    process(page)
    page.wait_for_function(
        "() => document.querySelector('[data-testid=upload-progress]').value >= 5"
    )
    failed: list[str] = []
    page.on("requestfailed", lambda request: failed.append(request.url))
    page.get_by_role("button", name="Unmount the component").click()
    sync_api.expect(root(page)).to_have_count(0)
    deadline = time.monotonic() + 30
    while not failed and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    assert any("api/upload-and-process" in url for url in failed)
    assert _get(idle_server, "api/jobs")["total"] == jobs_before  # no job was made
    assert tab.sockets == []
    assert not tab.errors, tab.errors


def test_same_origin_page_finds_the_api_at_its_origin(test_app, tab, photos, tmp_path) -> None:
    """Served by the photoproc server itself, without ``apiUrl``: the page's origin."""
    page = tab.page
    with page_server(tmp_path, test_app) as served:
        page.goto(f"{served.url}index.html?{urlencode({'token': TOKEN})}")
        wait_ready(page)
        page.locator("input[type=file]").set_input_files(str(photos["chelsea"]))
        process(page)
        sync_api.expect(root(page)).to_have_attribute("data-transport", "websocket")
        sync_api.expect(root(page)).to_have_attribute("data-status", "pending")
        page.get_by_role("button", name="Cancel").click()
        assert wait_end(page) == "cancelled"
        (job,) = tab.record()["completed"]
        assert _get(served, f"api/process-status/{job['id']}")["status"] == "cancelled"
        assert [ws.url.split("?")[0] for ws in tab.sockets] == [
            served.url.replace("http:", "ws:") + f"ws/job/{job['id']}"
        ]
    tab.assert_clean()
