"""The jupyter_server extension: the same routes under ``{base_url}photoproc/`` with
Jupyter's auth, through pytest-jupyter's real server (``jp_fetch``, ``jp_ws_fetch``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from httpkit import multipart, zip_members
from pytest_jupyter.jupyter_server import *  # noqa: F403 - the jp_* fixtures, this module only
from support.images import object_on_background
from traitlets.config import Config

import photoproc

EXTENSION = "photoproc.server.extension"
CONFIG_JSON = Path(__file__).parents[2] / "jupyter-config/jupyter_server_config.d/photoproc.json"


@pytest.fixture
def jp_server_config(tmp_path):
    page = tmp_path / "page"
    page.mkdir()
    (page / "index.html").write_text("<!doctype html><title>photoproc page</title>")
    return Config(
        {
            "ServerApp": {"jpserver_extensions": {EXTENSION: True}},
            "PhotoprocExtension": {
                "data_dir": str(tmp_path / "photoproc-data"),
                "workers": 1,
                "page_dir": str(page),
            },
        }
    )


@pytest.fixture
def run(jp_asyncio_loop):
    """Run a coroutine on the server's loop (the tests themselves stay synchronous)."""
    return jp_asyncio_loop.run_until_complete


def _fetch(run, jp_fetch, *parts, **kwargs):
    return run(jp_fetch("photoproc", *parts, raise_error=False, **kwargs))


def test_extension_is_discoverable_from_the_package():
    # The shipped config enables "photoproc": the package itself must name the extension.
    assert json.loads(CONFIG_JSON.read_text())["ServerApp"]["jpserver_extensions"] == {
        "photoproc": True
    }
    points = photoproc._jupyter_server_extension_points()
    assert points[0]["module"] == EXTENSION


def test_api_answers_under_the_base_url(jp_fetch, run, jp_base_url):
    health = _fetch(run, jp_fetch, "health")
    assert health.code == 200
    assert json.loads(health.body)["status"] == "ok"
    info = json.loads(_fetch(run, jp_fetch, "api", "processing-info").body)
    assert any(m["name"] == "grabcut" and m["installed"] for m in info["models"])
    document = json.loads(_fetch(run, jp_fetch, "api", "openapi.json").body)
    assert document["servers"] == [{"url": f"{jp_base_url}photoproc"}]
    missing = _fetch(run, jp_fetch, "api", "process-status", "not-a-job")
    assert missing.code == 404 and json.loads(missing.body)["error"] == "job_not_found"
    assert missing.headers["Content-Type"].startswith("application/json")


def test_jupyter_auth_applies(jp_fetch, run):
    anonymous = {"Authorization": ""}
    assert _fetch(run, jp_fetch, "health", headers=anonymous).code == 403
    body, ctype = multipart([("a.jpg", b"x")], {"model": "grabcut"})
    refused = _fetch(
        run,
        jp_fetch,
        "api",
        "upload-and-process",
        method="POST",
        body=body,
        headers={**anonymous, "Content-Type": ctype},
    )
    assert refused.code == 403
    page = run(jp_fetch("photoproc/", headers=anonymous, raise_error=False, follow_redirects=False))
    assert page.code == 302 and "/login" in page.headers["Location"]


def test_page_is_served_with_an_xsrf_cookie(jp_fetch, run, jp_base_url):
    redirect = run(
        jp_fetch("photoproc", raise_error=False, follow_redirects=False)
    )  # no trailing slash
    assert redirect.code in (301, 302)
    assert redirect.headers["Location"].endswith(f"{jp_base_url}photoproc/")
    # (pytest-jupyter's client cannot follow redirects: ask for the slash directly.)
    page = run(jp_fetch("photoproc/", raise_error=False, follow_redirects=False))
    assert page.code == 200 and b"photoproc page" in page.body
    assert "_xsrf" in page.headers.get("Set-Cookie", "")


def test_upload_progress_and_download(jp_fetch, jp_ws_fetch, run):
    image, _ = object_on_background(80, 60, fmt="jpeg", noise=3)
    body, ctype = multipart([("a.jpg", image), ("b.jpg", image)], {"model": "grabcut"})
    reply = _fetch(
        run,
        jp_fetch,
        "api",
        "upload-and-process",
        method="POST",
        body=body,
        headers={"Content-Type": ctype},
    )
    assert reply.code == 202, reply.body
    job_id = json.loads(reply.body)["job_id"]

    async def follow():
        ws = await jp_ws_fetch("photoproc", "ws", "job", job_id)
        messages = []
        try:
            while (text := await ws.read_message()) is not None:
                messages.append(json.loads(text))
        finally:
            ws.close()
        return messages

    messages = run(follow())
    assert messages[-1]["event"] == "final"
    assert messages[-1]["progress"]["percentage"] == 100.0
    assert messages[-1]["status"] == "completed"
    archive = _fetch(run, jp_fetch, "api", "download-results", job_id, params={"format": "zip"})
    assert archive.code == 200
    assert archive.headers["Content-Type"] == "application/zip"
    assert sorted(zip_members(archive.body)) == ["a.png", "b.png"]
    one = _fetch(
        run,
        jp_fetch,
        "api",
        "download-results",
        job_id,
        params={"format": "individual", "item": "1"},
    )
    assert one.code == 200 and one.headers["Content-Type"] == "image/png"
    assert one.headers["X-Content-Type-Options"] == "nosniff"
