"""The worker with real SQLite files, real child processes and real ``photoproc worker``
processes: exactly-once processing, crashes, hangs, kill -9 and graceful stops.

The pipeline is replaced by the stand-ins of ``support.worker_proc`` (they log
every call, so double processing is visible); one test runs the real pipeline.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
from support.worker_proc import (
    BAD,
    HANG,
    POISON,
    children_of,
    digest,
    expected_output,
    make_png,
    make_settings,
    process_running,
    read_log,
    start_worker_process,
    store_job,
    wait_for,
    worker_env,
)

from photoproc.config import usable_cores
from photoproc.jobs import ItemStatus, JobStatus
from photoproc.store import JobStore
from photoproc.worker import Worker, output_names

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    (path / "jobs").mkdir(parents=True)
    return path


@pytest.fixture
def store(data_dir: Path):
    store = JobStore(data_dir / "photoproc.db")
    yield store
    store.close()


@pytest.fixture
def call_log(tmp_path: Path, monkeypatch) -> Path:
    path = tmp_path / "calls.log"
    monkeypatch.setenv("PHOTOPROC_TEST_LOG", str(path))
    return path


def wait_job_end(store: JobStore, job_id: str, timeout: float = 60):
    return wait_for(
        lambda: (job := store.get_job(job_id)).ended and job, timeout, message=f"job {job_id} end"
    )


def assert_outputs_complete(data_dir: Path, store: JobStore, job_id: str, images: list[bytes]):
    """Every recorded output holds exactly what the stand-in writes for its input, and
    every file under out/ that a reader could look for (no .tmp-*) is complete."""
    by_storage = {}
    for item in store.get_items(job_id):
        assert item.status is ItemStatus.DONE, (item.index, item.status, item.error)
        assert len(item.outputs) == 1
        expected = expected_output(images[item.index])
        assert (data_dir / item.outputs[0]).read_bytes() == expected
        by_storage[Path(item.outputs[0]).name] = expected
    out_dir = data_dir / "jobs" / job_id / "out"
    for path in out_dir.iterdir():
        if path.name.startswith(".tmp-"):
            continue
        assert path.name in by_storage, f"unexpected file {path.name}"
        assert path.read_bytes() == by_storage[path.name], f"partial file {path.name}"


def test_output_names_are_deterministic():
    assert output_names("00003-cat.jpg", [".png"]) == ["00003-cat.png"]
    assert output_names("00003-cat.jpg", [".png", ".png"]) == [
        "00003-cat_face1.png",
        "00003-cat_face2.png",
    ]


def test_every_item_processed_exactly_once(data_dir, store, call_log):
    images = [make_png(i) for i in range(24)]
    job_id = store_job(store, data_dir, images)
    with Worker(store, make_settings(data_dir)) as worker:
        wait_for(lambda: store.live_workers(), 5, message="heartbeat")
        job = wait_job_end(store, job_id)
        assert worker.counts["done"] == 24
    assert job.status is JobStatus.COMPLETED
    assert (job.processed, job.failed, job.total) == (24, 0, 24)
    assert job.finished_at is not None
    assert_outputs_complete(data_dir, store, job_id, images)
    items = store.get_items(job_id)
    assert {item.attempts for item in items} == {1}
    assert all(item.warnings == ("stand-in pipeline",) for item in items)
    assert all("total" in item.timings and item.width == 4 for item in items)
    calls = Counter(sha for _, _, sha in read_log(call_log))
    assert calls == Counter({digest(data): 1 for data in images})
    assert store.live_workers() == []  # the heartbeat is removed on stop
    assert store.queue_depth() == 0


def test_photoproc_error_fails_at_once_without_retry(data_dir, store, call_log):
    images = [make_png(0), make_png(1, marker=BAD), make_png(2)]
    job_id = store_job(store, data_dir, images)
    with Worker(store, make_settings(data_dir, max_attempts=3)):
        job = wait_job_end(store, job_id)
    assert job.status is JobStatus.COMPLETED
    assert (job.processed, job.failed) == (3, 1)
    bad = store.get_item(job_id, 1)
    assert bad.status is ItemStatus.FAILED
    assert bad.attempts == 1
    assert bad.error == "not an image: test marker BAD"
    assert len([1 for *_, sha in read_log(call_log) if sha == digest(images[1])]) == 1


def test_all_items_failing_fails_the_job(data_dir, store):
    images = [make_png(i, marker=BAD) for i in range(2)]
    job_id = store_job(store, data_dir, images)
    with Worker(store, make_settings(data_dir, workers=1)):
        job = wait_job_end(store, job_id)
    assert job.status is JobStatus.FAILED
    assert job.error == "all 2 items failed"


def test_poison_pill_and_hang_fail_their_item_and_the_worker_survives(
    data_dir, store, call_log, monkeypatch
):
    monkeypatch.setenv("PHOTOPROC_TEST_SLEEP", "0.05")
    images = [make_png(i) for i in range(6)]
    images[1] = make_png(1, marker=POISON)
    images[4] = make_png(4, marker=HANG)
    job_id = store_job(store, data_dir, images)
    settings = make_settings(
        data_dir, item_function="support.worker_proc:misbehave", item_timeout=1.5, max_attempts=2
    )
    with Worker(store, settings) as worker:
        job = wait_job_end(store, job_id, timeout=60)
        assert job.status is JobStatus.COMPLETED
        assert (job.processed, job.failed) == (6, 2)
        poison, hang = store.get_item(job_id, 1), store.get_item(job_id, 4)
        assert poison.status is ItemStatus.FAILED and poison.attempts == 2
        assert poison.error == (
            "failed 2 times, giving up; last: worker process died (killed by SIGKILL)"
        )
        assert hang.status is ItemStatus.FAILED and hang.attempts == 2
        assert hang.error == "failed 2 times, giving up; last: timed out after 1.5 s"
        calls = Counter(sha for *_, sha in read_log(call_log))
        assert calls[digest(images[1])] == 2 and calls[digest(images[4])] == 2
        # The worker is still alive and its pool still works.
        assert worker.alive
        second = store_job(store, data_dir, [make_png(100)])
        assert wait_job_end(store, second).status is JobStatus.COMPLETED


def test_graceful_stop_releases_running_items(data_dir, store, monkeypatch):
    # Items sleep far past the module's timeout: a stop that waited for them fails the test.
    monkeypatch.setenv("PHOTOPROC_TEST_SLEEP", "600")
    job_id = store_job(store, data_dir, [make_png(i) for i in range(4)])
    worker = Worker(store, make_settings(data_dir, item_function="support.worker_proc:slow"))
    worker.start()

    def running():
        return [i for i in store.get_items(job_id) if i.status is ItemStatus.PROCESSING]

    wait_for(lambda: len(running()) == 2, 20, message="two running items")
    worker.stop(timeout=0.5)
    items = store.get_items(job_id)
    assert [i.status for i in items] == [ItemStatus.PENDING] * 4
    assert {i.attempts for i in items} == {0}  # a released attempt does not count
    assert worker.counts["released"] == 2
    assert store.live_workers() == []
    assert store.get_job(job_id).status is JobStatus.PROCESSING


def test_graceful_stop_lets_running_items_finish(data_dir, store, monkeypatch):
    monkeypatch.setenv("PHOTOPROC_TEST_SLEEP", "1")
    job_id = store_job(store, data_dir, [make_png(i) for i in range(5)])
    worker = Worker(store, make_settings(data_dir, item_function="support.worker_proc:slow"))
    worker.start()
    wait_for(
        lambda: any(i.status is ItemStatus.PROCESSING for i in store.get_items(job_id)),
        20,
        message="a running item",
    )
    worker.stop(timeout=20)
    statuses = Counter(i.status for i in store.get_items(job_id))
    assert statuses[ItemStatus.PROCESSING] == 0
    assert statuses[ItemStatus.DONE] >= 1
    assert statuses[ItemStatus.DONE] + statuses[ItemStatus.PENDING] == 5
    assert worker.counts["released"] == 0


def test_cancelled_job_items_never_start(data_dir, store, call_log, monkeypatch):
    monkeypatch.setenv("PHOTOPROC_TEST_SLEEP", "0.3")
    images = [make_png(i) for i in range(20)]
    job_id = store_job(store, data_dir, images)
    with Worker(
        store, make_settings(data_dir, workers=1, item_function="support.worker_proc:slow")
    ):
        wait_for(lambda: store.get_job(job_id).processed >= 2, 30, message="two items done")
        cancelled = store.cancel_job(job_id)
        assert cancelled.status is JobStatus.CANCELLED
        started_before = len(read_log(call_log))
        time.sleep(1.5)
        # At most the item that was running at cancel time may have finished.
        assert len(read_log(call_log)) <= started_before + 1
    items = store.get_items(job_id)
    statuses = Counter(i.status for i in items)
    assert statuses[ItemStatus.PROCESSING] == 0
    assert statuses[ItemStatus.CANCELLED] >= 20 - started_before - 1
    assert store.get_job(job_id).status is JobStatus.CANCELLED


def test_lost_claim_result_is_dropped(data_dir, store, monkeypatch):
    """Fencing end to end: a worker whose lease was taken over cannot record its result."""
    monkeypatch.setenv("PHOTOPROC_TEST_SLEEP", "2.5")
    job_id = store_job(store, data_dir, [make_png(0)])
    settings = make_settings(
        data_dir, workers=1, lease_seconds=1.0, item_function="support.worker_proc:slow"
    )
    worker = Worker(store, settings)
    worker._keep = lambda: None  # this worker never renews its lease (as if frozen)
    worker.start()
    try:
        wait_for(lambda: store.get_item(job_id, 0).status is ItemStatus.PROCESSING, 20)
        time.sleep(1.2)  # the lease runs out
        thief = store.claim("thief", lease_seconds=60, max_attempts=3)
        assert thief is not None and thief.index == 0 and thief.attempt == 2
        # The first worker's child finishes and writes its (identical) output...
        out = data_dir / "jobs" / job_id / "out" / "00000-img.png"
        wait_for(out.exists, 20, message="the late output")
        time.sleep(0.5)
        # ...but its result is refused: the item is still the thief's.
        item = store.get_item(job_id, 0)
        assert item.status is ItemStatus.PROCESSING and item.outputs == ()
        assert worker.counts["done"] == 0
        assert store.finish(thief, outputs=[out.relative_to(data_dir)])
        assert store.get_item(job_id, 0).status is ItemStatus.DONE
    finally:
        worker.stop(timeout=1)


def test_real_pipeline_through_the_worker(data_dir, store):
    """No stand-in: process_image runs in the children (face crop, offline, no model)."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    png = cv2.imencode(".png", pixels)[1].tobytes()
    job_id = store_job(
        store,
        data_dir,
        [png, b"not an image at all"],
        options={"remove_bg": False, "crop_face": True, "face_detector": "haar", "format": "png"},
    )
    with Worker(store, make_settings(data_dir, workers=1, item_function=None)):
        job = wait_job_end(store, job_id, timeout=90)
    assert (job.processed, job.failed) == (2, 1)
    good, bad = store.get_items(job_id)
    assert good.status is ItemStatus.DONE
    assert (good.width, good.height) == (64, 48)
    assert "no face detected" in good.warnings
    out = cv2.imdecode(np.frombuffer((data_dir / good.outputs[0]).read_bytes(), np.uint8), -1)
    assert out.shape[:2] == (48, 64)
    assert bad.status is ItemStatus.FAILED and bad.attempts == 1 and bad.error


