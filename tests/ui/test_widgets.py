"""The notebook widgets without a browser: set values, click(), events → widget values.

The jobs run for real: a PhotoService on a tmp data dir with its worker, the
real pipeline, and a tiny ``u2netp``-contract model installed in REMBG_HOME
(its mask is the centre square), so results are real PNG cut-outs whose alpha
can be predicted. Only the cancel test swaps in the slow stand-in pipeline, to
have time to cancel.
"""

from __future__ import annotations

import base64
import datetime
import io
import json
import os
import time
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from support.onnx_models import install_rembg_model, make_u2net_like
from support.worker_proc import make_png, make_settings, wait_for

from photoproc.errors import InvalidOptionsError
from photoproc.jobs import Job, JobStatus
from photoproc.options import ProcessOptions
from photoproc.pipeline.models import list_models
from photoproc.samples import sample_bytes
from photoproc.service import PhotoService
from photoproc.ui import (
    UPLOAD_MESSAGE_LIMIT,
    DownloadLink,
    Gallery,
    LiveTuner,
    ModelComparison,
    OptionsPanel,
    PhotoApp,
    ProgressPanel,
    UploadBox,
    api_base_url,
    api_url,
    compare_variants,
    running_in_voila,
)
from photoproc.ui.options import default_model, model_choices
from photoproc.ui.progress import format_duration

pytestmark = pytest.mark.timeout(180)

ROOT = Path(__file__).resolve().parents[2]
_VOILA_VARS = ("VOILA_BASE_URL", "VOILA_KERNEL_ID", "JPY_SESSION_NAME", "PHOTOPROC_API_BASE_URL")


@pytest.fixture(autouse=True)
def _plain_kernel_env(monkeypatch):
    """Tests run as if in a plain kernel unless they say otherwise."""
    for name in (*_VOILA_VARS, "PHOTOPROC_TOKEN", "JUPYTERHUB_SERVICE_PREFIX"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def tiny_model():
    """``u2netp`` installed: a real ONNX session whose mask is the centre square."""
    return install_rembg_model(os.environ["REMBG_HOME"], "u2netp", kind="center")


@pytest.fixture
def service(tmp_path, tiny_model):
    svc = PhotoService(tmp_path / "data", start_worker=True, workers=2)
    yield svc
    svc.close(timeout=10)


def upload_entry(name: str, data: bytes, media_type: str = "image/jpeg") -> dict:
    """One file as ipywidgets' FileUpload deserialises it from the browser."""
    return {
        "name": name,
        "type": media_type,
        "size": len(data),
        "content": memoryview(data),
        "last_modified": datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc),
    }


def small_sample(name: str) -> bytes:
    return sample_bytes(name, scale=0.5)


def job_value(**changes) -> Job:
    values = dict(
        id="0" * 8 + "-0000-4000-8000-" + "0" * 12,
        status=JobStatus.PROCESSING,
        options={"model": "grabcut"},
        source="test",
        created_at=1000.0,
        updated_at=1000.0,
        total=10,
        processed=0,
        failed=0,
    )
    values.update(changes)
    return Job(**values)


# -- environment ----------------------------------------------------------------------------


def test_api_base_url_follows_the_host_environment():
    assert api_base_url({}) is None
    assert api_base_url({"VOILA_BASE_URL": "/"}) == "/"
    assert api_base_url({"VOILA_BASE_URL": "/app"}) == "/app/"
    assert api_base_url({"JPY_SESSION_NAME": "x.ipynb"}) == "/photoproc/"
    assert (
        api_base_url({"JPY_SESSION_NAME": "x", "JUPYTERHUB_SERVICE_PREFIX": "/user/ann/"})
        == "/user/ann/photoproc/"
    )
    explicit = {"PHOTOPROC_API_BASE_URL": "/proxy/8866", "VOILA_BASE_URL": "/"}
    assert api_base_url(explicit) == "/proxy/8866/"
    assert api_url("api/jobs", {"VOILA_BASE_URL": "/"}) == "/api/jobs"
    assert (
        api_url("api/x?format=zip", {"VOILA_BASE_URL": "/", "PHOTOPROC_TOKEN": "a b"})
        == "/api/x?format=zip&token=a%20b"
    )
    assert running_in_voila({"VOILA_BASE_URL": "/"})
    assert not running_in_voila({"JPY_SESSION_NAME": "x"})


