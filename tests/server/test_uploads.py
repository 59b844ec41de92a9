"""Upload reception: the streaming multipart parser, body and count limits, hostile files."""

from __future__ import annotations

import contextlib
import socket
import time

import pytest
from httpkit import Api, multipart
from support.archives import zip_bytes
from support.images import header_only, object_on_background

from photoproc.errors import UploadTooLargeError
from photoproc.server.uploads import MalformedUploadError, MultipartUpload, boundary_of

# -- the parser on its own -------------------------------------------------------------------


def _parse(body: bytes, content_type: str, spool, *, chunk: int = 7, **limits):
    upload = MultipartUpload(boundary_of(content_type), spool, max_files=10, **limits)
    for start in range(0, len(body), chunk):
        upload.feed(body[start : start + chunk])
    return upload.finish()


def test_file_parts_stream_to_numbered_files_and_fields_are_kept(tmp_path):
    body, ctype = multipart(
        [("a.jpg", b"A" * 1000), ("../../etc/passwd", b"\r\n--not-a-boundary\r\n")],
        {"model": "grabcut", "remove_bg": "true"},
    )
    result = _parse(body, ctype, tmp_path / "spool", chunk=3)
    assert [f.name for f in result.files] == ["a.jpg", "../../etc/passwd"]
    # On disk the parts are named by position, never by the client's name.
    assert [f.path.name for f in result.files] == ["00000.part", "00001.part"]
    assert all(f.path.parent == tmp_path / "spool" for f in result.files)
    assert result.files[0].path.read_bytes() == b"A" * 1000
    assert result.files[1].path.read_bytes() == b"\r\n--not-a-boundary\r\n"
    assert result.fields == {"model": ["grabcut"], "remove_bg": ["true"]}
    assert result.bytes_received == len(body)


def test_utf8_file_names_survive(tmp_path):
    body, ctype = multipart([("café déjà.jpg", b"x")])
    result = _parse(body, ctype, tmp_path / "s")
    assert result.files[0].name == "café déjà.jpg"


def test_empty_file_input_is_not_a_file(tmp_path):
    body, ctype = multipart([("", b"")])
    assert _parse(body, ctype, tmp_path).files == []


def test_too_many_files_stop_the_parse(tmp_path):
    body, ctype = multipart([(f"{i}.jpg", b"x") for i in range(4)])
    with pytest.raises(UploadTooLargeError, match="more than 3 files"):
        upload = MultipartUpload(boundary_of(ctype), tmp_path, max_files=3)
        upload.feed(body)


def test_byte_limit_counts_what_arrives(tmp_path):
    body, ctype = multipart([("a.jpg", b"x" * 5000)])
    with pytest.raises(UploadTooLargeError):
        _parse(body, ctype, tmp_path, chunk=1000, max_bytes=4000)


def test_truncated_body_is_malformed(tmp_path):
    body, ctype = multipart([("a.jpg", b"x" * 100)])
    with pytest.raises(MalformedUploadError, match="incomplete"):
        _parse(body[:-20], ctype, tmp_path)


def test_discard_removes_everything(tmp_path):
    body, ctype = multipart([("a.jpg", b"x" * 100)])
    upload = MultipartUpload(boundary_of(ctype), tmp_path / "spool", max_files=5)
    upload.feed(body[:150])  # a file part is open
    upload.discard()
    assert not (tmp_path / "spool").exists()


@pytest.mark.parametrize(
    "ctype", ["application/json", "multipart/form-data", "text/plain; boundary=x", None]
)
def test_not_multipart(ctype):
    assert boundary_of(ctype) is None


# -- through the server --------------------------------------------------------------------


@pytest.fixture(scope="module")
def small(server_factory):
    """A server with small limits (a 2 MB body, 3 files, 1 MP images)."""
    return server_factory(
        settings={"max_upload_bytes": 2_000_000, "max_upload_files": 3, "max_pixels": 1_000_000}
    )


