"""Token auth on/off, origin policy (CSRF, WebSocket), CORS allowlist, safe downloads,
and the ``photoproc serve`` command's own rules (token on a public address, graceful stop)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest
import websocket
from httpkit import Api, ws_messages
from support.images import object_on_background

from photoproc.server.app import resolve_token
from photoproc.server.auth import ServerAuth, is_loopback
from photoproc.server.handler_base import content_disposition

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def locked(server_factory):
    return server_factory(token=TOKEN)


def _photo() -> bytes:
    return object_on_background(64, 48, fmt="jpeg")[0]


@pytest.mark.parametrize(
    "path", ["health", "api/jobs", "api/processing-info", "api/process-status/x"]
)
def test_token_required(locked, path):
    reply = Api(locked.url).get(path)
    assert reply.status == 401
    assert reply.json()["error"] == "unauthorized"
    assert reply.header("WWW-Authenticate").startswith("token")


def test_token_accepted_in_header_or_query(locked):
    anonymous = Api(locked.url)
    assert anonymous.get("health", headers={"Authorization": f"token {TOKEN}"}).status == 200
    assert anonymous.get("health", headers={"Authorization": f"Bearer {TOKEN}"}).status == 200
    assert anonymous.get("health", query={"token": TOKEN}).status == 200
    assert anonymous.get("health", headers={"Authorization": "token wrong"}).status == 401
    assert anonymous.get("health", query={"token": TOKEN[:-1]}).status == 401
    # The upload is refused before its body is read.
    refused = anonymous.upload([("a.jpg", _photo())])
    assert refused.status == 401


def test_token_workflow_and_websocket(locked):
    api = Api(locked.url, token=TOKEN)
    reply = api.upload([("a.jpg", _photo())])
    assert reply.status == 202, reply.body
    job_id = reply.json()["job_id"]
    with pytest.raises(websocket.WebSocketBadStatusException) as caught:
        Api(locked.url).ws(job_id)
    assert caught.value.status_code == 401
    messages = ws_messages(api.ws(job_id))  # ?token=… as a browser would
    assert messages[-1]["status"] == "completed"


def test_documents_are_public(locked):
    anonymous = Api(locked.url)
    document = anonymous.get("api/openapi.json")
    assert document.status == 200
    assert "token" in document.json()["components"]["securitySchemes"]


def test_no_token_needed_on_an_open_loopback_server(api):
    assert api.get("health").status == 200
    assert "security" not in api.get("api/openapi.json").json()


def test_cross_site_writes_are_refused(api):
    foreign = {"Origin": "https://evil.example"}
    reply = api.upload([("a.jpg", _photo())], headers=foreign)
    assert reply.status == 403 and reply.json()["error"] == "forbidden_origin"
    assert (
        api.post(f"api/cancel-job/{'0' * 8}-0000-4000-8000-{'0' * 12}", headers=foreign).status
        == 403
    )
    same = {"Origin": api.url.rstrip("/")}
    assert api.upload([("a.jpg", _photo())], headers=same).status == 202


def test_foreign_host_names_are_refused_without_a_token(api, locked):
    # DNS rebinding: evil.example resolved to 127.0.0.1, same "origin" as the page.
    rebinding = {"Host": "evil.example", "Origin": "http://evil.example"}
    reply = api.get("api/jobs", headers=rebinding)
    assert reply.status == 403 and reply.json()["error"] == "forbidden_host"
    assert api.get("api/jobs", headers={"Host": f"localhost:{api.port}"}).status == 200
    # With a token the name does not matter: the token does.
    assert Api(locked.url, token=TOKEN).get("api/jobs", headers=rebinding).status == 200


def test_cors_is_off_by_default(api):
    reply = api.get("health", headers={"Origin": "https://app.example"})
    assert reply.status == 200
    assert reply.header("Access-Control-Allow-Origin") is None
    preflight = api.request("OPTIONS", "api/upload-and-process", headers={"Origin": "https://a.b"})
    assert preflight.status == 403


def test_cors_allowlist(server_factory):
    api = Api(server_factory(cors_origins=["https://app.example"]).url)
    allowed = {"Origin": "https://app.example"}
    reply = api.get("health", headers=allowed)
    assert reply.header("Access-Control-Allow-Origin") == "https://app.example"
    assert "Origin" in reply.header("Vary")
    preflight = api.request(
        "OPTIONS",
        "api/upload-and-process",
        headers={**allowed, "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status == 204
    assert "POST" in preflight.header("Access-Control-Allow-Methods")
    error = api.get("api/process-status/nope", headers=allowed)
    assert error.status == 404
    assert error.header("Access-Control-Allow-Origin") == "https://app.example"
    other = api.get("health", headers={"Origin": "https://other.example"})
    assert other.header("Access-Control-Allow-Origin") is None
    assert api.upload([("a.jpg", _photo())], headers=allowed).status == 202


def test_api_responses_are_nosniff_and_not_cached(api):
    for path in ("health", "api/jobs", "api/nope", "api/process-status/bad"):
        reply = api.get(path)
        assert reply.header("X-Content-Type-Options") == "nosniff", path
        assert reply.header("Content-Type").startswith("application/json"), path


def test_download_names_are_safe_and_rfc6266():
    value = content_disposition('../we"ird/näme;\r\nx.png')
    assert "\r" not in value and "\n" not in value
    fallback = re.search(r'filename="([^"]*)"', value).group(1)
    assert fallback.isascii() and "/" not in fallback and '"' not in fallback
    assert value.endswith("filename*=UTF-8''n%C3%A4me%3B%0D%0Ax.png")


def test_token_rules():
    assert resolve_token("127.0.0.1", None) == (None, False)
    assert resolve_token("localhost", "t") == ("t", False)
    token, generated = resolve_token("0.0.0.0", None)
    assert generated and len(token) >= 24
    assert resolve_token("192.168.1.5", "given") == ("given", False)
    assert is_loopback("::1") and not is_loopback("::")
    auth = ServerAuth.create("abc", ["HTTPS://App.Example/"])
    assert auth.origin_allowed("https://app.example", "127.0.0.1:5000")
    assert auth.origin_allowed(None, "127.0.0.1:5000")
    assert not auth.origin_allowed("null", "127.0.0.1:5000")
    assert auth.token_matches(None, "abc") and not auth.token_matches("Basic abc", None)


def _serve(tmp_path, *args: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "PHOTOPROC_DATA_DIR": str(tmp_path / "data"),
        "PHOTOPROC_WORKERS": "1",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "photoproc", "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


def _read_until(proc: subprocess.Popen, pattern: str, timeout: float = 60) -> re.Match:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        match = re.search(pattern, line)
        if match:
            return match
    raise AssertionError(f"{pattern!r} not printed; got: {''.join(seen)}")


def test_serve_command_with_token_and_graceful_stop(tmp_path):
    proc = _serve(tmp_path, "--token", TOKEN)
    try:
        url = _read_until(proc, r"serving (http://127\.0\.0\.1:\d+/)").group(1)
        _read_until(proc, "token required")
        assert Api(url).get("health").status == 401
        api = Api(url, token=TOKEN)
        assert api.get("health").json()["worker_alive"] is True
        job_id = api.upload([("a.jpg", _photo())]).json()["job_id"]
        assert api.wait(job_id)["status"] == "completed"
        proc.send_signal(signal.SIGTERM)
        _read_until(proc, "photoproc: stopped", timeout=60)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def test_serve_command_generates_a_token_off_loopback(tmp_path):
    # 0.0.0.0 would be reachable from other machines: a token is made up and printed.
    proc = _serve(tmp_path, "--host", "0.0.0.0", "--no-worker")
    try:
        port = _read_until(proc, r"serving http://0\.0\.0\.0:(\d+)/").group(1)
        token = _read_until(proc, r"'Authorization: token ([\w-]+)'").group(1)
        api = Api(f"http://127.0.0.1:{port}/")
        assert api.get("api/jobs").status == 401
        assert Api(api.url, token=token).get("api/jobs").status == 200
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