# -- options --------------------------------------------------------------------------------


def test_model_choices_put_installed_and_offline_models_first(tiny_model):
    models = list_models()
    choices = model_choices(models)
    names = [name for _, name in choices]
    assert names[:2] == ["grabcut", "u2netp"]
    assert "offline" in choices[0][0]
    assert "installed" in choices[1][0]
    assert all("not installed" in label for label, _ in choices[2:])
    assert default_model(models) == "u2netp"
    assert default_model([m for m in models if m.info.name != "u2netp"]) == "grabcut"


def test_options_panel_reads_back_what_it_shows():
    panel = OptionsPanel()
    assert panel.options.model == "grabcut"  # nothing installed: the offline model
    wanted = ProcessOptions(
        model="grabcut",
        crop_face=True,
        bgcolor="#102030",
        format="webp",
        alpha_matting=True,
        alpha_matting_foreground_threshold=200,
        alpha_matting_background_threshold=20,
        alpha_matting_erode_size=5,
        face_margin=0.25,
        aspect="4:5",
        all_faces=True,
        output_size=512,
        face_detector="haar",
        post_process_mask=True,
    )
    panel.set_options(wanted)
    assert panel.options == wanted
    assert panel.bgcolor.value == "#102030"
    assert not panel.face_margin.disabled

    seen = []
    panel.on_change(seen.append)
    panel.fill_background.value = False
    assert seen[-1].bgcolor is None
    panel.crop_face.value = False
    assert panel.face_margin.disabled  # face options only apply to face crops
    panel.remove_bg.value = False  # nothing left to do
    assert seen[-1] is None
    assert "nothing to do" in panel.message.value
    with pytest.raises(InvalidOptionsError):
        _ = panel.options
    panel.crop_face.value = True
    assert seen[-1] is not None and seen[-1].crop_face and not seen[-1].remove_bg
    assert panel.message.value == ""


def test_options_panel_refuses_crossed_thresholds_and_names_missing_models():
    panel = OptionsPanel()
    panel.alpha_matting.value = True
    panel.background_threshold.value = 250
    assert "alpha_matting_background_threshold" in panel.message.value
    panel.background_threshold.value = 10
    assert panel.message.value == ""
    panel.model.value = "u2net"  # listed, not installed here
    assert "photoproc models pull u2net" in panel.model_note.value


# -- upload ---------------------------------------------------------------------------------


def test_upload_box_hands_received_files_to_its_callbacks():
    box = UploadBox(allow_paths=False)
    got = []
    box.on_submit(got.append)
    # What the browser's FileUpload sends: JSON state plus one binary buffer per file.
    box.file_upload.set_state(
        {
            "value": [
                {"name": "a.jpg", "type": "image/jpeg", "size": 7,
                 "content": memoryview(b"\xff\xd8 one"), "last_modified": 1767225600000},
                {"name": "b.zip", "type": "application/zip", "size": 8,
                 "content": memoryview(b"PK\x03\x04 two"), "last_modified": 1767225600000},
            ]
        }
    )  # fmt: skip
    assert "2 files received" in box.summary.value
    box.submit_button.click()
    assert got == [[("a.jpg", b"\xff\xd8 one"), ("b.zip", b"PK\x03\x04 two")]]
    box.clear()
    assert box.file_upload.value == ()


def test_upload_box_with_nothing_received_points_to_the_rest_upload(monkeypatch):
    monkeypatch.setenv("VOILA_BASE_URL", "/")
    box = UploadBox()
    assert not box.allow_paths  # under Voilà the server's files are not offered
    assert box.path.layout.display == "none"
    assert "100.0 MB" in box.limit_note.value
    got = []
    box.on_submit(got.append)
    box.path.value = "/etc"  # ignored: paths are not allowed here
    assert box.submit() is None
    assert got == []
    assert "No file has been received" in box.summary.value
    assert "POST /api/upload-and-process" in box.summary.value