# -- worker processes ---------------------------------------------------------------


def _kill_and_recover(data_dir, store, job_id, env, ready) -> tuple[set[int], list[int]]:
    """Start a worker process, wait for ``ready()``, kill -9 it, check its children exit,
    start another worker and let it finish the job. Returns (items running at the kill,
    children pids of the killed worker)."""
    first = start_worker_process(data_dir, workers=2, env=env)
    second = None
    try:
        wait_for(ready, 40, message="the moment to kill")
        children = children_of(first.pid)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
        # Read after the kill: nothing can change the dead worker's claims any more.
        running = {i.index for i in store.get_items(job_id) if i.status is ItemStatus.PROCESSING}
        # Orphaned pipeline processes notice their parent is gone and exit.
        wait_for(
            lambda: not any(process_running(pid) for pid in children), 10, message="orphans exit"
        )
        second = start_worker_process(data_dir, workers=2, env=env)
        job = wait_job_end(store, job_id, timeout=60)
        assert job.status is JobStatus.COMPLETED, job
        return running, children
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(20)
                except Exception:
                    proc.kill()
                    proc.wait()


def test_children_of_a_killed_worker_exit(data_dir, store, call_log):
    """One child busy on a long item, one idle: both go when their worker is killed
    (pebble's idle children see their pipe close; a busy one needs our watchdog)."""
    store_job(store, data_dir, [make_png(0)])
    env = worker_env(PHOTOPROC_ITEM_FUNCTION="support.worker_proc:slow", PHOTOPROC_TEST_SLEEP="60")
    proc = start_worker_process(data_dir, workers=2, env=env)
    try:
        wait_for(lambda: read_log(call_log), 30, message="the item to start in a child")
        # the pool's two children (plus multiprocessing's resource tracker)
        children = wait_for(lambda: len(children_of(proc.pid)) >= 3 and children_of(proc.pid), 30)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    wait_for(lambda: not any(process_running(pid) for pid in children), 10, message="orphans exit")


