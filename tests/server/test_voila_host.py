"""The Voilà host: a rendered notebook and the photoproc API on one port, one process.

Started as a real subprocess (``python -m photoproc.server.voila_app NOTEBOOK``) on a
free port; stopped with SIGTERM by PID at the end.
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

import nbformat
import pytest
from httpkit import Api, ws_messages
from support.images import object_on_background

MARKER = "voila-says-hello-42"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def voila(isolated_env, tmp_path_factory):
    folder = tmp_path_factory.mktemp("voila")
    notebook = folder / "app.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import os\n"
            f"print('{MARKER}')\n"
            "print('data dir:', os.environ.get('PHOTOPROC_DATA_DIR'))"
        )
    ]
    nbformat.write(nb, notebook)
    data = folder / "data"
    port = _free_port()
    log = (folder / "voila.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "photoproc.server.voila_app",
            str(notebook),
            f"--port={port}",
            "--Voila.port_retries=0",
            "--no-browser",
            f"--PhotoprocVoila.data_dir={data}",
            "--PhotoprocVoila.workers=1",
        ],
        cwd=folder,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PHOTOPROC_DATA_DIR": str(folder / "not-this-one")},
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(url + "health", timeout=5) as reply:
                if reply.status == 200:
                    break
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError((folder / "voila.log").read_text())
        time.sleep(0.3)
    yield {"url": url, "data": data, "proc": proc, "log": folder / "voila.log"}
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()


def test_notebook_and_api_share_one_port(voila):
    with urllib.request.urlopen(voila["url"], timeout=120) as reply:
        page = reply.read().decode()
    assert MARKER in page
    # The kernel was given the server's data dir, so the notebook shares its queue.
    assert f"data dir: {voila['data']}" in page
    api = Api(voila["url"])
    health = api.get("health").json()
    assert health["status"] == "ok" and health["worker_alive"] is True
    info = api.get("api/processing-info").json()
    assert any(model["name"] == "grabcut" for model in info["models"])
    assert api.get("api/openapi.json").json()["servers"] == [{"url": "/"}]
    assert api.get("api/process-status/nope").status == 404


def test_a_job_runs_in_the_voila_process(voila):
    api = Api(voila["url"])
    image, _ = object_on_background(80, 60, fmt="jpeg", noise=3)
    reply = api.upload([("a.jpg", image)])
    assert reply.status == 202, reply.body
    job_id = reply.json()["job_id"]
    messages = ws_messages(api.ws(job_id))
    assert messages[-1]["status"] == "completed"
    assert (voila["data"] / "jobs" / job_id / "out").is_dir()
    archive = api.get(f"api/download-results/{job_id}")
    assert archive.status == 200 and archive.header("Content-Type") == "application/zip"


def test_page_route_is_mounted(voila):
    reply = Api(voila["url"]).get("photoproc")
    assert reply.status == 301
    assert reply.header("Location") == "/photoproc/"


def test_sigterm_stops_gracefully(voila):
    proc = voila["proc"]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    text = voila["log"].read_text()
    assert "Traceback" not in text, text
    jobs = json.loads(json.dumps(os.listdir(voila["data"] / "jobs")))
    assert jobs  # the data outlives the server
