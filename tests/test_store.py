"""The SQLite job store's contract, on real database files in tmp_path.

Leases are tested with an injected clock rather than sleeps, so the suite is
fast and exact; concurrency is tested with real threads and real processes.
"""

from __future__ import annotations

import multiprocessing
import pickle
import sqlite3
import threading
import traceback
import uuid
import warnings
from collections import Counter
from pathlib import Path

import pytest

from photoproc.errors import ItemNotFoundError, JobNotFoundError
from photoproc.jobs import ItemStatus, JobStatus
from photoproc.store import (
    SCHEMA_VERSION,
    Claim,
    JobStore,
    NewItem,
    SchemaVersionError,
    transaction,
)

pytestmark = pytest.mark.timeout(60)

LEASE = 10.0


class Clock:
    """Epoch seconds that move only when a test says so."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "photoproc.db"


@pytest.fixture
def store(db_path: Path, clock: Clock):
    with JobStore(db_path, clock=clock) as store:
        yield store


def new_items(count: int, *, failed: dict[int, str] | None = None) -> list[NewItem]:
    failed = failed or {}
    return [
        NewItem(
            name=f"photo {i}.jpg",
            storage_name=f"{i:05d}-photo.jpg",
            input_path=None if i in failed else f"jobs/x/in/{i:05d}-photo.jpg",
            error=failed.get(i),
        )
        for i in range(count)
    ]


def make_job(store: JobStore, count: int = 3, **kwargs):
    return store.create_job(
        options={"model": "u2netp", "crop": True}, source="test", items=new_items(count, **kwargs)
    )


def claim(store: JobStore, worker: str = "w1", *, max_attempts: int = 3) -> Claim | None:
    return store.claim(worker, lease_seconds=LEASE, max_attempts=max_attempts)


def assert_counts_match_items(store: JobStore, job_id: str) -> None:
    job = store.get_job(job_id)
    states = Counter(item.status for item in store.get_items(job_id))
    assert job.total == sum(states.values())
    assert job.processed == states[ItemStatus.DONE] + states[ItemStatus.FAILED]
    assert job.failed == states[ItemStatus.FAILED]


# -- schema ------------------------------------------------------------------------


def test_new_database_is_wal_at_current_version(store: JobStore, db_path: Path) -> None:
    conn = store._conn()
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 30_000


V1_SCHEMA = [
    """CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        status TEXT NOT NULL CHECK (status IN
            ('pending', 'processing', 'completed', 'failed', 'cancelled')),
        options TEXT NOT NULL, source TEXT NOT NULL,
        created_at REAL NOT NULL, updated_at REAL NOT NULL, finished_at REAL,
        total INTEGER NOT NULL, processed INTEGER NOT NULL DEFAULT 0,
        failed INTEGER NOT NULL DEFAULT 0, error TEXT)""",
    "CREATE INDEX jobs_created ON jobs (created_at)",
    """CREATE TABLE items (
        job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
        idx INTEGER NOT NULL, name TEXT NOT NULL, storage_name TEXT NOT NULL,
        input_path TEXT,
        status TEXT NOT NULL CHECK (status IN
            ('pending', 'processing', 'done', 'failed', 'cancelled')),
        outputs TEXT NOT NULL DEFAULT '[]', error TEXT,
        warnings TEXT NOT NULL DEFAULT '[]', timings TEXT NOT NULL DEFAULT '{}',
        attempts INTEGER NOT NULL DEFAULT 0, width INTEGER, height INTEGER,
        token TEXT, worker_id TEXT, lease_until REAL, updated_at REAL NOT NULL,
        PRIMARY KEY (job_id, idx), UNIQUE (job_id, storage_name))""",
]


def _schema(path: Path) -> dict[str, object]:
    """Columns (name, type, notnull, default, pk) and indexes of every table."""
    conn = sqlite3.connect(path)
    try:
        tables = [
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if not r[0].startswith("sqlite_")
        ]
        return {
            table: (
                [tuple(c[1:]) for c in conn.execute(f"PRAGMA table_info({table})")],
                sorted(i[1] for i in conn.execute(f"PRAGMA index_list({table})")),
            )
            for table in sorted(tables)
        }
    finally:
        conn.close()


def test_migrates_a_v1_database_and_keeps_its_jobs(tmp_path: Path, clock: Clock) -> None:
    """A file written by the first schema (built here by hand, as it shipped) opens,
    is upgraded in place, keeps its rows, and then behaves like a new database."""
    old = tmp_path / "v1.db"
    job_id = str(uuid.uuid4())
    conn = sqlite3.connect(old)
    for statement in V1_SCHEMA:
        conn.execute(statement)
    now = clock()
    conn.execute(
        "INSERT INTO jobs VALUES (?, 'processing', '{\"model\": \"u2netp\"}', 'cli',"
        " ?, ?, NULL, 2, 1, 0, NULL)",
        (job_id, now, now),
    )
    conn.execute(
        "INSERT INTO items (job_id, idx, name, storage_name, input_path, status, outputs,"
        " attempts, width, height, updated_at)"
        " VALUES (?, 0, 'a.jpg', '0-a.jpg', 'jobs/j/in/0-a.jpg', 'done',"
        " '[\"jobs/j/out/0-a.png\"]', 1, 640, 480, ?)",
        (job_id, now),
    )
    conn.execute(
        "INSERT INTO items (job_id, idx, name, storage_name, input_path, status, updated_at)"
        " VALUES (?, 1, 'b.jpg', '1-b.jpg', 'jobs/j/in/1-b.jpg', 'pending', ?)",
        (job_id, now),
    )
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()

    with JobStore(old, clock=clock) as store:
        conn = store._conn()
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        job = store.get_job(job_id)
        assert (job.status, job.total, job.processed, job.options) == (
            JobStatus.PROCESSING,
            2,
            1,
            {"model": "u2netp"},
        )
        done = store.get_item(job_id, 0)
        assert (done.status, done.outputs, done.width) == (
            ItemStatus.DONE,
            ("jobs/j/out/0-a.png",),
            640,
        )
        c = claim(store)
        assert (c.job_id, c.index, c.input_path) == (job_id, 1, "jobs/j/in/1-b.jpg")
        assert store.finish(c, outputs=["jobs/j/out/1-b.png"])
        assert store.get_job(job_id).status == JobStatus.COMPLETED
        store.heartbeat("w1", pid=1, host="h")  # a v2 table
        assert store.revision() > 0

    # The upgraded file has exactly the schema of a file created new.
    with JobStore(tmp_path / "fresh.db"):
        pass
    assert _schema(old) == _schema(tmp_path / "fresh.db")


def _create_in_process(path: str, barrier, results) -> None:
    """Child process body: open a database that may not exist yet, add a job."""
    try:
        barrier.wait(timeout=60)
        with JobStore(path) as store:
            results.put((make_job(store, 2).id, None))
    except BaseException:
        results.put((None, traceback.format_exc()))


def _run_at_once(target, arg_lists: list[tuple]) -> list[tuple]:
    """Run ``target(*args, barrier, results)`` in one spawned process per ``args``; each
    waits on the shared barrier, then puts one report. Stragglers are killed."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(len(arg_lists))
    results = ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args, barrier, results)) for args in arg_lists]
    for proc in procs:
        proc.start()
    try:
        return [results.get(timeout=50) for _ in procs]
    finally:
        for proc in procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()