@pytest.mark.slow
def test_kill_9_during_inference_loses_and_duplicates_nothing(data_dir, store, call_log):
    images = [make_png(i) for i in range(10)]
    job_id = store_job(store, data_dir, images)
    env = worker_env(
        PHOTOPROC_ITEM_FUNCTION="support.worker_proc:slow",
        PHOTOPROC_TEST_SLEEP="0.8",
        PHOTOPROC_LEASE_SECONDS="2",
    )

    def ready():
        items = store.get_items(job_id)
        return any(i.status is ItemStatus.DONE for i in items) and any(
            i.status is ItemStatus.PROCESSING for i in items
        )

    running, children = _kill_and_recover(data_dir, store, job_id, env, ready)
    assert running and children
    assert_outputs_complete(data_dir, store, job_id, images)
    items = store.get_items(job_id)
    calls = Counter(sha for *_, sha in read_log(call_log))
    assert_attempts(items, images, calls, running)


def assert_attempts(items, images, calls, running):
    """At least once when somebody crashes — and twice only for the items that were
    running at the kill; everything else exactly once."""
    for item in items:
        n = calls[digest(images[item.index])]
        if item.index in running:
            assert item.attempts == 2, item
            # a claim made an instant before the kill may not have reached its child yet
            assert n in (1, 2), (item, n)
        else:
            assert (item.attempts, n) == (1, 1), (item, n)


