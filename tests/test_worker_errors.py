"""Which failures the worker tries again, and what the user is told (real child processes).

An exception from inside the pipeline is deterministic — the same bytes fail the
same way — so it fails its item once, with a plain reason: never a retry "as a
crash", never a library's build path or a traceback in the item's error.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from support.worker_proc import make_png, make_settings, store_job, wait_for

from photoproc.jobs import ItemStatus, JobStatus
from photoproc.store import JobStore
from photoproc.worker import Worker
from photoproc.worker.child import ItemTask, run_item

pytestmark = pytest.mark.timeout(120)


def opencv_failure(data: bytes, options, *, max_pixels: int = 0):
    """A real OpenCV error, as 1x1 images raised in the cutout writer."""
    cv2.compare(np.zeros((1, 1), np.uint8), 0, cv2.CMP_GT)
    raise AssertionError("OpenCV accepted the 1x1 compare; find another failing call")


def out_of_memory(data: bytes, options, *, max_pixels: int = 0):
    raise MemoryError


def disk_full(path, data: bytes, *, fsync: bool = False):
    raise OSError(28, "No space left on device", str(path))


def test_a_pipeline_exception_fails_once_with_a_plain_reason(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    (data_dir / "jobs").mkdir(parents=True)
    store = JobStore(data_dir / "photoproc.db")
    try:
        job_id = store_job(store, data_dir, [make_png(0), make_png(1)])
        settings = make_settings(
            data_dir, item_function="test_worker_errors:opencv_failure", max_attempts=3
        )
        with Worker(store, settings):
            job = wait_for(lambda: (j := store.get_job(job_id)).ended and j, 60, message="job end")
        assert job.status is JobStatus.FAILED
        for item in store.get_items(job_id):
            assert item.status is ItemStatus.FAILED
            assert item.attempts == 1, item.error  # not retried as a crash
            assert item.error.startswith("internal error while processing the image (OpenCV")
            for leak in ("/io/opencv", ".cpp", "Traceback", "OpenCV(4"):
                assert leak not in item.error, item.error
    finally:
        store.close()


def _task(tmp_path: Path, **kwargs) -> ItemTask:
    staged = tmp_path / "in" / "00000-a.png"
    staged.parent.mkdir(parents=True, exist_ok=True)
    staged.write_bytes(make_png(0))
    return ItemTask(
        job_id="j",
        index=0,
        storage_name="00000-a.png",
        input_path=str(staged),
        out_dir=str(tmp_path / "out"),
        data_dir=str(tmp_path),
        options={"model": "grabcut"},
        **kwargs,
    )


def test_transient_failures_are_retried(tmp_path: Path) -> None:
    oom = run_item(_task(tmp_path, item_function=out_of_memory))
    assert oom["retry"] is True and oom["error"].startswith("error while processing")
    full = run_item(
        _task(tmp_path, item_function="support.worker_proc:fast", write_function=disk_full)
    )
    assert full["retry"] is True
    assert "No space left on device" in full["error"]
    assert str(tmp_path) not in full["error"]


def test_a_missing_input_names_no_path(tmp_path: Path) -> None:
    task = _task(tmp_path)
    Path(task.input_path).unlink()
    outcome = run_item(task)
    assert outcome == {
        "ok": False,
        "retry": False,
        "error": "the staged input is gone (job deleted?)",
    }