def test_processes_creating_the_database_at_once(db_path: Path) -> None:
    """WAL switch and migration race when several processes open a new file."""
    reports = _run_at_once(_create_in_process, [(str(db_path),)] * 3)
    assert [error for _, error in reports] == [None] * 3
    with JobStore(db_path) as store:
        assert {job.id for job in store.list_jobs()} == {job_id for job_id, _ in reports}
        assert store._conn().execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


@pytest.mark.parametrize(
    ("sql", "index"),
    [
        (transaction._CLAIM, "items_open"),
        (transaction._POISON, "items_leased"),
        (transaction._ABANDONED, "items_leased"),
    ],
    ids=["claim", "poison", "abandoned"],
)
def test_queue_statements_use_indexes_not_table_scans(store: JobStore, sql, index) -> None:
    """A claim must cost O(active jobs), not O(items): a 10,000-image job must
    not slow every claim down."""
    plan = store._conn().execute(
        f"EXPLAIN QUERY PLAN {sql}", {"token": "t", "worker": "w", "now": 0, "lease": 1, "max": 3}
    )
    details = [row["detail"] for row in plan]
    assert any(index in detail for detail in details), details
    assert not [d for d in details if d.startswith("SCAN") and "USING" not in d], details


def test_refuses_a_database_from_a_newer_version(db_path: Path) -> None:
    JobStore(db_path).close()
    conn = sqlite3.connect(db_path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(SchemaVersionError, match="upgrade photoproc"):
        JobStore(db_path)


# -- creating and reading jobs -----------------------------------------------------


def test_create_job_stores_job_and_items(store: JobStore) -> None:
    job = make_job(store, 3)
    assert job.status == JobStatus.PENDING
    assert (job.total, job.processed, job.failed, job.source) == (3, 0, 0, "test")
    assert job.options == {"model": "u2netp", "crop": True}
    assert job.finished_at is None and job.error is None
    assert uuid.UUID(job.id).version == 4
    assert store.get_job(job.id) == job
    items = store.get_items(job.id)
    assert [i.index for i in items] == [0, 1, 2]
    assert [i.name for i in items] == ["photo 0.jpg", "photo 1.jpg", "photo 2.jpg"]
    assert {i.status for i in items} == {ItemStatus.PENDING}
    assert items[1].storage_name == "00001-photo.jpg"
    assert store.item_input_path(job.id, 2) == "jobs/x/in/00002-photo.jpg"
    assert store.queue_depth() == 3


def test_pre_failed_items_count_as_processed(store: JobStore) -> None:
    job = make_job(store, 3, failed={1: "not an image"})
    assert (job.status, job.processed, job.failed) == (JobStatus.PENDING, 1, 1)
    item = store.get_item(job.id, 1)
    assert (item.status, item.error) == (ItemStatus.FAILED, "not an image")
    assert store.item_input_path(job.id, 1) is None
    assert store.queue_depth() == 2
    assert_counts_match_items(store, job.id)


def test_job_of_only_failed_items_fails_at_once(store: JobStore, clock: Clock) -> None:
    job = make_job(store, 2, failed={0: "empty file", 1: "not an image"})
    assert job.status == JobStatus.FAILED
    assert job.error == "all 2 items failed"
    assert job.finished_at == clock()
    assert job.percentage == 100.0
    assert claim(store) is None


def test_create_job_with_given_id(store: JobStore) -> None:
    job_id = str(uuid.uuid4())
    assert (
        store.create_job(options={}, source="api", items=new_items(1), job_id=job_id).id == job_id
    )
    with pytest.raises(ValueError, match="cannot create job"):
        store.create_job(options={}, source="api", items=new_items(1), job_id=job_id)


@pytest.mark.parametrize(
    ("items", "job_id", "message"),
    [
        ([], None, "at least one item"),
        ([NewItem("a", "same", None), NewItem("b", "same", None)], None, "UNIQUE"),
        ([NewItem("a", "a", "/abs/a.jpg")], None, "relative"),
        ([NewItem("a", "a", "jobs/../../a.jpg")], None, "relative"),
        ([NewItem("a", "a", None)], "not-a-uuid", "UUID"),
    ],
)
def test_create_job_refuses_bad_input_and_leaves_nothing(
    store: JobStore, items, job_id, message
) -> None:
    revision = store.revision()
    with pytest.raises(ValueError, match=message):
        store.create_job(options={}, source="api", items=items, job_id=job_id)
    assert store.count_jobs() == 0
    assert store._conn().execute("SELECT count(*) FROM items").fetchone()[0] == 0
    assert store.revision() == revision


@pytest.mark.parametrize("bad", [str(uuid.uuid4()), "../../etc/passwd", "", "x" * 500, 42, None])
def test_unknown_or_malformed_job_ids_are_not_found(store: JobStore, bad) -> None:
    make_job(store)
    for call in (store.get_job, store.get_items, store.cancel_job, store.delete_job):
        with pytest.raises(JobNotFoundError):
            call(bad)
    with pytest.raises(JobNotFoundError):
        store.get_item(bad, 0)


def test_job_ids_are_case_insensitive(store: JobStore) -> None:
    job = make_job(store)
    assert store.get_job(job.id.upper()).id == job.id


def test_item_lookups(store: JobStore) -> None:
    job = make_job(store, 5)
    with pytest.raises(ItemNotFoundError, match="has no item 5"):
        store.get_item(job.id, 5)
    with pytest.raises(ItemNotFoundError):
        store.item_input_path(job.id, -1)
    assert [i.index for i in store.get_items(job.id, offset=1, limit=2)] == [1, 2]
    assert [i.index for i in store.get_items(job.id, offset=3)] == [3, 4]
    assert store.get_items(job.id, offset=10) == []


def test_list_and_count_newest_first(store: JobStore, clock: Clock) -> None:
    jobs = []
    for _ in range(4):
        jobs.append(make_job(store, 1))
        clock.advance(1)
    store.cancel_job(jobs[1].id)
    assert [j.id for j in store.list_jobs()] == [j.id for j in reversed(jobs)]
    assert [j.id for j in store.list_jobs(limit=2, offset=1)] == [jobs[2].id, jobs[1].id]
    assert [j.id for j in store.list_jobs(status="cancelled")] == [jobs[1].id]
    assert store.count_jobs() == 4
    assert store.count_jobs(status=JobStatus.PENDING) == 3
    assert store.status_counts() == {
        "pending": 3,
        "processing": 0,
        "completed": 0,
        "failed": 0,
        "cancelled": 1,
    }
    with pytest.raises(ValueError, match="bogus"):
        store.list_jobs(status="bogus")


# -- claiming and finishing --------------------------------------------------------


def test_claim_and_finish_every_item_completes_the_job(store: JobStore, clock: Clock) -> None:
    job = make_job(store, 2)
    first = claim(store, "w1")
    assert (first.job_id, first.index, first.attempt, first.worker_id) == (job.id, 0, 1, "w1")
    assert first.options == {"model": "u2netp", "crop": True}
    assert first.input_path == "jobs/x/in/00000-photo.jpg"
    assert first.item.status == ItemStatus.PROCESSING
    assert first.lease_until == clock() + LEASE
    assert store.get_job(job.id).status == JobStatus.PROCESSING
    assert store.get_item(job.id, 0).status == ItemStatus.PROCESSING

    assert store.finish(
        first,
        outputs=["jobs/x/out/0.png", Path("jobs/x/out/0-face.png")],
        warnings=["no face found"],
        timings={"decode": 0.01, "segment": 0.2},
        width=640,
        height=480,
    )
    item = store.get_item(job.id, 0)
    assert item.status == ItemStatus.DONE
    assert item.outputs == ("jobs/x/out/0.png", "jobs/x/out/0-face.png")
    assert item.warnings == ("no face found",)
    assert item.timings == {"decode": 0.01, "segment": 0.2}
    assert (item.width, item.height, item.attempts) == (640, 480, 1)
    progress = store.get_job(job.id)
    assert (progress.status, progress.processed, progress.percentage) == (
        JobStatus.PROCESSING,
        1,
        50.0,
    )

    clock.advance(5)
    second = claim(store, "w2")
    assert second.index == 1
    assert store.finish(second, outputs=[])
    done = store.get_job(job.id)
    assert (done.status, done.processed, done.failed, done.error) == (
        JobStatus.COMPLETED,
        2,
        0,
        None,
    )
    assert done.finished_at == clock()
    assert claim(store) is None
    assert store.queue_depth() == 0
    # A finished claim is spent.
    assert not store.finish(second, outputs=[])
    assert not store.fail(second, "late")


def test_job_with_one_success_completes_and_with_none_fails(store: JobStore) -> None:
    mixed = make_job(store, 2)
    store.finish(claim(store), outputs=[])
    assert store.fail(claim(store), "cannot decode")
    job = store.get_job(mixed.id)
    assert (job.status, job.processed, job.failed, job.error) == (JobStatus.COMPLETED, 2, 1, None)
    assert store.get_item(mixed.id, 1).error == "cannot decode"

    bad = make_job(store, 3, failed={0: "not an image"})
    store.fail(claim(store), "boom")
    store.fail(claim(store), "boom")
    job = store.get_job(bad.id)
    assert (job.status, job.processed, job.failed) == (JobStatus.FAILED, 3, 3)
    assert job.error == "all 3 items failed"
    assert_counts_match_items(store, bad.id)


def test_finish_refuses_absolute_output_paths(store: JobStore) -> None:
    make_job(store, 1)
    c = claim(store)
    with pytest.raises(ValueError, match="relative"):
        store.finish(c, outputs=["/tmp/out.png"])
    assert store.get_item(c.job_id, 0).status == ItemStatus.PROCESSING


def test_fail_with_retry_requeues_until_attempts_run_out(store: JobStore) -> None:
    job = make_job(store, 1)
    for attempt in (1, 2):
        c = claim(store, max_attempts=3)
        assert c.attempt == attempt
        assert store.fail(c, f"timed out {attempt}", retry=True)
        item = store.get_item(job.id, 0)
        assert (item.status, item.attempts) == (ItemStatus.PENDING, attempt)
        assert store.get_job(job.id).processed == 0
    c = claim(store, max_attempts=3)
    assert c.attempt == 3
    assert store.fail(c, "timed out 3", retry=True)
    item = store.get_item(job.id, 0)
    assert (item.status, item.error) == (ItemStatus.FAILED, "timed out 3")
    assert store.get_job(job.id).status == JobStatus.FAILED


def test_release_returns_the_item_without_counting_the_attempt(store: JobStore) -> None:
    job = make_job(store, 1)
    c = claim(store)
    assert store.release(c)
    item = store.get_item(job.id, 0)
    assert (item.status, item.attempts) == (ItemStatus.PENDING, 0)
    assert not store.release(c)  # spent
    again = claim(store, "w2")
    assert (again.index, again.attempt) == (0, 1)
    assert again.token != c.token


# -- leases, fencing, poison pills ----------------------------------------------------


def test_expired_lease_is_claimed_again(store: JobStore, clock: Clock) -> None:
    job = make_job(store, 1)
    c = claim(store, "w1")
    assert store.queue_depth() == 0
    assert claim(store, "w2") is None
    clock.advance(LEASE + 1)
    assert store.queue_depth() == 1
    again = claim(store, "w2")
    assert (again.job_id, again.index, again.attempt, again.worker_id) == (job.id, 0, 2, "w2")
    assert again.token != c.token


def test_renew_keeps_the_lease(store: JobStore, clock: Clock) -> None:
    make_job(store, 1)
    c = claim(store, "w1")
    clock.advance(LEASE - 2)
    assert store.renew(c, lease_seconds=LEASE)
    clock.advance(LEASE - 2)  # past the first lease, inside the renewed one
    assert claim(store, "w2") is None
    clock.advance(3)
    assert claim(store, "w2") is not None
    assert not store.renew(c, lease_seconds=LEASE)


def test_late_finisher_is_fenced_off(store: JobStore, clock: Clock) -> None:
    """Worker 1 hangs past its lease, worker 2 takes the item over; worker 1's
    writes must all be refused and change nothing."""
    job = make_job(store, 1)
    slow = claim(store, "w1")
    clock.advance(LEASE + 1)
    fast = claim(store, "w2")
    revision = store.revision()
    assert not store.finish(slow, outputs=["jobs/x/out/stale.png"])
    assert not store.fail(slow, "stale failure")
    assert not store.release(slow)
    assert not store.renew(slow, lease_seconds=LEASE)
    item = store.get_item(job.id, 0)
    assert (item.status, item.outputs, item.error) == (ItemStatus.PROCESSING, (), None)
    assert store.revision() == revision
    assert store.finish(fast, outputs=["jobs/x/out/fresh.png"])
    assert store.get_item(job.id, 0).outputs == ("jobs/x/out/fresh.png",)
    assert not store.finish(slow, outputs=["jobs/x/out/stale.png"])
    assert store.get_job(job.id).processed == 1


def test_poison_pill_fails_the_item_and_the_job_goes_on(store: JobStore, clock: Clock) -> None:
    job = make_job(store, 2)
    for attempt in (1, 2, 3):
        c = claim(store, f"w{attempt}", max_attempts=3)
        assert (c.index, c.attempt) == (0, attempt)
        clock.advance(LEASE + 1)  # the worker died
    nxt = claim(store, "w4", max_attempts=3)
    assert nxt.index == 1
    item = store.get_item(job.id, 0)
    assert item.status == ItemStatus.FAILED
    assert (
        item.error == "worker died or hung on this image 3 times; last: lease of worker w3 expired"
    )
    progress = store.get_job(job.id)
    assert (progress.status, progress.processed, progress.failed) == (JobStatus.PROCESSING, 1, 1)
    assert store.finish(nxt, outputs=[])
    assert store.get_job(job.id).status == JobStatus.COMPLETED


def test_poison_pill_can_end_the_job(store: JobStore, clock: Clock) -> None:
    job = make_job(store, 1)
    claim(store, max_attempts=1)
    clock.advance(LEASE + 1)
    assert claim(store, max_attempts=1) is None
    ended = store.get_job(job.id)
    assert (ended.status, ended.error) == (JobStatus.FAILED, "all 1 items failed")


# -- cancel and delete -------------------------------------------------------------------


def test_cancel_stops_pending_items_at_once(store: JobStore, clock: Clock) -> None:
    job = make_job(store, 3)
    running = claim(store)
    clock.advance(1)
    cancelled = store.cancel_job(job.id)
    assert cancelled.status == JobStatus.CANCELLED
    assert cancelled.finished_at == clock()
    states = [i.status for i in store.get_items(job.id)]
    assert states == [ItemStatus.PROCESSING, ItemStatus.CANCELLED, ItemStatus.CANCELLED]
    assert store.queue_depth() == 0
    assert claim(store) is None
    # The running item may still finish; the job stays cancelled.
    assert store.finish(running, outputs=["jobs/x/out/0.png"])
    after = store.get_job(job.id)
    assert (after.status, after.processed) == (JobStatus.CANCELLED, 1)
    assert store.get_item(job.id, 0).status == ItemStatus.DONE
    assert_counts_match_items(store, job.id)
    # Cancelling again, or cancelling a job that ended, changes nothing.
    assert store.cancel_job(job.id) == after
    other = make_job(store, 1)
    store.finish(claim(store), outputs=[])
    assert store.cancel_job(other.id).status == JobStatus.COMPLETED


@pytest.mark.parametrize("how", ["release", "retry", "expire"])
def test_items_of_a_cancelled_job_never_start_again(store: JobStore, clock: Clock, how) -> None:
    job = make_job(store, 1)
    c = claim(store)
    store.cancel_job(job.id)
    if how == "release":
        assert store.release(c)
    elif how == "retry":
        assert store.fail(c, "timed out", retry=True)
    else:
        clock.advance(LEASE + 1)
    assert claim(store) is None
    assert store.get_item(job.id, 0).status == ItemStatus.CANCELLED
    assert store.get_job(job.id).status == JobStatus.CANCELLED


def test_delete_removes_job_and_items(store: JobStore) -> None:
    job = make_job(store, 3)
    keep = make_job(store, 1)
    c = claim(store)
    revision = store.revision()
    store.delete_job(job.id)
    assert store.revision() > revision
    with pytest.raises(JobNotFoundError):
        store.get_job(job.id)
    rows = store._conn().execute("SELECT count(*) FROM items WHERE job_id = ?", (job.id,))
    assert rows.fetchone()[0] == 0
    assert not store.finish(c, outputs=[])  # its worker learns the item is gone
    with pytest.raises(JobNotFoundError):
        store.delete_job(job.id)
    assert store.get_job(keep.id).total == 1


def test_ended_jobs_before(store: JobStore, clock: Clock) -> None:
    old = make_job(store, 1)
    store.finish(claim(store), outputs=[])
    clock.advance(100)
    running = make_job(store, 1)
    claim(store)
    cancelled = make_job(store, 1)
    store.cancel_job(cancelled.id)
    assert [j.id for j in store.ended_jobs_before(clock() - 50)] == [old.id]
    assert {j.id for j in store.ended_jobs_before(clock() + 1)} == {old.id, cancelled.id}
    assert running.id not in {j.id for j in store.ended_jobs_before(clock() + 1)}


# -- fairness --------------------------------------------------------------------------


def test_claims_take_turns_between_jobs(store: JobStore, clock: Clock) -> None:
    big = make_job(store, 50)
    clock.advance(1)
    small = make_job(store, 5)
    order = []
    for _ in range(10):
        c = claim(store)
        order.append("big" if c.job_id == big.id else "small")
        store.finish(c, outputs=[])
    assert order == ["big", "small"] * 5
    assert store.get_job(small.id).status == JobStatus.COMPLETED

    # A job that arrives later is served next, then joins the rotation.
    late = make_job(store, 2)
    assert claim(store).job_id == late.id
    assert claim(store).job_id == big.id
    assert claim(store).job_id == late.id


# -- workers ---------------------------------------------------------------------------


def test_heartbeats_and_live_workers(store: JobStore, clock: Clock) -> None:
    store.heartbeat("w1", pid=101, host="alpha", info={"executor": "process", "slots": 2})
    store.heartbeat("w2", pid=102, host="beta")
    assert [w["id"] for w in store.live_workers()] == ["w1", "w2"]
    w1 = store.live_workers()[0]
    assert (w1["pid"], w1["host"], w1["info"]) == (
        101,
        "alpha",
        {"executor": "process", "slots": 2},
    )
    assert w1["seen_at"] == w1["started_at"] == clock()

    clock.advance(11)
    store.heartbeat("w1", pid=101, host="alpha")
    live = store.live_workers()
    assert [w["id"] for w in live] == ["w1"]
    assert live[0]["started_at"] == clock() - 11
    assert [w["id"] for w in store.live_workers(within=60)] == ["w1", "w2"]
    store.remove_worker("w1")
    assert store.live_workers() == []
    revision = store.revision()
    store.heartbeat("w3", pid=1, host="h")
    assert store.revision() == revision  # heartbeats are not job changes


# -- change feed -----------------------------------------------------------------------


def test_revision_and_jobs_changed_since(store: JobStore) -> None:
    quiet = make_job(store, 1)
    busy = make_job(store, 1)
    store.cancel_job(quiet.id)
    mark = store.revision()
    assert store.jobs_changed_since(mark) == []

    c = claim(store)
    assert c.job_id == busy.id
    changed = store.jobs_changed_since(mark)
    assert [j.id for j in changed] == [busy.id]
    assert changed[0].version == store.revision() > mark

    mark = store.revision()
    assert store.renew(c, lease_seconds=LEASE)
    assert store.revision() == mark  # a lease renewal is not a change
    store.finish(c, outputs=[])
    changed = store.jobs_changed_since(mark)
    assert [(j.id, j.status) for j in changed] == [(busy.id, JobStatus.COMPLETED)]
    assert changed[0].version == store.revision()
    assert store.get_job(busy.id).version == store.revision()


def test_data_version_moves_when_another_connection_writes(db_path: Path) -> None:
    with JobStore(db_path) as watcher, JobStore(db_path) as writer:
        before = watcher.data_version()
        revision = watcher.revision()
        job = make_job(writer, 1)
        assert watcher.data_version() != before
        assert watcher.revision() > revision
        assert [j.id for j in watcher.jobs_changed_since(revision)] == [job.id]
        before = watcher.data_version()
        assert watcher.data_version() == before  # nothing happened: the poll is stable


# -- concurrency -----------------------------------------------------------------------


def _drain(store: JobStore, worker_id: str) -> list[tuple[str, int]]:
    done = []
    while (c := store.claim(worker_id, lease_seconds=60, max_attempts=3)) is not None:
        if not store.finish(c, outputs=[f"jobs/{c.job_id}/out/{c.index}.png"]):
            raise AssertionError(f"lost a live claim on {c.job_id}/{c.index}")
        done.append((c.job_id, c.index))
    return done


def _drain_in_process(path: str, worker_id: str, barrier, results) -> None:
    """Child process body (module level so spawn can import it)."""
    try:
        with JobStore(path) as store:
            barrier.wait(timeout=60)
            results.put((worker_id, _drain(store, worker_id), None))
    except BaseException:
        results.put((worker_id, [], traceback.format_exc()))


def _assert_all_done_once(store: JobStore, jobs, done: list[tuple[str, int]]) -> None:
    expected = {(job.id, i) for job in jobs for i in range(job.total)}
    assert len(done) == len(expected)
    assert set(done) == expected
    for job in jobs:
        final = store.get_job(job.id)
        assert (final.status, final.processed, final.failed) == (
            JobStatus.COMPLETED,
            job.total,
            0,
        )
        assert {(i.status, i.attempts) for i in store.get_items(job.id)} == {(ItemStatus.DONE, 1)}


def test_four_processes_finish_every_item_exactly_once(db_path: Path) -> None:
    with JobStore(db_path) as store:
        jobs = [make_job(store, 100) for _ in range(4)]
    reports = _run_at_once(_drain_in_process, [(str(db_path), f"p{n}") for n in range(4)])
    errors = [error for _, _, error in reports if error]
    assert not errors, errors[0]
    done = [pair for _, pairs, _ in reports for pair in pairs]
    with JobStore(db_path) as store:
        _assert_all_done_once(store, jobs, done)


def test_threads_share_one_store(db_path: Path) -> None:
    with JobStore(db_path) as store:
        jobs = [make_job(store, 40), make_job(store, 20)]
        done: list[tuple[str, int]] = []
        errors: list[BaseException] = []

        def run(worker_id: str) -> None:
            try:
                done.extend(_drain(store, worker_id))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(f"t{n}",)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert not errors, errors
        _assert_all_done_once(store, jobs, done)


def _claim_in_forked_child(store: JobStore, results) -> None:
    try:
        c = store.claim("child", lease_seconds=60, max_attempts=3)
        results.put((c.index, store.finish(c, outputs=[]), None))
    except BaseException:
        results.put((None, False, traceback.format_exc()))


def test_a_forked_child_opens_its_own_connection(store: JobStore) -> None:
    job = make_job(store, 2)
    parent_conn = store._conn()
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    child = ctx.Process(target=_claim_in_forked_child, args=(store, results))
    with warnings.catch_warnings():
        # Python ≥ 3.12 warns about fork with threads alive; forking is the point here.
        warnings.simplefilter("ignore", DeprecationWarning)
        child.start()
    index, finished, error = results.get(timeout=30)
    child.join(timeout=10)
    assert error is None, error
    assert (index, finished) == (0, True)
    assert store._conn() is parent_conn
    c = claim(store)
    assert c.index == 1 and store.finish(c, outputs=[])
    assert store.get_job(job.id).status == JobStatus.COMPLETED


def test_a_pickled_store_reopens_the_same_file(store: JobStore) -> None:
    job = make_job(store, 1)
    with pickle.loads(pickle.dumps(store)) as copy:
        assert copy is not store and copy.path == store.path
        assert copy.get_job(job.id) == job


def test_closed_store_refuses_work(db_path: Path) -> None:
    store = JobStore(db_path)
    store.close()
    with pytest.raises(RuntimeError, match="closed"):
        store.count_jobs()