def test_upload_box_expands_server_paths_and_globs(tmp_path):
    for name in ("a.jpg", "b.jpg", "c.png"):
        (tmp_path / name).write_bytes(b"x")
    box = UploadBox(allow_paths=True)
    got = []
    box.on_submit(got.append)
    box.path.value = str(tmp_path / "*.jpg")
    box.submit()
    assert got == [[tmp_path / "a.jpg", tmp_path / "b.jpg"]]
    box.path.value = str(tmp_path)
    assert box.inputs() == [tmp_path]
    box.path.value = str(tmp_path / "*.gif")
    assert box.submit() is None
    assert "no file matches" in box.summary.value
    box.path.value = str(tmp_path / "missing")
    assert box.submit() is None
    assert "does not exist" in box.summary.value
    assert len(got) == 1


def test_voila_json_matches_the_stated_upload_limit():
    config = json.loads((ROOT / "voila.json").read_text())
    limit = config["Voila"]["tornado_settings"]["websocket_max_message_size"]
    assert limit == 100 * 1024 * 1024
    # Room for the message's own JSON beside the files' bytes.
    assert limit - UPLOAD_MESSAGE_LIMIT >= 1_000_000
    voila = config["VoilaConfiguration"]
    assert voila["preheat_kernel"] is True
    assert voila["show_tracebacks"] is False
    assert config["MappingKernelManager"]["cull_idle_timeout"] > 0


# -- progress -------------------------------------------------------------------------------


def test_progress_panel_shows_counts_rate_and_time_left():
    panel = ProgressPanel()
    assert panel.layout.display == "none"
    panel.update(job_value(processed=0))
    time.sleep(0.2)
    panel.update(job_value(processed=4, failed=1))
    assert panel.bar.value == 40.0
    assert "<b>4</b> / 10 processed" in panel.counts.value
    assert "1 failed" in panel.counts.value
    assert "images/s" in panel.counts.value and "left" in panel.counts.value
    assert not panel.cancel_button.disabled
    end = job_value(
        status=JobStatus.COMPLETED, processed=10, failed=1, finished_at=1005.0, updated_at=1005.0
    )
    panel.update(end)
    assert panel.bar.value == 100.0
    assert panel.bar.bar_style == "success"
    assert "2.00 images/s" in panel.counts.value  # 10 images in 5 s
    assert "took 5.0 s" in panel.counts.value
    assert "left" not in panel.counts.value
    assert panel.cancel_button.disabled


def test_app_runs_a_job_from_upload_to_gallery_and_download(service):
    app = PhotoApp(service)
    assert app.options.options.model == "u2netp"  # the installed model is preferred
    app.upload.file_upload.value = (
        upload_entry("astronaut.jpg", small_sample("astronaut")),
        upload_entry("coffee.jpg", small_sample("coffee")),
        upload_entry("notes.txt", b"not a photo", "text/plain"),
    )
    job = app.submit()
    assert job is not None and job.total == 3
    assert "3 files queued" in app.message.value
    assert app.upload.file_upload.value == ()  # the selection is used up

    final = app.wait(timeout=120)
    assert final.status is JobStatus.COMPLETED
    assert (final.processed, final.failed) == (3, 1)
    assert app.progress.bar.value == 100.0
    assert "completed" in app.progress.percent.value
    assert "notes.txt" in app.progress.files.value

    pairs = app.gallery.grid.children
    assert len(pairs) == 3
    assert [p._dom_classes[1] for p in pairs] == ["photoproc-done"] * 2 + ["photoproc-failed"]
    failed_html = pairs[2].children[0].value
    assert "photoproc-error" in failed_html
    assert html_escape_free(service.items(job.id)[2].error) in failed_html
    done_html = pairs[0].children[0].value
    assert done_html.count("<img") == 2  # original | result
    assert "repeating-conic-gradient" in done_html  # the result sits on a checkerboard
    assert "<b>2</b> of 3 images done" in app.gallery.summary.value

    # No host serves the API here: the link carries the ZIP itself.
    href = app.download.href
    assert href.startswith("data:application/zip;base64,")
    archive = zipfile.ZipFile(io.BytesIO(base64.b64decode(href.split(",", 1)[1])))
    assert sorted(archive.namelist()) == ["astronaut.png", "coffee.png"]
    rgba = cv2.imdecode(np.frombuffer(archive.read("coffee.png"), np.uint8), cv2.IMREAD_UNCHANGED)
    assert rgba.shape == (200, 300, 4)
    alpha = rgba[:, :, 3]
    assert alpha[100, 150] == 255 and alpha[5, 5] == 0  # the tiny model keeps the centre

    assert app.history.selected == job.id


