"""PhotoService with a real SQLite file, real staging on disk and real workers.

The pipeline is the stand-in of ``support.worker_proc`` (selected through the
settings), so these tests are about the service: ingest into items, results,
cleanup, progress events (throttling, final state, other processes), workers.
"""

from __future__ import annotations

import datetime
import io
import json
import os
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest
from support.worker_proc import (
    expected_output,
    make_png,
    make_settings,
    wait_for,
    worker_env,
    write_images,
)

from photoproc.errors import (
    InvalidOptionsError,
    ItemNotFoundError,
    JobNotFoundError,
    NoImagesError,
    UploadTooLargeError,
)
from photoproc.ingest import UploadedFile
from photoproc.jobs import ItemStatus, JobStatus
from photoproc.service import PhotoService, ResultFile

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def idle(data_dir: Path):
    """A service without a worker: jobs stay queued."""
    service = PhotoService(settings=make_settings(data_dir), start_worker=False)
    yield service
    service.close()


@pytest.fixture
def busy(data_dir: Path):
    """A service with a worker in this process (stand-in pipeline)."""
    service = PhotoService(settings=make_settings(data_dir), start_worker=True)
    yield service
    service.close()


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def finish(service: PhotoService, job_id: str, timeout: float = 60):
    *_, last = service.watch(job_id, timeout=timeout)
    return last


# -- submit ------------------------------------------------------------------------------


def test_submit_stages_every_kind_of_input(idle, tmp_path, data_dir):
    folder = tmp_path / "photos"
    write_images(folder / "sub", 2)
    single = tmp_path / "single.png"
    single.write_bytes(make_png(50))
    upload = tmp_path / "upload.tmp"
    upload.write_bytes(make_png(51))
    archive = zip_bytes({"a/x.png": make_png(52), "notes.txt": b"hello", "__MACOSX/._x": b""})
    job = idle.submit(
        [
            folder,
            single,
            ("bytes.png", make_png(53)),
            ("stream.png", io.BytesIO(make_png(54))),
            UploadedFile("up.png", upload),
            ("batch.zip", archive),
            ("readme.txt", b"not an image"),
        ],
        {"model": "grabcut", "format": "webp"},
        source="test",
    )
    assert job.status is JobStatus.PENDING
    assert job.source == "test"
    assert job.options["format"] == "webp" and job.options["model"] == "grabcut"
    items = idle.items(job.id)
    names = [item.name for item in items]
    assert names == [
        "sub/img-00000.png",
        "sub/img-00001.png",
        "single.png",
        "bytes.png",
        "stream.png",
        "up.png",
        "batch/a/x.png",
        "batch/notes.txt",
        "readme.txt",
    ]
    # Skipped entries are items that already failed, with the reason.
    failed = [item for item in items if item.status is ItemStatus.FAILED]
    assert [item.name for item in failed] == ["batch/notes.txt", "readme.txt"]
    assert all(item.error for item in failed)
    assert (job.total, job.processed, job.failed) == (9, 2, 2)
    # Storage names are unique and safe; inputs are staged byte for byte.
    assert len({item.storage_name for item in items}) == 9
    assert idle.input_path(job.id, 3).read_bytes() == make_png(53)
    assert idle.input_path(job.id, 6).read_bytes() == make_png(52)
    assert idle.input_path(job.id, 0).is_relative_to(data_dir / "jobs" / job.id / "in")
    with pytest.raises(ItemNotFoundError):
        idle.input_path(job.id, 7)  # skipped: nothing was staged
    with pytest.raises(ItemNotFoundError):
        idle.input_path(job.id, 99)
    assert idle.get(job.id) == job


def test_single_path_input_and_default_options(idle, tmp_path):
    path = tmp_path / "one.png"
    path.write_bytes(make_png(1))
    job = idle.submit(path)
    assert job.total == 1
    assert job.options["model"] == "grabcut"  # no weights in the test's model folder


def test_no_image_at_all_leaves_nothing_behind(idle, data_dir):
    with pytest.raises(NoImagesError, match="not an image"):
        idle.submit([("a.txt", b"hello"), ("b.txt", b"world")])
    assert idle.count() == 0
    assert list((data_dir / "jobs").iterdir()) == []