def _spool_gone(server, timeout: float = 20) -> bool:
    """The spool is removed off the event loop, just after the reply: wait for it (bounded)."""
    deadline = time.monotonic() + timeout
    while any((server.settings.data_dir / "uploads").glob("*/*")):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _raw_request(port: int, head: bytes, body: bytes = b"", *, timeout: float = 10) -> bytes:
    """Send ``head`` (+ ``body``) on a raw socket; everything the server sends until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head + body)
        chunks = []
        while True:
            try:
                data = sock.recv(65536)
            except TimeoutError:
                raise AssertionError(f"server kept the connection open: {chunks!r}") from None
            if not data:
                return b"".join(chunks)
            chunks.append(data)


def test_oversize_body_is_refused_from_content_length_before_reading(small):
    head = (
        b"POST /api/upload-and-process HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: multipart/form-data; boundary=xyz\r\n"
        b"Content-Length: 50000000000\r\n\r\n"
    )
    # Nothing of the 50 GB body is sent: the answer must come from the headers alone,
    # and the server must then close the connection rather than wait for the body.
    reply = _raw_request(small.port, head)
    status_line, _, rest = reply.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 413"), reply
    assert b'"error": "too_large"' in rest
    # The server is still answering.
    assert Api(small.url).get("health").status == 200


def test_oversize_body_with_expect_continue_gets_no_continue(small):
    head = (
        b"POST /api/upload-and-process HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: multipart/form-data; boundary=xyz\r\n"
        b"Expect: 100-continue\r\nContent-Length: 3000000\r\n\r\n"
    )
    reply = _raw_request(small.port, head)
    assert reply.startswith(b"HTTP/1.1 413"), reply
    assert b"100 (Continue)" not in reply


def test_chunked_body_over_the_limit_is_cut_off(small):
    # No Content-Length: the limit is enforced while the body streams in.
    body, ctype = multipart([("big.jpg", b"x" * 2_500_000)])
    chunked = b""
    for start in range(0, len(body), 65536):
        piece = body[start : start + 65536]
        chunked += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    chunked += b"0\r\n\r\n"
    head = (
        b"POST /api/upload-and-process HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: " + ctype.encode() + b"\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", small.port), timeout=10) as sock:
        # The server may answer and close while we are still sending.
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            sock.sendall(head + chunked)
        try:
            reply = sock.recv(65536)
        except ConnectionResetError:
            # The 413 is written before the close; a reset can only discard it if it came
            # while our unread body was still queued, so an empty read must be a reset.
            reply = None
    # A clean close without an answer, or any other answer, fails.
    assert reply is None or reply.startswith(b"HTTP/1.1 413"), reply
    assert Api(small.url).get("health").status == 200
    assert _spool_gone(small), "spool not cleaned"


def test_too_many_files_is_413(small):
    image, _ = object_on_background(64, 48, fmt="png")
    reply = Api(small.url).upload([(f"{i}.png", image) for i in range(4)])
    assert reply.status == 413, reply.body
    assert reply.json()["error"] == "too_large"


def test_bad_and_hostile_files_fail_alone(small):
    api = Api(small.url)
    good, _ = object_on_background(96, 72, fmt="jpeg")
    hostile_zip = zip_bytes(
        {
            "../escape.jpg": good,
            "/abs.jpg": good,
            "inner.zip": zip_bytes({"x.jpg": good}),
            "ok/fine.jpg": good,
            "__MACOSX/._fine.jpg": b"junk",
        }
    )
    files = [
        ("good.jpg", good),
        ("truncated.jpg", good[: len(good) // 3]),
        ("huge.png", header_only("png", 20_000, 20_000)),
    ]
    reply = api.upload([*files[:2], ("batch.zip", hostile_zip)])
    assert reply.status == 202, reply.body
    first = api.wait(reply.json()["job_id"])
    reply = api.upload([("notes.txt", b"just text"), ("empty.jpg", b"")])
    assert reply.status == 415  # nothing usable at all: no job
    assert reply.json()["error"] == "no_images"
    reply = api.upload([files[0], files[2], ("notes.txt", b"just text")])
    second = api.wait(reply.json()["job_id"])

    by_name = {item["name"]: item for item in first["items"] + second["items"]}
    assert by_name["good.jpg"]["status"] == "done"
    assert by_name["batch/ok/fine.jpg"]["status"] == "done"
    assert by_name["truncated.jpg"]["status"] == "failed" and by_name["truncated.jpg"]["error"]
    assert by_name["huge.png"]["status"] == "failed" and "limit" in by_name["huge.png"]["error"]
    assert by_name["notes.txt"]["status"] == "failed"
    skipped = [item for item in first["items"] if item["status"] == "failed"]
    reasons = " ".join(item["error"] for item in skipped)
    assert "escape" in reasons or ".." in reasons
    assert "nested archive" in reasons
    assert not any("MACOSX" in item["name"] for item in first["items"])
    assert first["status"] == second["status"] == "completed"
    # Nothing escaped the data dir, and the spool is gone.
    assert not (small.settings.data_dir.parent / "escape.jpg").exists()
    assert api.get("health").json()["status"] == "ok"
    assert _spool_gone(small)


def test_unicode_file_name_is_kept_for_display(server):
    api = Api(server.url)
    image, _ = object_on_background(64, 48, fmt="png")
    reply = api.upload([("Ünïcödé 照片.png", image)])
    assert reply.status == 202, reply.body
    status = api.wait(reply.json()["job_id"])
    assert [item["name"] for item in status["items"]] == ["Ünïcödé 照片.png"]