@pytest.mark.slow
def test_kill_9_during_output_write_leaves_no_partial_file(data_dir, store, call_log):
    from photoproc.service import PhotoService

    images = [make_png(i) for i in range(6)]
    job_id = store_job(store, data_dir, images)
    env = worker_env(
        PHOTOPROC_ITEM_FUNCTION="support.worker_proc:fast",
        PHOTOPROC_WRITE_FUNCTION="support.worker_proc:slow_write",
        PHOTOPROC_TEST_WRITE_SLEEP="1.5",
        PHOTOPROC_LEASE_SECONDS="2",
    )
    out_dir = data_dir / "jobs" / job_id / "out"

    def temporary():
        return out_dir.is_dir() and [p for p in out_dir.iterdir() if p.name.startswith(".tmp-")]

    running, _ = _kill_and_recover(data_dir, store, job_id, env, temporary)
    assert running
    assert_outputs_complete(data_dir, store, job_id, images)
    leftovers = temporary()
    assert leftovers, "the killed write should have left its temporary file"
    assert all(p.stat().st_size < len(expected_output(images[0])) for p in leftovers)
    with PhotoService(data_dir, start_worker=False) as service:
        listed = service.results(job_id)
        assert len(listed) == len(images)
        assert not any(".tmp-" in r.name or r.path.name.startswith(".tmp-") for r in listed)
    calls = Counter(sha for *_, sha in read_log(call_log))
    assert_attempts(store.get_items(job_id), images, calls, running)


@pytest.mark.slow
def test_two_worker_processes_share_a_job_without_doing_an_item_twice(data_dir, store, call_log):
    images = [make_png(i) for i in range(100)]
    job_id = store_job(store, data_dir, images)
    env = worker_env(
        PHOTOPROC_ITEM_FUNCTION="support.worker_proc:slow", PHOTOPROC_TEST_SLEEP="0.05"
    )
    workers = [start_worker_process(data_dir, workers=1, env=env) for _ in range(2)]
    try:
        job = wait_job_end(store, job_id, timeout=90)
    finally:
        for proc in workers:
            proc.send_signal(signal.SIGTERM)
        codes = [proc.wait(30) for proc in workers]
    assert codes == [0, 0]  # graceful stop on SIGTERM
    assert job.status is JobStatus.COMPLETED and job.failed == 0
    assert_outputs_complete(data_dir, store, job_id, images)
    log = read_log(call_log)
    assert Counter(sha for *_, sha in log) == Counter({digest(d): 1 for d in images})
    per_worker = Counter(ppid for ppid, *_ in log)
    assert set(per_worker) == {proc.pid for proc in workers}, per_worker
    assert {item.attempts for item in store.get_items(job_id)} == {1}
    assert store.live_workers() == []


def test_an_item_alone_gets_every_core_and_a_full_pool_one_each(data_dir, store):
    """The model's intra-op threads are set at dispatch from the items in flight."""
    cores = usable_cores()
    seen: list[tuple[str, int]] = []
    with Worker(store, make_settings(data_dir, workers=cores)) as worker:
        submit = worker.executor.submit

        def spy(task, done):
            seen.append((task.job_id, task.threads))
            return submit(task, done)

        worker.executor.submit = spy
        alone = store_job(store, data_dir, [make_png(0)])
        wait_job_end(store, alone)
        full = store_job(store, data_dir, [make_png(i) for i in range(4 * cores)])
        wait_job_end(store, full)
    assert [threads for job, threads in seen if job == alone] == [cores]
    busy = [threads for job, threads in seen if job == full]
    assert len(busy) == 4 * cores and min(busy) == 1
