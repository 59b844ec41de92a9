"""The Dask executor: a job through a real ``LocalCluster`` (two worker processes).

One cluster serves the whole module (starting one costs seconds); its scheduler
runs with ``allowed-failures: 0`` as the README asks, so a Dask worker that dies
fails its task at once and the head's SQLite counts the attempt. The stand-in
pipeline functions of :mod:`support.worker_proc` run in the Dask workers (the
tests folder reaches them through ``sys.path``, and their environment is set
before the cluster starts).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

dask = pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")

from support.images import image_bytes  # noqa: E402
from support.serve_proc import photoproc_serve, stop_process  # noqa: E402
from support.worker_proc import (  # noqa: E402
    HANG,
    digest,
    expected_output,
    make_png,
    make_settings,
    process_running,
    read_log,
    store_job,
    wait_for,
    worker_env,
)

import photoproc  # noqa: E402
from photoproc.jobs import ItemStatus, JobStatus  # noqa: E402
from photoproc.service import PhotoService  # noqa: E402
from photoproc.worker.executors import ClusterError  # noqa: E402
from photoproc.worker.executors.cluster import DaskExecutor  # noqa: E402

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    log = tmp_path_factory.mktemp("dask-log") / "calls.log"
    with pytest.MonkeyPatch.context() as mp:
        # Worker processes (and those a nanny restarts) inherit this environment.
        mp.setenv("PHOTOPROC_TEST_LOG", str(log))
        mp.setenv("PHOTOPROC_TEST_SLEEP", "0.5")
        mp.setenv("REMBG_HOME", str(tmp_path_factory.mktemp("dask-rembg")))
        mp.setenv("PHOTOPROC_OFFLINE", "1")
        with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
            local = distributed.LocalCluster(
                processes=True,
                n_workers=2,
                threads_per_worker=1,
                host="127.0.0.1",
                dashboard_address="127.0.0.1:0",
            )
            try:
                local.log_path = log
                yield local
            finally:
                local.close()


def _service(data_dir: Path, address: str, **overrides) -> PhotoService:
    settings = make_settings(data_dir, **overrides)
    return PhotoService(settings=settings, start_worker=True, executor=DaskExecutor(address))


def _wait_ended(service: PhotoService, job_id: str, timeout: float = 90):
    return wait_for(
        lambda: (job := service.get(job_id)).ended and not service.worker._running and job,
        timeout,
        message=f"job {job_id} to end",
    )


def _out_files(data_dir: Path, job_id: str) -> list[Path]:
    return sorted((data_dir / "jobs" / job_id / "out").iterdir())


def test_results_are_byte_identical_to_the_local_pool(cluster, tmp_path):
    images = [
        ("a.png", image_bytes("png", 48, 40, pattern="gradient")),
        ("b.jpg", image_bytes("jpeg", 40, 56, pattern="gradient")),
        ("c.png", make_png(7, size=24)),
    ]
    options = {"model": "grabcut", "format": "png"}
    outputs = {}
    for name, executor in (("local", None), ("dask", DaskExecutor(cluster.scheduler_address))):
        data_dir = tmp_path / name
        settings = make_settings(data_dir, item_function=None)
        with PhotoService(settings=settings, start_worker=True, executor=executor) as service:
            job = service.submit(images, options)
            final = _wait_ended(service, job.id)
            assert final.status == JobStatus.COMPLETED and final.failed == 0
            assert service.worker.executor.kind == ("dask" if executor else "processes")
            outputs[name] = {p.name: p.read_bytes() for p in _out_files(data_dir, job.id)}
    assert len(outputs["dask"]) == 3
    assert outputs["dask"] == outputs["local"]


def test_kill_9_of_a_dask_worker_mid_job_loses_and_duplicates_nothing(cluster, tmp_path):
    images = [make_png(1000 + i) for i in range(6)]
    digests = {digest(d) for d in images}
    with _service(
        tmp_path, cluster.scheduler_address, item_function="support.worker_proc:slow"
    ) as s:
        job_id = store_job(s.store, tmp_path, images)
        s.worker.wake()
        first = wait_for(
            lambda: [r for r in read_log(cluster.log_path) if r[2] in digests],
            60,
            message="an item to start on a Dask worker",
        )
        _ppid, victim, victim_digest = first[0]
        os.kill(victim, signal.SIGKILL)
        final = _wait_ended(s, job_id)
        items = s.items(job_id)
    assert final.status == JobStatus.COMPLETED
    assert [i.status for i in items] == [ItemStatus.DONE] * 6
    outs = _out_files(tmp_path, job_id)
    assert [p.name for p in outs] == [f"{i:05d}-img.png" for i in range(6)]  # no .tmp-*
    for data, path in zip(images, outs, strict=True):
        assert path.read_bytes() == expected_output(data)
    killed = next(i for i, d in zip(items, images, strict=True) if digest(d) == victim_digest)
    assert killed.attempts == 2  # the death counted as an attempt in SQLite
    assert sum(i.attempts for i in items) == 7
    assert not process_running(victim)
    # The nanny brings the cluster back to two workers for the next tests.
    client = distributed.Client(cluster, set_as_default=False)
    try:
        client.wait_for_workers(2, timeout=60)
    finally:
        client.close()


def test_a_hanging_item_times_out_and_the_job_goes_on(cluster, tmp_path):
    images = [make_png(2000), make_png(2001, marker=HANG), make_png(2002), make_png(2003)]
    settings = {"item_function": "support.worker_proc:misbehave", "item_timeout": 3.0}
    with _service(tmp_path, cluster.scheduler_address, max_attempts=1, **settings) as s:
        job_id = store_job(s.store, tmp_path, images)
        s.worker.wake()
        final = _wait_ended(s, job_id)
        items = s.items(job_id)
    assert final.status == JobStatus.COMPLETED
    assert [i.status for i in items] == [
        ItemStatus.DONE,
        ItemStatus.FAILED,
        ItemStatus.DONE,
        ItemStatus.DONE,
    ]
    assert "timed out after 3 s" in items[1].error and "restarted" in items[1].error
    assert len(_out_files(tmp_path, job_id)) == 3


def test_cancel_during_a_dask_job_starts_no_pending_item(cluster, tmp_path):
    images = [make_png(3000 + i) for i in range(12)]
    with _service(
        tmp_path, cluster.scheduler_address, item_function="support.worker_proc:slow"
    ) as s:
        job_id = store_job(s.store, tmp_path, images)
        s.worker.wake()
        wait_for(lambda: s.get(job_id).processed >= 1, 60, message="a first item to end")
        cancelled = s.cancel(job_id)
        assert cancelled.status == JobStatus.CANCELLED
        wait_for(lambda: not s.worker._running, 60, message="running items to end")
        items = s.items(job_id)
        assert s.get(job_id).status == JobStatus.CANCELLED
    never = {digest(d) for d, i in zip(images, items, strict=True) if i.status == "cancelled"}
    assert never, "every item had started before the cancel"
    started = {r[2] for r in read_log(cluster.log_path)}
    assert not never & started, "a cancelled item was started"
    # At most the cluster's two threads' worth of items were in flight at the cancel.
    assert sum(i.status != "cancelled" for i in items) <= cancelled.processed + 2


def test_a_worker_with_another_photoproc_version_is_refused(cluster, tmp_path, monkeypatch):
    with PhotoService(settings=make_settings(tmp_path), start_worker=False) as s:
        job_id = store_job(s.store, tmp_path, [make_png(4000), make_png(4001)])
    monkeypatch.setattr(photoproc._version, "__version__", "0.0.0-other")
    with pytest.raises(ClusterError, match=r"on Dask worker .* but 0\.0\.0-other on the head"):
        _service(tmp_path, cluster.scheduler_address)
    monkeypatch.undo()
    with PhotoService(settings=make_settings(tmp_path), start_worker=False) as s:
        assert [i.status for i in s.items(job_id)] == [ItemStatus.PENDING] * 2
        assert not s.worker_alive()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_scheduler_is_a_clear_error_and_loses_nothing(tmp_path):
    with PhotoService(settings=make_settings(tmp_path), start_worker=False) as s:
        job_id = store_job(s.store, tmp_path, [make_png(5000)])
    address = f"tcp://127.0.0.1:{_free_port()}"
    settings = make_settings(tmp_path)
    with pytest.raises(ClusterError, match="cannot reach the Dask scheduler at " + address):
        PhotoService(
            settings=settings,
            start_worker=True,
            executor=DaskExecutor(address, connect_timeout=2),
        )
    proc = subprocess.run(
        [sys.executable, "-m", "photoproc", "worker", "--data-dir", str(tmp_path)],
        env=worker_env(PHOTOPROC_DASK=address, DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT="2s"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert f"cannot reach the Dask scheduler at {address}" in proc.stderr
    with PhotoService(settings=settings, start_worker=False) as s:
        assert s.items(job_id)[0].status == ItemStatus.PENDING


def test_photoproc_worker_dask_processes_a_job_submitted_through_the_api(cluster, tmp_path):
    """`photoproc serve --no-worker` takes the upload over HTTP; `photoproc worker --dask`
    runs it on the cluster; the results come back through the API."""
    import requests

    with photoproc_serve(tmp_path, "--no-worker") as served:
        command = [sys.executable, "-m", "photoproc", "worker", "--data-dir", str(served.data)]
        worker = subprocess.Popen(
            [*command, "--dask", cluster.scheduler_address],
            env=worker_env(PHOTOPROC_ITEM_FUNCTION="support.worker_proc:fast"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            url = served.url
            images = [(f"p{i}.png", make_png(6000 + i)) for i in range(4)]
            reply = requests.post(
                f"{url}api/upload-and-process",
                files=[("files", (name, data, "image/png")) for name, data in images],
                data={"model": "grabcut"},
                timeout=60,
            )
            assert reply.status_code == 202, reply.text
            job_id = reply.json()["job_id"]

            def ended():
                status = requests.get(f"{url}api/process-status/{job_id}", timeout=30).json()
                return status if status["status"] in ("completed", "failed", "cancelled") else None

            final = wait_for(ended, 90, interval=0.2, message="the job to end")
            assert final["status"] == "completed", final
            health = requests.get(f"{url}health", timeout=30).json()
            assert any(w["info"].get("executor") == "dask" for w in health["workers"]), health
            for index, (_name, data) in enumerate(images):
                got = requests.get(
                    f"{url}api/download-results/{job_id}",
                    params={"format": "individual", "item": index},
                    timeout=30,
                )
                assert got.status_code == 200 and got.content == expected_output(data)
            worker.send_signal(signal.SIGTERM)
            _out, err = worker.communicate(timeout=60)
            assert worker.returncode == 0, err
            assert "dask" in err and cluster.scheduler_address in err
        finally:
            stop_process(worker)
            worker.stderr.close()


def test_photoproc_process_dask_writes_what_the_local_run_writes(cluster, tmp_path, capsys):
    from photoproc.cli import main

    source = tmp_path / "in"
    (source / "sub").mkdir(parents=True)
    (source / "a.png").write_bytes(image_bytes("png", 40, 32, pattern="gradient"))
    (source / "sub" / "b.jpg").write_bytes(image_bytes("jpeg", 32, 40, pattern="gradient"))
    (source / "broken.png").write_bytes(make_png(1)[:30])
    runs = {}
    for name, extra in (("local", ["-w", "1"]), ("dask", ["--dask", cluster.scheduler_address])):
        out = tmp_path / name
        code = main(["process", str(source), "-o", str(out), "-m", "grabcut", "-q", *extra])
        assert code == 1  # broken.png failed, with its reason, in both runs
        runs[name] = {
            p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()
        }
    assert sorted(runs["dask"]) == ["a.png", "failures.json", "sub/b.png"]
    assert runs["dask"] == runs["local"]
    assert b"broken.png" in runs["dask"]["failures.json"]


def test_the_notebook_app_shows_the_cluster_it_runs_on(cluster, tmp_path):
    pytest.importorskip("ipywidgets")
    from photoproc.ui.app import PhotoApp

    with PhotoService(settings=make_settings(tmp_path / "local"), start_worker=True) as local:
        app = PhotoApp(local, title=None)
        assert app.cluster.value == ""  # local processes: nothing to show
        app.close()
    with _service(tmp_path / "dask", cluster.scheduler_address) as service:
        app = PhotoApp(service, title=None)
        try:
            assert cluster.scheduler_address in app.cluster.value
            assert "2 workers, 2 threads" in app.cluster.value
            if cluster.dashboard_link:
                assert cluster.dashboard_link.split("/status")[0] in app.cluster.value
        finally:
            app.close()
