"""The browser page (``photoproc/server/static/``) in Debian Chromium against ``photoproc serve``.

Real servers run as subprocesses for the module (free loopback port, temporary data dir,
offline) and are stopped by their PID: one that processes (``--cors-origin null`` so the
page also works opened from ``file://``), and one with a token and no worker, whose jobs
wait so that cancelling is not a race. The page is driven the way a person would: choose files, pick the
offline ``grabcut`` model, start, watch the progress, see thumbnails and errors, download.
Screenshots land in the test's tmp dir (``--basetemp`` to keep them).

Chromium comes from Debian (``/usr/bin/chromium``); ``playwright install`` is never run.
"""

from __future__ import annotations

import io
import json
import os
import re
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image
from support.browser import CHROMIUM, SKIP_REASON, launch
from support.serve_proc import Served, photoproc_serve

from photoproc.samples import sample_bytes
from photoproc.server.routes import STATIC_DIR

sync_api = pytest.importorskip("playwright.sync_api", reason="python playwright is not installed")

JOB_TIMEOUT_MS = 180_000
TOKEN = "page-test-token-0123456789"
TERMINAL = re.compile(r"^(completed|failed|cancelled)$")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.timeout(420),
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=SKIP_REASON,
    ),
]


# ------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Served]:
    """The module's server; ``--cors-origin null`` lets the file:// page call it."""
    with photoproc_serve(tmp_path_factory.mktemp("page-server"), "--cors-origin", "null") as live:
        yield live


@pytest.fixture(scope="module")
def idle_server(tmp_path_factory) -> Iterator[Served]:
    """A server without a worker (its jobs wait, so cancelling one is not a race) and with
    a token."""
    root = tmp_path_factory.mktemp("idle-server")
    with photoproc_serve(root, "--no-worker", "--token", TOKEN) as live:
        yield live


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


@dataclass
class Tab:
    page: object
    errors: list[str]

    def assert_no_script_errors(self) -> None:
        assert not self.errors, f"the page threw: {self.errors}"