def test_too_many_files_is_refused(data_dir, tmp_path):
    write_images(tmp_path / "many", 4)
    with PhotoService(
        settings=make_settings(data_dir, max_upload_files=3), start_worker=False
    ) as service:
        with pytest.raises(UploadTooLargeError, match="more than 3 images"):
            service.submit([tmp_path / "many"])
        assert service.count() == 0
        assert list((data_dir / "jobs").iterdir()) == []


def test_bad_options_are_refused_before_staging(idle, data_dir, tmp_path):
    with pytest.raises(InvalidOptionsError):
        idle.submit([("a.png", make_png(1))], {"format": "gif"})
    assert list((data_dir / "jobs").iterdir()) == []


# -- reading --------------------------------------------------------------------------


def test_get_list_count_and_malformed_ids(idle):
    jobs = [idle.submit([(f"{i}.png", make_png(i))]) for i in range(5)]
    idle.cancel(jobs[0].id)
    assert [j.id for j in idle.list()] == [j.id for j in reversed(jobs)]
    assert [j.id for j in idle.list(limit=2, offset=1)] == [jobs[3].id, jobs[2].id]
    assert [j.id for j in idle.list(status="cancelled")] == [jobs[0].id]
    assert idle.count() == 5
    assert idle.count(status=JobStatus.PENDING) == 4
    for bad in ("nope", "../../etc/passwd", "", "00000000-0000-0000-0000-000000000000"):
        with pytest.raises(JobNotFoundError):
            idle.get(bad)
    with pytest.raises(JobNotFoundError):
        idle.items("x")


def test_results_have_unique_safe_names_and_zip_streams(busy, tmp_path):
    archive = zip_bytes({"dup/cat.png": make_png(1), "other/cat.png": make_png(2)})
    images = {"cat.png": make_png(3), "sub/cat.png": make_png(4), "CAT.png": make_png(5)}
    job = busy.submit(
        [*images.items(), ("x.zip", archive), ("bad:name?.png", make_png(6))], {"model": "grabcut"}
    )
    assert finish(busy, job.id).status is JobStatus.COMPLETED
    results = busy.results(job.id)
    assert all(isinstance(r, ResultFile) for r in results)
    names = [r.name for r in results]
    assert names == [
        "cat.png",
        "sub/cat.png",
        "CAT (2).png",
        "x/dup/cat.png",
        "x/other/cat.png",
        "bad_name_.png",
    ]
    assert [r.item_index for r in results] == list(range(6))
    assert {r.media_type for r in results} == {"image/png"}
    assert all(r.size == r.path.stat().st_size > 0 for r in results)
    assert results[0].path.read_bytes() == expected_output(make_png(3))

    chunks = list(busy.results_zip(job.id, chunk_size=4096))
    assert len(chunks) > 1  # streamed, not built in one piece
    with zipfile.ZipFile(io.BytesIO(b"".join(chunks))) as zf:
        assert zf.testzip() is None
        assert zf.namelist() == names
        assert {i.compress_type for i in zf.infolist()} == {zipfile.ZIP_STORED}
        assert zf.read("sub/cat.png") == expected_output(make_png(4))
    with pytest.raises(JobNotFoundError):
        busy.results_zip("f" * 8)  # raises at once, not at the first next()


def test_results_list_only_finished_items(idle):
    job = idle.submit([("a.png", make_png(1))])
    assert idle.results(job.id) == []
    assert list(zipfile.ZipFile(io.BytesIO(b"".join(idle.results_zip(job.id)))).namelist()) == []


# -- changing ---------------------------------------------------------------------------


def test_delete_removes_rows_and_files(idle, data_dir):
    job = idle.submit([("a.png", make_png(1))])
    assert (data_dir / "jobs" / job.id).is_dir()
    idle.delete(job.id)
    with pytest.raises(JobNotFoundError):
        idle.get(job.id)
    assert not (data_dir / "jobs" / job.id).exists()
    with pytest.raises(JobNotFoundError):
        idle.delete(job.id)