def html_escape_free(text: str) -> str:
    """The part of an error message that HTML escaping leaves unchanged."""
    return text.split("'")[0].split('"')[0].split("<")[0].split("&")[0]


def test_gallery_pages_and_shows_one_pair_larger(service):
    images = [(f"photo{i}.jpg", small_sample("chelsea")) for i in range(5)]
    job = service.submit(images, {"model": "u2netp", "crop_face": True})
    list(service.watch(job.id, timeout=120))
    gallery = Gallery(page_size=2)
    gallery.show(service, job.id)
    assert gallery.pages == 3
    assert gallery.pager.layout.display is None
    assert gallery.prev_button.disabled
    assert len(gallery.grid.children) == 2
    first_page = gallery.grid.children
    # A cat has no human face: the pair says so.
    assert "no face detected" in first_page[0].children[0].value
    assert "photo0.jpg" in first_page[0].children[0].value
    # The time shown is the worker's total for that image, not its stages added up again.
    seconds = service.items(job.id, limit=1)[0].timings["total"]
    assert f"226×150 · {format_duration(seconds)}<br>" in first_page[0].children[0].value

    gallery.next_button.click()
    gallery.next_button.click()
    assert gallery.page == 2
    assert len(gallery.grid.children) == 1
    assert gallery.next_button.disabled
    assert "photo4.jpg" in gallery.grid.children[0].children[0].value
    gallery.set_page(99)
    assert gallery.page == 2
    before = gallery.grid.children[0]
    gallery.refresh()  # nothing changed: the same pair widget is kept
    assert gallery.grid.children[0] is before

    opened = []
    gallery.on_open(opened.append)
    enlarge = gallery.grid.children[0].children[1]
    enlarge.click()
    assert opened == [4]
    assert gallery.detail_box.layout.display is None
    assert "photo4.jpg" in gallery.detail.value
    assert "max-width:720px" in gallery.detail.value
    gallery.close_button.click()
    assert gallery.detail_box.layout.display == "none"
    assert gallery.selected is None


def test_cancel_stops_pending_images(tmp_path, monkeypatch):
    monkeypatch.setenv("PHOTOPROC_TEST_SLEEP", "0.4")
    settings = make_settings(tmp_path / "data", workers=1, item_function="support.worker_proc:slow")
    with PhotoService(settings=settings, start_worker=True) as service:
        app = PhotoApp(service)
        job = app.process([(f"img{i}.png", make_png(i)) for i in range(8)], {"model": "grabcut"})
        assert job is not None
        first_pair = app.gallery.grid.children[0]
        assert "photoproc-done" not in first_pair._dom_classes  # pending or processing
        wait_for(lambda: app.progress.job and app.progress.job.processed >= 1, 60, message="1 done")
        cancelled = []
        app.progress.on_cancel(cancelled.append)
        app.progress.cancel_button.click()
        final = app.wait(timeout=60)
        assert final.status is JobStatus.CANCELLED
        assert cancelled and cancelled[0].id == job.id
        assert app.progress.cancel_button.disabled
        assert app.progress.bar.bar_style == "warning"
        assert "cancelled" in app.progress.files.value
        items = service.items(job.id)
        assert sum(item.status.value == "cancelled" for item in items) >= 4
        assert "cancelled" in app.gallery.grid.children[-1].children[0].value
        # Pairs are redrawn in place as their image changes state, not replaced.
        assert app.gallery.grid.children[0] is first_pair
        assert first_pair._dom_classes == ("photoproc-pair", "photoproc-done")
        # Updates are throttled by the service: far fewer than one per item change.
        assert app.progress.updates < 40


