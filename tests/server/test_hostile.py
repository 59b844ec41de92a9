"""Hostile uploads against a real server on 127.0.0.1: a loop that never parses, slow bodies,
and refusals whose status code and JSON say the cause and the entry to blame."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pytest
from httpkit import Api, multipart
from support.archives import bomb_zip, image_bytes, many_entries_zip, zip_bytes

from photoproc.ingest import IngestLimits
from photoproc.server.uploads import BodyPace, MultipartUpload

pytestmark = pytest.mark.timeout(120)

JPG = image_bytes(".jpg", size=24, seed=3)


def spool_files(server) -> list[Path]:
    return [p for p in (server.settings.data_dir / "uploads").glob("*/*") if p.is_file()]


def wait_until(predicate, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def send_in_background(port: int, body: bytes, ctype: str) -> tuple[threading.Thread, list]:
    """POST ``body`` from a thread; the reply (status, JSON) lands in the returned list."""
    replies: list = []

    def post() -> None:
        api = Api(f"http://127.0.0.1:{port}/")
        reply = api.post("api/upload-and-process", body=body, headers={"Content-Type": ctype})
        replies.append((reply.status, reply.json() if reply.body else None))

    thread = threading.Thread(target=post, daemon=True)
    thread.start()
    return thread, replies


# -- the event loop never parses ----------------------------------------------------------------


def test_health_answers_while_a_body_is_being_parsed(server, monkeypatch):
    # Parsing is held up (a slow disk, a body of 10,001 tiny parts) until the test says so:
    # if the loop did the parsing, it could answer nothing until then.
    gate = threading.Event()
    parsing = threading.Event()
    feed = MultipartUpload.feed

    def held_feed(self, chunk):
        parsing.set()
        gate.wait(60)
        feed(self, chunk)

    monkeypatch.setattr(MultipartUpload, "feed", held_feed)
    body, ctype = multipart([("a.jpg", JPG)], {"model": "grabcut"})
    thread, replies = send_in_background(server.port, body, ctype)
    try:
        assert parsing.wait(30), "the upload never reached the parser"
        api = Api(server.url)
        answered = [api.get("health", timeout=10).status for _ in range(5)]
        assert answered == [200] * 5
        assert replies == []  # the upload is still being parsed
    finally:
        gate.set()
        thread.join(60)
    assert replies and replies[0][0] == 202, replies


def test_a_10001_part_body_and_50_uploads_leave_health_answering(server_factory):
    server = server_factory()
    api = Api(server.url)
    hostile, hostile_type = multipart([(f"p{i}.jpg", b"x") for i in range(10_001)])
    normal, normal_type = multipart([("one.jpg", JPG)], {"model": "grabcut"})
    threads = [send_in_background(server.port, hostile, hostile_type)]
    threads += [send_in_background(server.port, normal, normal_type) for _ in range(50)]
    health = []
    while any(t.is_alive() for t, _ in threads):
        health.append(api.get("health", timeout=30).status)
    for thread, _ in threads:
        thread.join(60)
    assert set(health) <= {200} and health, health
    status, body = threads[0][1][0]
    assert status == 413 and body["error"] == "too_large", body
    assert "10000 files" in body["message"]
    assert [r[0][0] for _, r in threads[1:]] == [202] * 50
    assert wait_until(lambda: not spool_files(server)), spool_files(server)


def test_every_part_counts_even_empty_ones(tmp_path):
    # Empty file inputs (filename="") create no file, but a million of them must not
    # keep the parser busy: parts are counted as they begin.
    body, ctype = multipart([("", b"")] * 300)
    upload = MultipartUpload(ctype.split("boundary=")[1].encode(), tmp_path, max_files=10)
    with pytest.raises(Exception, match=r"more than 210 parts in one upload"):
        upload.feed(body)
    assert not any(tmp_path.iterdir())


# -- slow bodies --------------------------------------------------------------------------------


def test_body_pace_rule_with_a_driven_clock():
    pace = BodyPace(idle_timeout=10, min_rate=100, now=0)
    pace.received(500, 1)
    assert pace.problem(9) is None
    assert "no body data for 10 s" in pace.problem(11)
    pace = BodyPace(idle_timeout=10, min_rate=100, now=0)
    for t in range(1, 11):
        pace.received(150, t)  # 150 B/s: fine
    assert pace.problem(10) is None
    for t in range(11, 21):
        pace.received(50, t)  # 50 B/s over the next window: too slow, though never idle
    assert "under the minimum of 100 bytes/s" in pace.problem(20)


@pytest.fixture(scope="module")
def impatient(server_factory):
    """A server that drops an upload body idle for 1 s or slower than 200 bytes/s."""
    return server_factory(settings={"body_idle_timeout": 1.0, "body_min_rate": 200.0})


@pytest.mark.parametrize("trickle", [0.25, None], ids=["one-byte-trickle", "silent"])
def test_a_slow_body_is_cut_off_and_its_spool_file_removed(impatient, trickle):
    body, ctype = multipart([("slow.jpg", JPG)], {"model": "grabcut"})
    first_file_byte = body.index(JPG[:16]) + 16  # the part's headers and a little data
    head = (
        "POST /api/upload-and-process HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", impatient.port), timeout=30) as sock:
        sock.sendall(head + body[:first_file_byte])
        assert wait_until(lambda: spool_files(impatient)), "the part's spool file was never made"
        sock.settimeout(trickle or 30)
        reply, sent, deadline = b"", first_file_byte, time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                data = sock.recv(65536)
            except TimeoutError:  # nothing from the server yet: one more byte, as a slow client
                sock.sendall(body[sent : sent + 1])
                sent += 1
                continue
            except ConnectionResetError:
                break
            if not data:
                break  # closed by the server
            reply += data
        else:
            raise AssertionError(f"the server kept a slow body for 30 s ({sent} bytes sent)")
    assert sent < len(body)
    assert reply.startswith(b"HTTP/1.1 408"), reply[:300]
    payload = json.loads(reply.split(b"\r\n\r\n", 1)[1])
    assert payload["error"] == "body_timeout"
    assert wait_until(lambda: not spool_files(impatient)), spool_files(impatient)
    assert Api(impatient.url).get("health").status == 200


# -- refusals say why, and whom --------------------------------------------------------------------


@pytest.fixture(scope="module")
def limited(server_factory):
    return server_factory(
        settings={"ingest": IngestLimits(max_entries=5, max_file_bytes=8 << 20, max_ratio=50)}
    )


def _refused(server, files) -> tuple[int, dict]:
    reply = Api(server.url).upload(files)
    assert reply.header("Content-Type").startswith("application/json")
    return reply.status, reply.json()


@pytest.mark.parametrize(
    ("files", "status", "code", "entry", "says"),
    [
        ([("many.zip", many_entries_zip(6, JPG))], 413, "too_large", "many.zip", "limit of 5"),
        ([("bomb.zip", bomb_zip(64 << 20))], 413, "too_large", "bomb/bomb.png", "too large"),
        ([("cut.zip", zip_bytes({"a.jpg": JPG})[:60])], 422, "malformed_archive", "cut.zip", "corrupt"),
        ([("dirs.zip", zip_bytes({"a/": b"", "a/b/": b""}))], 422, "malformed_archive", "dirs.zip", "no files"),
        ([("text.zip", zip_bytes({"a.txt": b"hello"}))], 422, "malformed_archive", "text.zip", "not an image"),
        ([("empty.zip", b"PK\x05\x06" + bytes(18))], 422, "malformed_archive", "empty.zip", "no files"),
        ([("notes.txt", b"hello"), ("nothing.jpg", b"")], 415, "no_images", "notes.txt", "not an image"),
    ],
    ids=["entries", "bomb", "truncated", "folders-only", "no-image", "empty", "not-images"],
)  # fmt: skip
def test_a_refused_upload_says_its_cause_and_entry(limited, files, status, code, entry, says):
    got, body = _refused(limited, files)
    assert (got, body["error"], body["entry"]) == (status, code, entry), body
    assert says in body["message"]
    assert not any((limited.settings.data_dir / "jobs").iterdir())  # nothing was kept


def test_an_archive_over_the_entry_limit_writes_nothing(limited, monkeypatch):
    written = []
    from photoproc.ingest.sources import Source

    monkeypatch.setattr(Source, "save", lambda self, dest: written.append(dest))
    got, body = _refused(limited, [("first.jpg", JPG), ("many.zip", many_entries_zip(7, JPG))])
    assert got == 413 and body["message"] == (
        "many.zip: 7 files in the archive, over the limit of 5"
    )
    # Only the input before the archive was staged (and removed again): no entry of it.
    assert [Path(w).name for w in written] == ["00000-first.jpg"]
    assert not any((limited.settings.data_dir / "jobs").iterdir())
