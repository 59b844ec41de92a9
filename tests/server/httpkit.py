"""Test helpers for the server tests: a live server in a thread and small HTTP/WS clients.

The server is the real thing (``photoproc.server.app.start_server``: Tornado, the
service, its worker processes) on a free 127.0.0.1 port; clients are the
standard library's ``http.client`` and ``websocket-client``, so requests go
through real sockets exactly as curl's would.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import io
import json
import secrets
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import websocket

from photoproc.config import Settings
from photoproc.server.app import RunningServer, start_server

TERMINAL = {"completed", "failed", "cancelled"}


@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


class LiveServer:
    """``start_server`` on its own event loop in a background thread."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        future = asyncio.run_coroutine_threadsafe(
            start_server(settings, host="127.0.0.1", port=0, **kwargs), self.loop
        )
        self.running: RunningServer = future.result(timeout=120)
        self.url = self.running.url
        self.port = self.running.port
        self.service = self.running.service

    def call(self, fn: Any, *args: Any) -> Any:
        """Run ``fn(*args)`` on the server's loop (to inspect IOLoop-owned state)."""

        async def run() -> Any:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout=30)

    def stop(self) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self.running.stop(timeout=15), self.loop).result(60)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=30)
            self.loop.close()


class Api:
    """Requests to one server, optionally with a token."""

    def __init__(self, url: str, token: str | None = None) -> None:
        parts = urlsplit(url)
        self.url = url
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.token = token

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        query: dict[str, Any] | None = None,
        timeout: float = 60,
    ) -> Response:
        headers = dict(headers or {})
        if self.token and "Authorization" not in headers:
            headers["Authorization"] = f"token {self.token}"
        target = "/" + path.lstrip("/")
        if query:
            target += ("&" if "?" in target else "?") + urlencode(query)
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request(method, target, body=body, headers=headers)
            reply = conn.getresponse()
            return Response(reply.status, reply.headers, reply.read())
        finally:
            conn.close()

    def get(self, path: str, **kwargs: Any) -> Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Response:
        return self.request("POST", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Response:
        return self.request("DELETE", path, **kwargs)

    def upload(
        self,
        files: list[tuple[str, bytes]],
        fields: dict[str, Any] | None = None,
        *,
        headers: dict[str, str] | None = None,
        query: dict[str, Any] | None = None,
    ) -> Response:
        body, content_type = multipart(files, {"model": "grabcut", **(fields or {})})
        return self.post(
            "api/upload-and-process",
            body=body,
            headers={"Content-Type": content_type, **(headers or {})},
            query=query,
        )

    def wait(self, job_id: str, timeout: float = 90) -> dict[str, Any]:
        """Poll process-status until the job ends."""
        deadline = time.monotonic() + timeout
        while True:
            reply = self.get(f"api/process-status/{job_id}")
            assert reply.status == 200, reply.body
            status = reply.json()
            if status["status"] in TERMINAL:
                return status
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} did not end: {status}")
            time.sleep(0.2)

    def ws_url(self, path: str, **query: Any) -> str:
        query = {k: v for k, v in query.items() if v is not None}
        suffix = f"?{urlencode(query)}" if query else ""
        return f"ws://{self.host}:{self.port}/{path.lstrip('/')}{suffix}"

    def ws(self, job_id: str, *, origin: str | None = None, **query: Any) -> websocket.WebSocket:
        """An open WebSocket on ``ws/job/{job_id}`` (raises on a refused handshake)."""
        if self.token and "token" not in query:
            query["token"] = self.token
        options: dict[str, Any] = {"timeout": 60}
        if origin is not None:
            options["origin"] = origin
        else:
            options["suppress_origin"] = True
        return websocket.create_connection(self.ws_url(f"ws/job/{job_id}", **query), **options)


def multipart(
    files: list[tuple[str, bytes]], fields: dict[str, Any] | None = None, *, field: str = "files"
) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body (repeated ``files`` parts) and its Content-Type."""
    boundary = "photoproc-test-" + secrets.token_hex(8)
    out = io.BytesIO()
    for name, value in (fields or {}).items():
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode())
        out.write(str(value).encode() + b"\r\n")
    for filename, data in files:
        quoted = filename.replace('"', "%22")
        out.write(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; '
            f'filename="{quoted}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
        )
        out.write(data + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def ws_messages(ws: websocket.WebSocket, timeout: float = 90) -> list[dict[str, Any]]:
    """JSON messages until the server closes the socket (after the final one)."""
    messages = []
    deadline = time.monotonic() + timeout
    ws.settimeout(timeout)
    with closing_ws(ws):
        while time.monotonic() < deadline:
            try:
                opcode, data = ws.recv_data()
            except websocket.WebSocketConnectionClosedException:
                break
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                break
            messages.append(json.loads(data))
        else:
            raise AssertionError("the WebSocket was not closed after the final message")
    return messages


@contextlib.contextmanager
def closing_ws(ws: websocket.WebSocket) -> Iterator[websocket.WebSocket]:
    """Close the socket even when the server closed the WebSocket first."""
    try:
        yield ws
    finally:
        with contextlib.suppress(Exception):
            ws.close(timeout=2)
        ws.shutdown()


def zip_members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.testzip() is None
        return {info.filename: zf.read(info) for info in zf.infolist()}