def test_history_reopens_and_deletes_past_jobs(service):
    first = service.submit([("a.jpg", small_sample("coffee"))], {"model": "u2netp"})
    list(service.watch(first.id, timeout=120))
    app = PhotoApp(service)
    second = app.process([("b.jpg", small_sample("rocket")), ("c.jpg", small_sample("coffee"))])
    app.wait(timeout=120)
    history = app.history
    assert [value for _, value in history.jobs.options] == [second.id, first.id]
    assert "1/1 done" in history.jobs.options[1][0]

    history.jobs.value = first.id
    history.open_button.click()
    assert app.job_id == first.id
    reopened = app.wait(timeout=30)
    assert reopened.id == first.id and reopened.status is JobStatus.COMPLETED
    assert len(app.gallery.grid.children) == 1
    assert "a.jpg" in app.gallery.grid.children[0].children[0].value
    assert app.progress.bar.value == 100.0

    history.jobs.value = second.id
    history.delete_button.click()
    assert [value for _, value in history.jobs.options] == [first.id]
    assert service.count() == 1


def test_download_link_uses_the_api_route_when_served(service, monkeypatch):
    job = service.submit([("a.jpg", small_sample("coffee"))], {"model": "u2netp"})
    list(service.watch(job.id, timeout=120))
    link = DownloadLink()
    monkeypatch.setenv("VOILA_BASE_URL", "/base/")
    monkeypatch.setenv("PHOTOPROC_TOKEN", "s3cret")
    link.show(service, job.id)
    assert link.href == f"/base/api/download-results/{job.id}?format=zip&token=s3cret"
    assert "Download 1 result (ZIP" in link.value

    monkeypatch.delenv("VOILA_BASE_URL")
    small = DownloadLink(inline_limit=10)
    small.show(service, job.id)
    assert small.href is None
    assert str(service.settings.jobs_dir / job.id / "out") in small.value
    assert all(Path(out).parent.name == "out" for out in service.items(job.id)[0].outputs)


# -- comparing models -----------------------------------------------------------------------


def test_compare_variants_times_and_measures_mask_agreement(tmp_path, tiny_model):
    left = make_u2net_like(tmp_path / "left.onnx", kind="left")
    images = {"coffee": small_sample("coffee"), "rocket": small_sample("rocket")}
    variants = {
        "centre": {"model": "u2netp"},
        "left": {"model": "custom", "model_path": str(left)},
        "missing": {"model": "u2net"},
    }
    result = compare_variants(images, variants)
    assert result.images == ["coffee", "rocket"] and result.variants == list(variants)
    centre = result.cell("coffee", "centre")
    assert centre.agreement == 1.0
    assert centre.foreground == pytest.approx(0.25, abs=0.02)
    assert centre.pixels.shape == (200, 300, 4)
    # centre square vs left half: (1/8) / (5/8) of the image.
    assert result.cell("coffee", "left").agreement == pytest.approx(0.2, abs=0.02)
    assert result.mean_agreement("left") == pytest.approx(0.2, abs=0.02)
    missing = result.cell("rocket", "missing")
    assert missing.error and "u2net" in missing.error and missing.agreement is None
    assert result.mean_seconds("centre") > 0
    rows = result.rows()
    assert len(rows) == 6 and rows[0]["image"] == "coffee" and rows[0]["variant"] == "centre"

    widget = ModelComparison(images, variants)
    widget.variant_picker.value = ("centre", "left")
    widget.image_picker.value = ("rocket",)
    got = []
    widget.on_submit(got.append)
    widget.run_button.click()
    assert got and got[0].variants == ["centre", "left"] and got[0].images == ["rocket"]
    assert widget.grid.value.count("<tr>") == 2  # header + one image
    assert "IoU 0.2" in widget.grid.value


def test_live_tuner_reruns_on_every_change(tiny_model):
    tuner = LiveTuner(small_sample("coffee"), {"model": "u2netp"}, models=("u2netp", "grabcut"))
    assert tuner.runs == 1 and tuner.last.error is None
    tuner.post_process.value = True
    assert tuner.runs == 2 and tuner.options.post_process_mask
    tuner.alpha_matting.value = False
    assert tuner.runs == 2  # no change, no run
    tuner.background.value = 250  # above the foreground threshold: refused, shown
    assert tuner.last.error and "background_threshold" in tuner.last.error
    assert "background_threshold" in tuner.view.value