def test_cleanup_removes_old_ended_jobs_rows_and_files(busy, data_dir):
    done = busy.submit([("a.png", make_png(1))], {"model": "grabcut"})
    assert finish(busy, done.id).status is JobStatus.COMPLETED
    busy.close()
    with PhotoService(settings=make_settings(data_dir), start_worker=False) as service:
        queued = service.submit([("b.png", make_png(2))])
        orphan = data_dir / "jobs" / "0b7c4a5e-0c1d-4f3e-9a2b-123456789abc"
        (orphan / "out").mkdir(parents=True)
        old = time.time() - 3600
        os.utime(orphan, (old, old))
        assert service.cleanup(datetime.timedelta(hours=1)) == 0  # too recent
        assert (data_dir / "jobs" / done.id).is_dir()
        time.sleep(0.05)
        assert service.cleanup(0) == 1
        with pytest.raises(JobNotFoundError):
            service.get(done.id)
        assert not (data_dir / "jobs" / done.id).exists()
        assert not orphan.exists()  # a folder without a job row
        assert service.get(queued.id).status is JobStatus.PENDING  # not ended: kept
        assert (data_dir / "jobs" / queued.id / "in").is_dir()
        with pytest.raises(ValueError):
            service.cleanup(-1)


def test_cancel_reaches_watchers(data_dir, monkeypatch):
    # How soon it arrives is a figure of benchmarks/bench_responsiveness.py, not a test.
    monkeypatch.setenv("PHOTOPROC_TEST_SLEEP", "0.2")
    settings = make_settings(data_dir, workers=1, item_function="support.worker_proc:slow")
    with PhotoService(settings=settings, start_worker=True) as service:
        job = service.submit([(f"{i}.png", make_png(i)) for i in range(30)], {"model": "grabcut"})
        seen: list[object] = []
        service.subscribe(job.id, seen.append)
        wait_for(lambda: service.get(job.id).processed >= 2, 30, message="progress")
        assert service.cancel(job.id).status is JobStatus.CANCELLED
        wait_for(lambda: seen and seen[-1].status is JobStatus.CANCELLED, 60, message="cancel")
        time.sleep(0.6)
        items = service.items(job.id)
        assert sum(i.status is ItemStatus.CANCELLED for i in items) >= 25
        assert not any(i.status is ItemStatus.PROCESSING for i in items)
        assert service.cancel(job.id).status is JobStatus.CANCELLED  # ended: unchanged


# -- progress -------------------------------------------------------------------------


def test_events_are_throttled_and_the_final_state_comes_once(busy):
    job = busy.submit([(f"{i}.png", make_png(i)) for i in range(80)], {"model": "grabcut"})
    jobs: list = []
    done = threading.Event()

    def on_event(j):
        jobs.append(j)
        if j.ended:
            done.set()

    busy.subscribe(job.id, on_event)
    assert done.wait(60)
    time.sleep(0.5)  # nothing may follow the final state
    assert sum(j.ended for j in jobs) == 1
    assert jobs[-1].status is JobStatus.COMPLETED and jobs[-1].processed == 80
    processed = [j.processed for j in jobs]
    assert processed == sorted(processed)
    # The rate rule (10/s, bursts of 3) is checked on a driven clock in test_throttle.py;
    # the rate as delivered is a figure of benchmarks/bench_responsiveness.py.


def test_subscriber_of_an_ended_job_gets_one_event(busy):
    job = busy.submit([("a.png", make_png(1))], {"model": "grabcut"})
    finish(busy, job.id)
    got = []
    busy.subscribe(job.id, got.append)
    time.sleep(0.5)
    assert [j.status for j in got] == [JobStatus.COMPLETED]


def test_unsubscribe_stops_events(idle):
    job = idle.submit([("a.png", make_png(1))])
    got = []
    unsubscribe = idle.subscribe(job.id, got.append)
    wait_for(lambda: got, 5)
    unsubscribe()
    idle.cancel(job.id)
    time.sleep(0.4)
    assert [j.status for j in got] == [JobStatus.PENDING]


def test_watch_times_out_and_ends_on_delete(idle):
    job = idle.submit([("a.png", make_png(1))])
    with pytest.raises(TimeoutError):
        for _ in idle.watch(job.id, timeout=0.3):
            pass
    watcher = idle.watch(job.id, timeout=10)
    assert next(watcher).status is JobStatus.PENDING
    idle.delete(job.id)
    # delete() cancels first; a watcher may see that state before the job is gone.
    assert [j.status for j in watcher] in ([], [JobStatus.CANCELLED])
    with pytest.raises(JobNotFoundError):
        idle.watch(job.id)


