"""``ws/job/{id}``: current state on connect, throttled progress, a final message, ping/pong,
origin checks, and one shared subscription per job."""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest
import websocket
from httpkit import Api, closing_ws, ws_messages
from support.images import object_on_background


def _photo(seed: int = 0, size: tuple[int, int] = (80, 60)) -> bytes:
    return object_on_background(*size, fmt="jpeg", noise=3, seed=seed)[0]


def _ended_job(api: Api, seed: int = 0) -> str:
    job_id = api.upload([("a.jpg", _photo(seed))]).json()["job_id"]
    api.wait(job_id)
    return job_id


def test_ping_pong_and_state_on_connect(api):
    files = [(f"{i}.jpg", _photo(i)) for i in range(3)]
    job_id = api.upload(files).json()["job_id"]
    with closing_ws(api.ws(job_id)) as ws:
        first = json.loads(ws.recv())
        assert first["job_id"] == job_id and first["progress"]["total"] == 3
        ws.send("ping")
        ws.send(json.dumps({"type": "ping"}))
        replies = []
        while len(replies) < 2:
            text = ws.recv()
            if '"job_id"' not in text:  # not a progress message
                replies.append(text)
        assert replies == ["pong", '{"type": "pong"}']
    api.wait(job_id)


def test_ended_job_gets_its_final_state_then_close(api):
    job_id = _ended_job(api, 1)
    messages = ws_messages(api.ws(job_id), timeout=10)
    assert len(messages) == 1
    assert messages[0]["event"] == "final" and messages[0]["status"] == "completed"
    assert messages[0]["progress"]["percentage"] == 100.0


def test_many_watchers_share_one_subscription_and_all_see_the_end(api, server):
    files = [(f"{i}.jpg", _photo(i, (120, 90))) for i in range(4)]
    job_id = api.upload(files).json()["job_id"]
    results: list[list[dict]] = []
    errors: list[BaseException] = []

    def watch() -> None:
        try:
            results.append(ws_messages(api.ws(job_id)))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=watch) for _ in range(12)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 5
    watched: dict[str, int] = {}
    while time.monotonic() < deadline:
        watched = server.call(server.running.app.settings["photoproc_context"].broadcasts.watched)
        if watched.get(job_id, 0) >= 6 or len(results) == 12:
            break
        time.sleep(0.05)
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    assert len(results) == 12
    for messages in results:
        assert messages[-1]["event"] == "final"
        assert messages[-1]["progress"]["processed"] == 4
    # All sockets of the job shared one broadcast (or the job had ended first), and
    # nothing is left subscribed once they are gone.
    assert set(watched) <= {job_id}
    final = server.call(server.running.app.settings["photoproc_context"].broadcasts.watched)
    assert final == {}


def test_progress_arrives_in_order_and_ends_once(api):
    files = [(f"{i}.jpg", _photo(i, (16, 12))) for i in range(40)]
    job_id = api.upload(files).json()["job_id"]
    ws = api.ws(job_id)
    ws.settimeout(90)
    messages = []
    with closing_ws(ws):
        while True:
            try:
                opcode, data = ws.recv_data()
            except websocket.WebSocketConnectionClosedException:
                break
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                break
            messages.append(json.loads(data))
    assert messages[-1]["event"] == "final"
    assert [m["event"] == "final" for m in messages].count(True) == 1
    done = [m["progress"]["processed"] for m in messages]
    assert done == sorted(done) and done[-1] == 40
    # The rate rule (10/s, bursts of 3) is checked on a driven clock in tests/test_throttle.py;
    # the windows as delivered are printed by benchmarks/bench_responsiveness.py.


def test_unknown_job_is_refused_before_upgrade(api):
    with pytest.raises(websocket.WebSocketBadStatusException) as caught:
        api.ws(str(uuid.uuid4()))
    assert caught.value.status_code == 404


def test_foreign_origin_is_refused(api, server):
    job_id = _ended_job(api, 2)
    with pytest.raises(websocket.WebSocketBadStatusException) as caught:
        api.ws(job_id, origin="https://evil.example")
    assert caught.value.status_code == 403
    # The page's own origin is fine.
    with closing_ws(api.ws(job_id, origin=f"http://127.0.0.1:{server.port}")) as same:
        assert json.loads(same.recv())["job_id"] == job_id


def test_allowlisted_origin_is_accepted(server_factory):
    other = server_factory(cors_origins=["https://app.example"])
    api = Api(other.url)
    job_id = _ended_job(api, 3)
    with closing_ws(api.ws(job_id, origin="https://app.example")) as ws:
        assert json.loads(ws.recv())["event"] == "final"
    with pytest.raises(websocket.WebSocketBadStatusException):
        api.ws(job_id, origin="https://app.example.evil.test")


def test_messages_of_big_jobs_leave_the_item_list_out(api):
    """Past 100 items the list is paged from process-status: every socket would otherwise
    receive it whole on every tick (98 kB a message at 600 items, /health p99 198 ms)."""
    small = api.upload([(f"{i}.jpg", _photo(i, (16, 12))) for i in range(3)]).json()["job_id"]
    first = json.loads(_first_message(api, small))
    assert len(first["items"]) == 3
    big = api.upload([(f"{i}.jpg", _photo(i, (16, 12))) for i in range(101)]).json()["job_id"]
    first = json.loads(_first_message(api, big))
    assert first["progress"]["total"] == 101 and "items" not in first
    api.post(f"api/cancel-job/{big}")
    api.wait(small)


def _first_message(api: Api, job_id: str) -> str:
    with closing_ws(api.ws(job_id)) as ws:
        return ws.recv()
