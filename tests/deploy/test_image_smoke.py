"""Runs the image's CMD and HEALTHCHECK, as the Dockerfile writes them, without Docker.

The commands and the environment are read from the Dockerfile's runtime stage;
the volumes are mapped to temporary folders (every ENV value under a VOLUME
path is rewritten), the server listens on 127.0.0.1 on a free port instead of
0.0.0.0, and ``photoproc`` is this interpreter's ``python -m photoproc``
instead of the image's /opt/venv. Then: the server answers, the health check
exits 0, an upload is processed into the data volume, a wrong token makes the
health check fail, and once the server is stopped it fails.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from dockerparse import exec_form, healthcheck_command, stages
from support.images import object_on_background

TOKEN = "smoke-test-token"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _local(command: list[str]) -> list[str]:
    assert command[0] == "photoproc", command
    return [sys.executable, "-m", "photoproc", *command[1:]]


@pytest.fixture
def image(tmp_path):
    """``(cmd, healthcheck, env)`` of the runtime stage, volumes mapped under tmp_path."""
    runtime = stages()[-1]
    volumes = exec_form(runtime.last("VOLUME").value)
    image_env = runtime.env()
    image_env.pop("PATH")  # the image's /opt/venv is this interpreter here
    mapped = {}
    for volume in volumes:
        local = tmp_path / volume.strip("/").replace("/", "_")
        local.mkdir()
        mapped[volume] = str(local)
    for key, value in image_env.items():
        for volume, local in mapped.items():
            if value == volume or value.startswith(volume + "/"):
                image_env[key] = local + value[len(volume) :]
    assert image_env["PHOTOPROC_DATA_DIR"] == mapped["/data"]
    assert image_env["U2NET_HOME"] == mapped["/models"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PHOTOPROC_", "U2NET_"))}
    env.update(image_env)
    env.update(
        PHOTOPROC_HOST="127.0.0.1",  # tests listen on loopback only (the image: 0.0.0.0)
        PHOTOPROC_PORT=str(_free_port()),
        PHOTOPROC_WORKERS="1",
        PHOTOPROC_OFFLINE="1",
        NUMBA_CACHE_DIR=str(tmp_path / "numba"),
    )
    _, health = healthcheck_command(runtime.last("HEALTHCHECK"))
    cmd = exec_form(runtime.last("CMD").value)
    return _local(cmd), _local(health), env


def _run(command, env, timeout=60):
    return subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def _get(url: str, token: str | None, data: bytes | None = None, headers=None):
    request = urllib.request.Request(url, data=data, headers=headers or {})
    if token:
        request.add_header("Authorization", f"token {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            body = reply.read()
            is_json = reply.headers.get_content_type() == "application/json"
            return reply.status, json.loads(body) if is_json else {"bytes": len(body)}
    except urllib.error.HTTPError as exc:
        return exc.code, {}


def _upload(url: str, token: str, image: bytes) -> tuple[int, dict]:
    boundary = "photoproc-smoke-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\ngrabcut\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="a.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + image
        + f"\r\n--{boundary}--\r\n".encode()
    )
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    return _get(url, token, body, headers)


def test_cmd_refuses_to_start_without_a_token(image):
    cmd, _, env = image
    env.pop("PHOTOPROC_TOKEN", None)
    result = _run(cmd, env)
    assert result.returncode == 2
    assert "PHOTOPROC_TOKEN" in result.stderr


def test_cmd_serves_and_healthcheck_follows_it(image, tmp_path):
    cmd, health, env = image
    env["PHOTOPROC_TOKEN"] = TOKEN
    base = f"http://127.0.0.1:{env['PHOTOPROC_PORT']}"
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        # Healthy once the server is up (the worker's processes may still be starting).
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, (tmp_path / "server.log").read_text()
            result = _run(health, env)
            if result.returncode == 0:
                break
            assert time.monotonic() < deadline, result.stderr
            time.sleep(0.5)
        assert "ok" in result.stdout

        status, body = _get(f"{base}/health", TOKEN)
        assert status == 200 and body["status"] == "ok" and body["db"] == "ok"
        assert body["providers"] == ["CPUExecutionProvider"]  # PHOTOPROC_DEVICE=auto, no GPU
        status, info = _get(f"{base}/api/processing-info", TOKEN)
        assert status == 200 and info["providers"] == ["CPUExecutionProvider"]
        assert _get(f"{base}/health", None)[0] in (401, 403)
        # an image goes through the queue and the worker's process to a result in /data
        image, _ = object_on_background(96, 72)
        status, job = _upload(f"{base}/api/upload-and-process", TOKEN, image)
        assert status == 202, job
        deadline = time.monotonic() + 120
        while True:
            status, state = _get(f"{base}/api/process-status/{job['job_id']}", TOKEN)
            if state.get("status") in ("completed", "failed", "cancelled"):
                break
            assert time.monotonic() < deadline, state
            time.sleep(0.3)
        assert state["status"] == "completed", state
        assert [item["outputs"] for item in state["items"]] == [1]
        status, archive = _get(f"{base}/api/download-results/{job['job_id']}?format=zip", TOKEN)
        assert status == 200 and archive["bytes"] > 100
        assert (Path(env["PHOTOPROC_DATA_DIR"]) / "jobs" / job["job_id"]).is_dir()
        # the database lives in the mapped /data volume
        assert (Path(env["PHOTOPROC_DATA_DIR"]) / "photoproc.db").is_file()

        wrong = _run(health, {**env, "PHOTOPROC_TOKEN": "not-the-token"})
        assert wrong.returncode != 0, wrong.stdout

        server.send_signal(signal.SIGTERM)  # what `docker stop` sends
        assert server.wait(timeout=90) == 0, (tmp_path / "server.log").read_text()
        stopped = _run(health, env)
        assert stopped.returncode != 0
        assert "refused" in stopped.stderr.lower()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(timeout=30)
        log.close()
