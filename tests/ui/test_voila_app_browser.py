"""The Voilà app in Debian Chromium: upload three photos, process, gallery, download.

Also measures the time from opening the app URL to usable widgets (the upload
button rendered from the preheated kernel's widget state) and prints it.
"""

from __future__ import annotations

import io
import json
import os
import time
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from photoproc.samples import sample_bytes

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

NAMES = ("astronaut", "chelsea", "coffee")


def test_upload_process_gallery_and_download(page, voila_app, tmp_path):
    from playwright.sync_api import expect

    photos = []
    for name in NAMES:
        path = tmp_path / f"{name}.jpg"
        path.write_bytes(sample_bytes(name, scale=0.5))
        photos.append(str(path))

    start = time.monotonic()
    page.goto(voila_app.url)
    page.wait_for_selector("button.widget-upload", state="visible")
    ready = time.monotonic() - start
    # A figure, not a bar: tests do not time the machine (see benchmarks/README.md).
    print(f"\nphotoproc app: {ready:.2f} s from opening {voila_app.url} to usable widgets")
    expect(page.locator(".photoproc-upload-limit")).to_contain_text("100.0 MB")
    # A fresh machine has no model weights: the offline model is the default.
    expect(page.locator(".photoproc-options select").first).to_have_value(
        "grabcut — offline, no download"
    )

    with page.expect_file_chooser() as chooser:
        page.click("button.widget-upload")
    chooser.value.set_files(photos)
    expect(page.locator(".photoproc-upload-summary")).to_contain_text("3 files received")
    page.click("button.photoproc-process")

    expect(page.locator(".photoproc-progress-percent")).to_contain_text("100%", timeout=120_000)
    expect(page.locator(".photoproc-progress-percent")).to_contain_text("completed")
    expect(page.locator(".photoproc-progress-counts")).to_contain_text("3 / 3 processed")
    bar = page.locator(".photoproc-progress-bar .progress-bar")
    assert "100%" in (bar.get_attribute("style") or "")
    expect(page.locator(".photoproc-pair.photoproc-done")).to_have_count(3)
    expect(page.locator(".photoproc-pair")).to_have_count(3)
    for name in NAMES:
        expect(page.locator(".photoproc-gallery")).to_contain_text(f"{name}.jpg")
    # Each pair: the original and the result (the result over a checkerboard).
    assert page.locator(".photoproc-pair .photoproc-original img").count() == 3
    assert page.locator(".photoproc-pair .photoproc-result img").count() == 3

    link = page.locator("a.photoproc-download-link")
    expect(link).to_contain_text("Download 3 results")
    assert link.get_attribute("href").startswith("/api/download-results/")
    with page.expect_download() as download:
        link.click()
    archive = zipfile.ZipFile(io.BytesIO(Path(download.value.path()).read_bytes()))
    names = sorted(archive.namelist())
    assert names == [f"{name}.png" for name in NAMES]
    for name in names:
        data = archive.read(name)
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
        rgba = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        assert rgba.ndim == 3 and rgba.shape[2] == 4

    # The job was processed by the server's worker and is visible to the API.
    jobs = json.loads(voila_app.get("api/jobs"))
    assert jobs["jobs"][0]["status"] == "completed"
    assert jobs["jobs"][0]["progress"]["total"] == 3


def test_a_selection_over_tornados_default_message_limit_arrives(page, voila_app, tmp_path):
    """voila.json raises the kernel WebSocket's 10 MiB default to the limit the page states."""
    from playwright.sync_api import expect

    big = tmp_path / "big.zip"
    big.write_bytes(os.urandom(24 * 1024 * 1024))
    page.goto(voila_app.url)
    page.wait_for_selector("button.widget-upload", state="visible")
    with page.expect_file_chooser() as chooser:
        page.click("button.widget-upload")
    chooser.value.set_files(str(big))
    expect(page.locator(".photoproc-upload-summary")).to_contain_text(
        "1 file received (25.2 MB): big.zip", timeout=120_000
    )