@pytest.fixture
def tab(browser) -> Iterator[Tab]:
    context = browser.new_context(accept_downloads=True, viewport={"width": 1100, "height": 900})
    context.set_default_timeout(30_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield Tab(page, errors)
    context.close()


@pytest.fixture
def photos(tmp_path) -> list[Path]:
    """Three small real photos (quick with grabcut on two cores) and one broken file."""
    folder = tmp_path / "photos"
    folder.mkdir()
    paths = []
    for name in ("astronaut", "chelsea", "coffee"):
        path = folder / f"{name}.jpg"
        path.write_bytes(sample_bytes(name, scale=0.5))
        paths.append(path)
    broken = folder / "broken.jpg"
    broken.write_bytes(b"this is not a JPEG, whatever its name says")
    paths.append(broken)
    return paths


# ------------------------------------------------------------------------------- helpers


def wait_connected(page) -> None:
    sync_api.expect(page.locator("#conn-pill")).to_have_attribute("data-state", "ok")


def record_progress(page) -> None:
    """Keep every value the processing bar shows, to check it only ever grows."""
    page.evaluate(
        """() => {
        window.__progress = [];
        const bar = document.getElementById("job-progress");
        new MutationObserver(() => window.__progress.push(Number(bar.value)))
            .observe(bar, {attributes: true, attributeFilter: ["value"]});
    }"""
    )


def wait_job_end(page) -> str:
    card = page.locator("#progress-card")
    sync_api.expect(card).to_have_attribute("data-status", TERMINAL, timeout=JOB_TIMEOUT_MS)
    return card.get_attribute("data-status")


def wait_thumbnails_loaded(page, count: int) -> None:
    page.wait_for_function(
        """(n) => {
        const imgs = [...document.querySelectorAll("#results img")];
        return imgs.length === n && imgs.every((img) => img.complete && img.naturalWidth > 0);
    }""",
        arg=count,
        timeout=60_000,
    )


def horizontal_overflow(page) -> int:
    """How many CSS pixels the page is wider than the viewport (0: no sideways scrolling)."""
    return page.evaluate(
        "() => Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)"
        " - window.innerWidth"
    )


def controls_off_screen(page) -> list[str]:
    """Visible controls that stick out sideways (also inside scrolling lists, which the
    page's own width does not show)."""
    return page.evaluate(
        """() => [...document.querySelectorAll("button, a[href], input, select, label")]
        .filter((el) => el.getClientRects().length && getComputedStyle(el).visibility !== "hidden")
        .filter((el) => !el.classList.contains("visually-hidden"))
        .filter((el) => {
            const box = el.getBoundingClientRect();
            return box.width > 0 && (box.left < -0.5 || box.right > window.innerWidth + 0.5);
        })
        .map((el) => el.outerHTML.slice(0, 120))"""
    )


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def run_one_photo(page, tmp_path: Path) -> None:
    photo = tmp_path / "chelsea.jpg"
    photo.write_bytes(sample_bytes("chelsea", scale=0.5))
    wait_connected(page)
    page.set_input_files("#file-input", [str(photo)])
    page.select_option("#opt-model", "grabcut")
    page.get_by_role("button", name="Process photos").click()
    assert wait_job_end(page) == "completed"
    wait_thumbnails_loaded(page, 1)


# ------------------------------------------------------------------------------- tests


def test_upload_progress_thumbnails_errors_and_zip(server, tab, photos, tmp_path) -> None:
    page = tab.page
    page.goto(server.url)
    wait_connected(page)

    # Nothing is downloaded here, so the default model is missing and grabcut is chosen.
    model = page.locator("#opt-model")
    assert model.input_value() == "grabcut"
    assert "not installed" in page.locator("#opt-model option[value=u2net]").inner_text()
    page.select_option("#opt-model", "grabcut")

    page.set_input_files("#file-input", [str(p) for p in photos])
    sync_api.expect(page.locator("#selected-list li")).to_have_count(4)
    record_progress(page)
    page.get_by_role("button", name="Process photos").click()
    sync_api.expect(page.get_by_role("button", name="Cancel")).to_be_enabled()

    status = wait_job_end(page)
    assert status == "completed", page.locator("#job-status").inner_text()
    assert page.locator("#progress-card").get_attribute("data-transport") == "websocket"
    assert page.locator("#upload-progress").evaluate("bar => bar.value") == 100
    assert page.locator("#job-progress").evaluate("bar => bar.value") == 100
    sync_api.expect(page.locator("#job-text")).to_have_text("100%")
    seen = page.evaluate("window.__progress")
    assert seen and seen[-1] == 100 and seen == sorted(seen), seen
    sync_api.expect(page.locator("#job-status")).to_contain_text("3 of 4 files processed, 1 failed")

    rows = page.locator("#item-list li")
    sync_api.expect(rows).to_have_count(4)
    broken = rows.filter(has_text="broken.jpg")
    sync_api.expect(broken.locator(".status-badge")).to_have_text("Failed")
    assert broken.locator(".item-error").inner_text().strip()
    sync_api.expect(rows.filter(has=page.locator(".status-badge.done"))).to_have_count(3)

    wait_thumbnails_loaded(page, 3)
    alts = page.locator("#results img").evaluate_all("imgs => imgs.map((img) => img.alt)")
    assert sorted(alts) == [f"Result for {n}.jpg" for n in ("astronaut", "chelsea", "coffee")]
    sync_api.expect(page.get_by_role("button", name="Process photos")).to_be_enabled()
    sync_api.expect(page.get_by_role("button", name="Cancel")).to_be_disabled()

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download all (ZIP)").click()
    archive = zipfile.ZipFile(download_info.value.path())
    pngs = [name for name in archive.namelist() if name.lower().endswith(".png")]
    assert len(pngs) == 3, archive.namelist()
    for name in pngs:
        with Image.open(io.BytesIO(archive.read(name))) as image:
            assert image.format == "PNG" and image.mode == "RGBA"

    with page.expect_download() as one:
        page.get_by_role("link", name="Download the result for coffee.jpg").click()
    with Image.open(one.value.path()) as image:
        assert image.format == "PNG" and image.mode == "RGBA"

    page.screenshot(path=str(tmp_path / "page-desktop.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 800})
    assert horizontal_overflow(page) <= 0
    assert controls_off_screen(page) == []
    page.screenshot(path=str(tmp_path / "page-phone-results.png"), full_page=True)
    tab.assert_no_script_errors()


def test_phone_width_has_no_horizontal_overflow(server, browser, tmp_path) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 800}, is_mobile=True)
    try:
        page = context.new_page()
        page.goto(server.url)
        wait_connected(page)
        assert horizontal_overflow(page) <= 0
        # Long names must wrap or be cut, never widen the page.
        long_name = tmp_path / ("a-very-long-file-name-without-any-spaces-" * 4 + ".jpg")
        long_name.write_bytes(sample_bytes("rocket", scale=0.25))
        page.set_input_files("#file-input", [str(long_name)])
        sync_api.expect(page.locator("#selected-list li")).to_have_count(1)
        page.locator("#connection summary").click()
        assert horizontal_overflow(page) <= 0
        assert controls_off_screen(page) == []
        sync_api.expect(page.get_by_role("button", name=f"Remove {long_name.name}")).to_be_visible()
        page.screenshot(path=str(tmp_path / "page-phone.png"), full_page=True)
    finally:
        context.close()


def test_polling_fallback_reaches_the_end(server, tab, tmp_path) -> None:
    page = tab.page
    page.goto(server.url + "?transport=poll")
    run_one_photo(page, tmp_path)
    assert page.locator("#progress-card").get_attribute("data-transport") == "polling"
    sync_api.expect(page.locator("#job-text")).to_have_text("100%")
    tab.assert_no_script_errors()


def test_upload_progress_shows_and_cancel_stops_the_upload(server, tab, tmp_path) -> None:
    page = tab.page
    page.goto(server.url)
    wait_connected(page)
    jobs_before = get_json(server.url + "api/jobs")["total"]
    # A slow uplink (Chromium's own throttling) makes the upload take seconds.
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 200_000},
    )
    big = tmp_path / "big.png"
    big.write_bytes(os.urandom(4_000_000))  # its content never matters: it is never sent whole
    page.set_input_files("#file-input", [str(big)])
    page.get_by_role("button", name="Process photos").click()
    page.wait_for_function(
        "() => document.getElementById('upload-progress').value >= 5", timeout=30_000
    )
    shown = page.locator("#upload-progress").evaluate("bar => bar.value")
    assert 0 < shown < 100
    sync_api.expect(page.locator("#job-status")).to_contain_text("Uploading")

    page.get_by_role("button", name="Cancel").click()
    sync_api.expect(page.locator("#job-status")).to_have_text("Upload cancelled.")
    sync_api.expect(page.get_by_role("button", name="Process photos")).to_be_enabled()
    sync_api.expect(page.get_by_role("button", name="Cancel")).to_be_disabled()
    assert get_json(server.url + "api/jobs")["total"] == jobs_before  # no job was made
    tab.assert_no_script_errors()


