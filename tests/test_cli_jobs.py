"""``photoproc worker``, ``photoproc submit`` and ``photoproc jobs`` end to end.

Commands run through ``photoproc.cli.main`` in this process (``submit --wait``
then starts a real worker with child processes) or as real subprocesses
(``photoproc worker`` and its SIGTERM handling).
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import time
from pathlib import Path

import pytest
from support.onnx_models import make_u2net_like
from support.worker_proc import (
    BAD,
    make_png,
    start_worker_process,
    wait_for,
    worker_env,
    write_images,
)

from photoproc.cli import main
from photoproc.cli.jobs import parse_duration
from photoproc.jobs import ItemStatus, JobStatus
from photoproc.pipeline.models import import_model
from photoproc.service import PhotoService

pytestmark = pytest.mark.timeout(120)

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def stand_in(monkeypatch, tmp_path):
    """The fast stand-in pipeline for in-process workers (read by Settings.from_env)."""
    monkeypatch.setenv("PHOTOPROC_ITEM_FUNCTION", "support.worker_proc:fast")
    monkeypatch.setenv("PHOTOPROC_WORKERS", "2")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("7d", 604_800), ("12h", 43_200), ("1d12h", 129_600), ("30m", 1800), ("45", 45),
     ("0s", 0), ("1.5h", 5400), ("2w", 1_209_600), ("1D 2H", 93_600)],
)  # fmt: skip
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "d", "7x", "-1d", "7d!", "d7"])
def test_parse_duration_refuses(text):
    with pytest.raises(argparse.ArgumentTypeError):
        parse_duration(text)


def test_submit_wait_completes_and_jobs_show_lists_items(stand_in, data_dir, tmp_path, capsys):
    folder = tmp_path / "photos"
    write_images(folder, 3)
    (folder / "notes.txt").write_text("not an image")
    # Installed weights make u2netp the default, so `--model grabcut` is a choice `show` lists.
    import_model("u2netp", make_u2net_like(tmp_path / "u2netp.onnx"), force=True)
    code = main(
        ["submit", str(folder), "--data-dir", str(data_dir), "--wait", "--model", "grabcut"]
    )
    out, err = capsys.readouterr()
    job_id = out.splitlines()[0]
    assert UUID.match(job_id)
    assert code == 1  # one input was not an image
    assert "failed: notes.txt: not an image" in err
    assert "completed: 3 done, 1 failed of 4" in err

    assert main(["jobs", "show", job_id, "--data-dir", str(data_dir)]) == 0
    out, _ = capsys.readouterr()
    assert f"job       {job_id}" in out
    assert "status    completed" in out
    for i in range(3):
        assert re.search(
            rf"\s{i}  done\s+img-0000{i}\.png\n\s+→ .*/out/0000{i}-img-0000{i}\.png", out
        )
    assert re.search(r"3  failed\s+notes\.txt\n\s+error: not an image", out)
    assert 'options   {"model": "grabcut"}' in out

    assert main(["jobs", "show", job_id, "--data-dir", str(data_dir), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["status"] == "completed" and len(data["items"]) == 4
    assert all(Path(p).is_file() for p in data["items"][0]["output_files"])


def test_submit_wait_exit_status_zero_when_all_succeed(stand_in, data_dir, tmp_path, capsys):
    image = tmp_path / "a.png"
    image.write_bytes(make_png(1))
    code = main(["submit", str(image), "--data-dir", str(data_dir), "--wait", "--json"])
    out, _ = capsys.readouterr()
    first, second = out.splitlines()
    assert code == 0
    job = json.loads(second)
    assert job["id"] == first and job["status"] == "completed"
    assert job["items"][0]["status"] == "done"


def test_submit_wait_reports_failed_images(stand_in, data_dir, tmp_path, capsys):
    (tmp_path / "bad.png").write_bytes(make_png(1, marker=BAD))
    code = main(["submit", str(tmp_path / "bad.png"), "--data-dir", str(data_dir), "--wait", "-q"])
    _, err = capsys.readouterr()
    assert code == 1
    assert "failed: bad.png: not an image: test marker BAD" in err
    assert "failed: 0 done, 1 failed of 1" in err


def test_submit_without_wait_then_list_cancel_cleanup(data_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PHOTOPROC_DATA_DIR", str(data_dir))  # no --data-dir: from the env
    write_images(tmp_path / "in", 2)
    assert main(["submit", str(tmp_path / "in"), "--json", "--format", "webp"]) == 0
    out, err = capsys.readouterr()
    job_id, doc = out.splitlines()
    assert json.loads(doc)["metadata"]["format"] == "webp"
    assert "no worker is running" in err

    assert main(["jobs", "list"]) == 0
    out = capsys.readouterr().out
    assert re.search(rf"{job_id}\s+pending\s+0/2\s+0\s+\d{{4}}-", out)
    assert main(["jobs", "list", "--json", "--status", "pending"]) == 0
    assert [j["id"] for j in json.loads(capsys.readouterr().out)] == [job_id]
    assert main(["jobs", "list", "--json", "--status", "completed"]) == 0
    assert json.loads(capsys.readouterr().out) == []

    assert main(["jobs", "cancel", job_id]) == 0
    assert capsys.readouterr().out.strip() == f"{job_id} cancelled"
    assert main(["jobs", "cleanup", "--older-than", "1d", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"removed": 0}
    time.sleep(0.05)
    assert main(["jobs", "cleanup", "--older-than", "0s"]) == 0
    assert capsys.readouterr().out.strip() == "removed 1 job"
    assert not (data_dir / "jobs" / job_id).exists()
    assert main(["jobs", "show", job_id]) == 2
    assert f"job {job_id} not found" in capsys.readouterr().err


def test_jobs_delete_and_errors(data_dir, tmp_path, capsys):
    (tmp_path / "a.png").write_bytes(make_png(1))
    main(["submit", str(tmp_path / "a.png"), "--data-dir", str(data_dir)])
    job_id = capsys.readouterr().out.splitlines()[0]
    assert main(["jobs", "delete", job_id, "--data-dir", str(data_dir)]) == 0
    assert not (data_dir / "jobs" / job_id).exists()
    assert main(["jobs", "cancel", "not-a-job", "--data-dir", str(data_dir)]) == 2
    assert main(["submit", str(tmp_path / "nothing-here"), "--data-dir", str(data_dir)]) == 2
    assert "photoproc: error:" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["jobs", "cleanup", "--older-than", "soon", "--data-dir", str(data_dir)])


def test_submit_wait_with_the_real_pipeline(data_dir, tmp_path, capsys):
    """No stand-in: the default process_image in the worker's children (offline path)."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(3)
    for i in range(2):
        pixels = rng.integers(0, 255, (40, 56, 3), dtype=np.uint8)
        cv2.imwrite(str(tmp_path / f"p{i}.jpg"), pixels)
    argv = ["submit", str(tmp_path / "p0.jpg"), str(tmp_path / "p1.jpg"), "--data-dir",
            str(data_dir), "--wait", "-q", "--no-remove-bg", "--crop-face",
            "--face-detector", "haar"]  # fmt: skip
    assert main(argv) == 0
    job_id = capsys.readouterr().out.splitlines()[0]
    with PhotoService(data_dir, start_worker=False) as service:
        results = service.results(job_id)
        assert [r.name for r in results] == ["p0.png", "p1.png"]
        assert all(r.path.read_bytes().startswith(b"\x89PNG") for r in results)
        assert all(i.warnings == ("no face detected",) for i in service.items(job_id))


def test_worker_process_stops_gracefully_on_sigterm(data_dir):
    with PhotoService(data_dir, start_worker=False) as service:
        job = service.submit([(f"{i}.png", make_png(i)) for i in range(6)], {"model": "grabcut"})
        env = worker_env(
            PHOTOPROC_ITEM_FUNCTION="support.worker_proc:slow", PHOTOPROC_TEST_SLEEP="1"
        )
        proc = start_worker_process(data_dir, workers=2, env=env)
        try:
            wait_for(lambda: service.worker_alive(), 20, message="the worker's heartbeat")
            wait_for(
                lambda: any(i.status is ItemStatus.PROCESSING for i in service.items(job.id)),
                20,
            )
            time.sleep(0.3)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        items = service.items(job.id)
        assert not any(i.status is ItemStatus.PROCESSING for i in items)
        assert any(i.status is ItemStatus.DONE for i in items)  # the running ones finished
        assert service.get(job.id).status is JobStatus.PROCESSING
        assert not service.worker_alive()
