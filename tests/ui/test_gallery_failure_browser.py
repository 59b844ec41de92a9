"""The Voilà app in Debian Chromium: the gallery of a job with a failed image shows its error."""

from __future__ import annotations

import json

import pytest

from photoproc.samples import sample_bytes

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]


def test_failed_item_shows_its_error_in_the_gallery(page, voila_app, tmp_path):
    from playwright.sync_api import expect

    good = tmp_path / "coffee.jpg"
    good.write_bytes(sample_bytes("coffee", scale=0.5))
    # A JPEG cut short: it is staged like any photo and fails in the pipeline.
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(sample_bytes("rocket", scale=0.5)[:3000])

    page.goto(voila_app.url)
    page.wait_for_selector("button.widget-upload", state="visible")
    with page.expect_file_chooser() as chooser:
        page.click("button.widget-upload")
    chooser.value.set_files([str(good), str(broken)])
    expect(page.locator(".photoproc-upload-summary")).to_contain_text("2 files received")
    page.click("button.photoproc-process")

    expect(page.locator(".photoproc-progress-percent")).to_contain_text("100%", timeout=120_000)
    expect(page.locator(".photoproc-progress-counts")).to_contain_text("1 failed")
    expect(page.locator(".photoproc-pair")).to_have_count(2)
    expect(page.locator(".photoproc-pair.photoproc-done")).to_have_count(1)
    failed = page.locator(".photoproc-pair.photoproc-failed")
    expect(failed).to_have_count(1)
    expect(failed).to_contain_text("broken.jpg")

    # The error on screen is the one the job store recorded for that image.
    job = json.loads(voila_app.get("api/jobs?limit=1"))["jobs"][0]
    status = json.loads(voila_app.get(f"api/process-status/{job['job_id']}"))
    (item,) = [i for i in status["items"] if i["name"] == "broken.jpg"]
    assert item["status"] == "failed" and item["error"]
    expect(failed.locator(".photoproc-error")).to_contain_text(item["error"])
    assert "truncated" in item["error"].lower()

    # The larger view of that pair shows the error too.
    failed.locator("button", has_text="Larger view").click()
    expect(page.locator(".photoproc-detail")).to_contain_text("broken.jpg")
    expect(page.locator(".photoproc-detail")).to_contain_text(item["error"])
    # The download holds the one result there is.
    expect(page.locator("a.photoproc-download-link")).to_contain_text("Download 1 result")
