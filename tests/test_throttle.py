"""The progress throttle on a clock the test drives: the token bucket alone, then the
event hub over a real SQLite store with that clock frozen and stepped by hand."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from support.worker_proc import make_png, store_job, wait_for

from photoproc.events import EventHub
from photoproc.jobs import JobStatus
from photoproc.store import JobStore
from photoproc.throttle import TokenBucket

pytestmark = pytest.mark.timeout(60)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_bucket_allows_a_burst_then_one_per_interval():
    clock = FakeClock()
    bucket = TokenBucket(0.1, 3, clock=clock)
    sent = 0
    while bucket.ready():
        bucket.spend()
        sent += 1
    assert sent == 3  # the burst, at one instant
    assert bucket.wait() == pytest.approx(0.1)
    clock.advance(0.05)
    assert not bucket.ready()
    assert bucket.wait() == pytest.approx(0.05)
    clock.advance(0.051)
    assert bucket.ready() and bucket.wait() == 0.0


def test_bucket_never_holds_more_than_the_burst():
    clock = FakeClock()
    bucket = TokenBucket(0.1, 3, clock=clock)
    clock.advance(3600)
    assert bucket.tokens() == 3.0


def test_bucket_caps_any_one_second_at_rate_plus_burst():
    # Ask for an event every millisecond for ten seconds of fake time.
    clock = FakeClock()
    bucket = TokenBucket(0.1, 3, clock=clock)
    sent: list[float] = []
    for _ in range(10_000):
        if bucket.ready():
            bucket.spend()
            sent.append(clock.now)
        clock.advance(0.001)
    for i, start in enumerate(sent):
        assert sum(1 for t in sent[i:] if t < start + 1.0) <= 13
    assert 100 <= len(sent) <= 104  # 10 per second on average, plus the first burst


def test_spending_an_empty_bucket_does_not_go_below_zero():
    clock = FakeClock()
    bucket = TokenBucket(0.1, 1, clock=clock)
    bucket.spend()
    bucket.spend()  # a final state goes out anyway
    clock.advance(0.1)
    assert bucket.ready()


def test_bucket_rejects_nonsense():
    with pytest.raises(ValueError):
        TokenBucket(0, 3)
    with pytest.raises(ValueError):
        TokenBucket(0.1, 0)


def _finish_one(store: JobStore) -> None:
    claim = store.claim("w", lease_seconds=60, max_attempts=3)
    assert claim is not None
    store.finish(claim, outputs=[])


def test_hub_holds_progress_past_the_burst_and_sends_the_newest_when_a_token_is_back(
    tmp_path: Path,
):
    clock = FakeClock()
    with JobStore(tmp_path / "jobs.db") as store:
        job_id = store_job(store, tmp_path, [make_png(i) for i in range(8)])
        hub = EventHub(store, poll_seconds=0.02, clock=clock)
        got = []
        ended = threading.Event()
        hub.subscribe(job_id, got.append, on_end=ended.set)
        try:
            wait_for(lambda: got, 30, message="the current state")  # token 1 of 3
            for n in (2, 3):  # tokens 2 and 3: changes go out at once
                _finish_one(store)
                hub.notify(job_id)
                wait_for(lambda n=n: len(got) == n, 30, message=f"event {n} of the burst")
            for _ in range(3):
                _finish_one(store)
                hub.notify(job_id)
            time.sleep(0.3)  # the clock stands still: no token, nothing more may arrive
            assert len(got) == 3
            assert [j.processed for j in got] == sorted(j.processed for j in got)

            clock.advance(0.1)  # one token: the newest held-back snapshot, once
            wait_for(lambda: len(got) == 4, 30, message="the trailing event")
            assert got[-1].processed == 5
            time.sleep(0.3)
            assert len(got) == 4

            # The final state goes out at once, on an empty bucket.
            for _ in range(3):
                _finish_one(store)
            hub.notify(job_id)
            assert ended.wait(30)
            assert got[-1].status is JobStatus.COMPLETED and got[-1].processed == 8
            assert sum(j.ended for j in got) == 1
        finally:
            hub.close()