_WATCHER = """
import json, sys
from photoproc.service import PhotoService
service = PhotoService(sys.argv[1], start_worker=False)
print("ready", flush=True)
for job in service.watch(sys.argv[2], timeout=60):
    print(json.dumps({"processed": job.processed, "status": str(job.status)}), flush=True)
service.close()
"""


def test_a_watcher_in_another_process_sees_progress(data_dir, monkeypatch):
    monkeypatch.setenv("PHOTOPROC_TEST_SLEEP", "0.15")
    settings = make_settings(data_dir, workers=1, item_function="support.worker_proc:slow")
    with PhotoService(settings=settings, start_worker=False) as service:
        job = service.submit([(f"{i}.png", make_png(i)) for i in range(12)], {"model": "grabcut"})
        watcher = subprocess.Popen(
            [sys.executable, "-c", _WATCHER, str(data_dir), job.id],
            stdout=subprocess.PIPE,
            text=True,
            env=worker_env(),
        )
        try:
            assert watcher.stdout.readline().strip() == "ready"
            service.start_worker()
            out, _ = watcher.communicate(timeout=60)
        finally:
            if watcher.poll() is None:
                watcher.kill()
        events = [json.loads(line) for line in out.splitlines()]
        assert events[-1]["status"] == "completed" and events[-1]["processed"] == 12
        assert sum(e["status"] == "completed" for e in events) == 1
        assert len({e["processed"] for e in events}) >= 4  # progress, not just start and end


# -- workers --------------------------------------------------------------------------


def test_auto_starts_a_worker_only_when_none_is_alive(data_dir):
    settings = make_settings(data_dir)
    with PhotoService(settings=settings, start_worker="auto") as first:
        assert first.worker is not None and first.worker.alive
        wait_for(lambda: first.store.live_workers(), 5)
        with PhotoService(settings=settings, start_worker="auto") as second:
            assert second.worker is None
            assert second.worker_alive()
            job = second.submit([("a.png", make_png(1))], {"model": "grabcut"})
            assert finish(second, job.id).status is JobStatus.COMPLETED
    with PhotoService(settings=settings, start_worker=False) as third:
        assert not third.worker_alive()  # the first one's heartbeat was removed on close


def test_health(busy, idle):
    health = busy.health()
    assert health["status"] == "ok" and health["db"] == "ok"
    assert health["worker_alive"] is True
    assert health["queue_depth"] == 0
    assert set(health["jobs"]) == {s.value for s in JobStatus}
    wait_for(lambda: busy.health()["workers"], 5)
    assert busy.health()["workers"][0]["pid"] == os.getpid()


def test_close_leaves_nothing_processing(data_dir, monkeypatch):
    monkeypatch.setenv("PHOTOPROC_TEST_SLEEP", "30")
    settings = make_settings(data_dir, item_function="support.worker_proc:slow")
    service = PhotoService(settings=settings, start_worker=True)
    job = service.submit([(f"{i}.png", make_png(i)) for i in range(3)], {"model": "grabcut"})
    wait_for(lambda: service.get(job.id).status is JobStatus.PROCESSING, 20)
    service.close(timeout=0.3)
    with PhotoService(settings=settings, start_worker=False) as again:
        statuses = {i.status for i in again.items(job.id)}
        assert statuses == {ItemStatus.PENDING}
        assert not again.worker_alive()
    with pytest.raises(RuntimeError):
        service.submit([("a.png", make_png(1))])


def test_a_small_job_is_not_stuck_behind_a_big_one(data_dir, monkeypatch):
    monkeypatch.setenv("PHOTOPROC_TEST_SLEEP", "0.05")
    settings = make_settings(data_dir, workers=1, item_function="support.worker_proc:slow")
    with PhotoService(settings=settings, start_worker=False) as service:
        big = service.submit([(f"{i}.png", make_png(i)) for i in range(60)], {"model": "grabcut"})
        small = service.submit([(f"s{i}.png", make_png(100 + i)) for i in range(3)])
        service.start_worker()
        assert finish(service, small.id).status is JobStatus.COMPLETED
        assert service.get(big.id).processed < 30