def test_token_from_the_page_url_and_cancel_a_waiting_job(idle_server, tab, photos) -> None:
    page = tab.page
    page.goto(idle_server.url)
    sync_api.expect(page.locator("#conn-pill")).to_have_text("Token needed")
    sync_api.expect(page.get_by_label("Token")).to_be_focused()

    # As `photoproc serve` prints it; the page keeps the token and drops it from the address.
    page.goto(f"{idle_server.url}?token={TOKEN}")
    wait_connected(page)
    assert "token" not in page.url
    page.set_input_files("#file-input", [str(p) for p in photos[:2]])
    page.get_by_role("button", name="Process photos").click()
    card = page.locator("#progress-card")
    sync_api.expect(card).to_have_attribute("data-status", "pending")
    sync_api.expect(page.locator("#job-status")).to_contain_text("waiting for the worker")
    sync_api.expect(page.locator("#item-list .status-badge")).to_have_text(["Waiting", "Waiting"])
    cancel = page.get_by_role("button", name="Cancel")
    sync_api.expect(cancel).to_be_focused()  # it took the focus from the disabled start button
    sync_api.expect(card).to_have_attribute("data-transport", "websocket")  # ?token= on the WS

    cancel.press("Enter")
    sync_api.expect(card).to_have_attribute("data-status", "cancelled")
    sync_api.expect(page.locator("#job-status")).to_have_text("Cancelled after 0 of 2.")
    sync_api.expect(page.locator("#item-list .status-badge")).to_have_text(
        ["Cancelled", "Cancelled"]
    )
    sync_api.expect(page.get_by_role("button", name="Process photos")).to_be_focused()
    sync_api.expect(page.locator("#results-card")).to_be_hidden()
    job_id = json.loads(page.evaluate("sessionStorage.getItem('photoproc.lastJob')"))["id"]
    status = get_json(f"{idle_server.url}api/process-status/{job_id}?token={TOKEN}")
    assert status["status"] == "cancelled"
    tab.assert_no_script_errors()


def test_page_opened_from_a_file_uses_the_configured_api_url(server, tab, tmp_path) -> None:
    page = tab.page
    page.goto((STATIC_DIR / "index.html").as_uri())
    # No server of its own: the connection panel is open and asks for the API URL.
    sync_api.expect(page.locator("#connection")).to_have_attribute("open", "")
    page.get_by_label("API URL").fill(server.url)
    page.get_by_role("button", name="Connect").click()
    wait_connected(page)
    assert page.evaluate("localStorage.getItem('photoproc.apiUrl')") == server.url

    page.reload()  # remembered: connects again by itself
    wait_connected(page)
    assert page.get_by_label("API URL").input_value() == server.url
    run_one_photo(page, tmp_path)
    assert page.locator("#progress-card").get_attribute("data-transport") == "websocket"
    tab.assert_no_script_errors()


def test_controls_are_labelled_and_usable_from_the_keyboard(server, tab) -> None:
    page = tab.page
    page.goto(server.url)
    wait_connected(page)
    unnamed = page.evaluate(
        """() => [...document.querySelectorAll("input, select, button, a[href]")]
        .filter((el) => {
            if (el.tagName === "INPUT" || el.tagName === "SELECT") {
                return el.labels.length === 0 && !el.getAttribute("aria-label");
            }
            return !(el.getAttribute("aria-label") || el.textContent.trim());
        })
        .map((el) => el.outerHTML)"""
    )
    assert unnamed == []
    assert page.locator("[aria-live]").count() >= 1
    assert page.locator("#upload-progress").evaluate("bar => bar.labels.length") == 1
    assert page.locator("#job-progress").evaluate("bar => bar.labels.length") == 1

    # Tab reaches the file chooser, and Enter on "Process photos" without files explains.
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "file-input":
            break
    else:
        pytest.fail("Tab never reached the file input")
    page.get_by_role("button", name="Process photos").focus()
    page.keyboard.press("Enter")
    sync_api.expect(page.get_by_role("alert")).to_contain_text("Choose at least one photo")
    tab.assert_no_script_errors()
