"""SQLite job store: the queue and the source of truth for jobs and their items.

Any process may enqueue, claim or watch. A worker claims one item at a time;
the claim carries a random token and a lease that the worker renews. A lease
that runs out is claimed again (crash recovery), and every later write checks
the token (fencing), so a worker that lost its item cannot overwrite the newer
attempt. Every write is one ``BEGIN IMMEDIATE`` transaction that also keeps the
job's counts and state in step with its items, so readers never see a job that
disagrees with its items.

Item states::

    pending ──claim──▶ processing ──finish──▶ done
       ▲  │                 │ └──────fail───▶ failed
       │  └─cancel─▶ cancelled    (lease expired N times → failed: poison pill)
       └── release / fail(retry) / lease expired

Job states: pending → processing (first claim) → completed (≥ 1 item done) or
failed (none done); any state not yet ended → cancelled.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from ..errors import ItemNotFoundError, JobNotFoundError
from ..jobs import Item, Job, JobStatus, canonical_job_id, new_job_id
from .records import Claim, NewItem, item_from_row, job_from_row, relative_path
from .schema import connect
from .transaction import ACTIVE, CLAIMABLE, ENDED, Transaction

__all__ = ["Claim", "JobStore", "NewItem"]

# Forgotten heartbeats are pruned after a day so the table stays small.
_WORKER_RETENTION = 86_400.0


def _status(status: str | JobStatus) -> str:
    return JobStatus(status).value  # ValueError names the bad value


class JobStore:
    """Jobs and items in one SQLite file (WAL), safe for many threads and processes.

    Each thread of each process gets its own connection, opened on first use:
    SQLite connections must not cross threads mid-transaction nor survive a
    ``fork`` (the child would share the parent's file locks' bookkeeping).
    ``clock`` exists for tests of leases; it must be epoch seconds.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self._clock = clock
        self._local = threading.local()
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._conns: list[tuple[weakref.ref[threading.Thread], sqlite3.Connection]] = []
        # Connections inherited through fork: never used, never closed (closing
        # one could disturb the parent's locks), kept referenced so GC won't close them.
        self._inherited: list[sqlite3.Connection] = []
        self._closed = False
        self._conn()  # create / migrate now, so errors surface at construction

    # -- connections -------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise RuntimeError(f"job store {self.path} is closed")
        pid = os.getpid()
        local = self._local
        if getattr(local, "pid", None) == pid:
            return cast(sqlite3.Connection, local.conn)
        if pid != self._pid:
            self._lock = threading.Lock()  # may have been held by a thread that fork dropped
            self._inherited.extend(conn for _, conn in self._conns)
            self._conns = []
            self._pid = pid
        conn = connect(self.path, busy_timeout=self.busy_timeout)
        with self._lock:
            # Threads come and go (executors): close what dead threads left behind.
            alive = []
            for ref, old in self._conns:
                thread = ref()
                if thread is not None and thread.is_alive():
                    alive.append((ref, old))
                else:
                    old.close()
            alive.append((weakref.ref(threading.current_thread()), conn))
            self._conns = alive
        local.conn, local.pid = conn, pid
        return conn

    @contextmanager
    def _write(self) -> Iterator[Transaction]:
        conn = self._conn()
        # IMMEDIATE takes the write lock up front, waiting on the busy handler; a
        # deferred transaction that upgrades later would fail at once instead.
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield Transaction(conn, self._clock())
            conn.execute("COMMIT")
        except BaseException:
            # SQLite may already have rolled back (e.g. disk full); the original error matters.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _one(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> sqlite3.Row | None:
        return cast("sqlite3.Row | None", self._conn().execute(sql, params).fetchone())

    def _value(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> Any:
        """The first column of a query that always returns a row (counts, PRAGMA, meta)."""
        row = self._one(sql, params)
        if row is None:
            raise RuntimeError(f"no row from {sql!r}")
        return row[0]

    def _all(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[sqlite3.Row]:
        return self._conn().execute(sql, params).fetchall()

    def close(self) -> None:
        """Close every connection this store opened in this process. Call it once the
        threads that used the store are done; later calls raise RuntimeError."""
        with self._lock:
            self._closed = True
            conns, self._conns = self._conns, []
        if os.getpid() == self._pid:
            for _, conn in conns:
                conn.close()

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickles as "open this file again", so a store can be handed to another
        process (executors, Dask); connections never travel."""
        return (_reopen, (self.path, self.busy_timeout, self._clock))

    def __enter__(self) -> JobStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- jobs --------------------------------------------------------------------

    def create_job(
        self,
        *,
        options: Mapping[str, Any],
        source: str,
        items: Sequence[NewItem],
        job_id: str | None = None,
    ) -> Job:
        """Insert a job and its items in one transaction (readers see all or nothing).

        Items with an ``error`` start failed and count as processed; a job whose
        items all failed so is created already ``failed``.
        """
        items = list(items)
        if not items:
            raise ValueError("a job needs at least one item")
        job_id = new_job_id() if job_id is None else job_id
        if canonical_job_id(job_id) != job_id:
            raise ValueError(f"job id must be a lower-case UUID (version 4), got {job_id!r}")
        pre_failed = sum(item.error is not None for item in items)
        all_failed = pre_failed == len(items)
        paths = [
            None if item.input_path is None else relative_path(item.input_path) for item in items
        ]
        options_json = json.dumps(dict(options))
        try:
            with self._write() as tx:
                row = tx.execute(
                    "INSERT INTO jobs (id, status, options, source, created_at, updated_at,"
                    " finished_at, total, processed, failed, error, version)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *",
                    (
                        job_id,
                        "failed" if all_failed else "pending",
                        options_json,
                        source,
                        tx.now,
                        tx.now,
                        tx.now if all_failed else None,
                        len(items),
                        pre_failed,
                        pre_failed,
                        f"all {len(items)} items failed" if all_failed else None,
                        tx.rev,
                    ),
                ).fetchone()
                tx.conn.executemany(
                    "INSERT INTO items (job_id, idx, name, storage_name, input_path, status,"
                    " error, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            job_id,
                            index,
                            item.name,
                            item.storage_name,
                            paths[index],
                            "pending" if item.error is None else "failed",
                            item.error,
                            tx.now,
                        )
                        for index, item in enumerate(items)
                    ],
                )
        except sqlite3.IntegrityError as exc:
            raise ValueError(f"cannot create job {job_id}: {exc}") from exc
        return job_from_row(row)

    def get_job(self, job_id: str) -> Job:
        row = self._one("SELECT * FROM jobs WHERE id = ?", (self._id(job_id),))
        if row is None:
            raise JobNotFoundError(job_id)
        return job_from_row(row)

    def list_jobs(
        self, *, status: str | JobStatus | None = None, limit: int = 50, offset: int = 0
    ) -> list[Job]:
        """Newest first."""
        where, params = self._status_filter(status)
        rows = self._all(
            f"SELECT * FROM jobs {where} ORDER BY created_at DESC, rowid DESC LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        return [job_from_row(row) for row in rows]

    def count_jobs(self, *, status: str | JobStatus | None = None) -> int:
        where, params = self._status_filter(status)
        return int(self._value(f"SELECT count(*) FROM jobs {where}", params))

    def status_counts(self) -> dict[str, int]:
        """Jobs per status, every status present (for health pages)."""
        counts = dict.fromkeys((s.value for s in JobStatus), 0)
        for row in self._all("SELECT status, count(*) AS n FROM jobs GROUP BY status"):
            counts[row["status"]] = row["n"]
        return counts

    def cancel_job(self, job_id: str) -> Job:
        """Pending items will never start and the job is ``cancelled`` at once.

        An item already running may still finish: its result is recorded on the
        item, the job stays cancelled. A job that has ended is returned unchanged.
        """
        job_id = self._id(job_id)
        with self._write() as tx:
            row = tx.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise JobNotFoundError(job_id)
            if row["status"] not in ("pending", "processing"):
                return job_from_row(row)
            tx.execute(
                "UPDATE items SET status = 'cancelled', updated_at = ?"
                " WHERE job_id = ? AND status = 'pending'",
                (tx.now, job_id),
            )
            row = tx.execute(
                "UPDATE jobs SET status = 'cancelled', finished_at = ?, updated_at = ?,"
                " version = ? WHERE id = ? RETURNING *",
                (tx.now, tx.now, tx.rev, job_id),
            ).fetchone()
        return job_from_row(row)

    def delete_job(self, job_id: str) -> None:
        """Remove the job and its items (files are the caller's)."""
        with self._write() as tx:
            deleted = tx.execute("DELETE FROM jobs WHERE id = ?", (self._id(job_id),)).rowcount
            if not deleted:
                raise JobNotFoundError(job_id)
            tx.bump()

    def ended_jobs_before(self, timestamp: float) -> list[Job]:
        rows = self._all(
            f"SELECT * FROM jobs WHERE status IN {ENDED} AND finished_at < ? ORDER BY finished_at",
            (timestamp,),
        )
        return [job_from_row(row) for row in rows]

    # -- items -------------------------------------------------------------------

    def get_items(self, job_id: str, *, offset: int = 0, limit: int | None = None) -> list[Item]:
        """Items by index; JobNotFoundError for an unknown job."""
        job_id = self._id(job_id)
        rows = self._all(
            "SELECT * FROM items WHERE job_id = ? ORDER BY idx LIMIT ? OFFSET ?",
            (job_id, -1 if limit is None else limit, offset),
        )
        if not rows:
            self.get_job(job_id)
        return [item_from_row(row) for row in rows]

    def get_item(self, job_id: str, index: int) -> Item:
        return item_from_row(self._item_row(job_id, index, "*"))

    def item_input_path(self, job_id: str, index: int) -> str | None:
        """The staged input, relative to the data dir."""
        path = self._item_row(job_id, index, "input_path")["input_path"]
        return None if path is None else str(path)

    def _item_row(self, job_id: str, index: int, columns: str) -> sqlite3.Row:
        job_id = self._id(job_id)
        row = self._one(
            f"SELECT {columns} FROM items WHERE job_id = ? AND idx = ?", (job_id, index)
        )
        if row is None:
            self.get_job(job_id)
            raise ItemNotFoundError(job_id, index)
        return row

    # -- the queue ---------------------------------------------------------------

    def claim(self, worker_id: str, *, lease_seconds: float, max_attempts: int) -> Claim | None:
        """Take the next item, or None when nothing is claimable.

        Fair: the item comes from the job served longest ago (``last_claim`` holds
        the revision of its last claim; new jobs have 0), so a small job is not
        stuck behind a big one. A lease that ran out is taken over; one that ran
        out on the item's last allowed attempt fails the item instead (poison pill).
        """
        with self._write() as tx:
            tx.expire(max_attempts)
            row = tx.claim_next(worker_id, lease_seconds)
            if row is None:
                return None
            options = tx.execute("SELECT options FROM jobs WHERE id = ?", (row["job_id"],))
            options = json.loads(options.fetchone()[0])
        return Claim(
            job_id=row["job_id"],
            index=row["idx"],
            token=row["token"],
            attempt=row["attempts"],
            worker_id=worker_id,
            item=item_from_row(row),
            options=options,
            input_path=row["input_path"],
            max_attempts=max_attempts,
            lease_until=row["lease_until"],
        )

    def renew(self, claim: Claim, *, lease_seconds: float) -> bool:
        """Extend the lease; False when the claim was lost (expired and taken over,
        cancelled, deleted): stop working on it. Not a change watchers see."""
        with self._write() as tx:
            return (
                tx.execute(
                    "UPDATE items SET lease_until = ? WHERE job_id = ? AND idx = ?"
                    " AND status = 'processing' AND token = ?",
                    (tx.now + lease_seconds, claim.job_id, claim.index, claim.token),
                ).rowcount
                == 1
            )

    def finish(
        self,
        claim: Claim,
        *,
        outputs: Sequence[str | os.PathLike[str]],
        warnings: Sequence[str] = (),
        timings: Mapping[str, float] | None = None,
        width: int | None = None,
        height: int | None = None,
    ) -> bool:
        """Record a result; False (and nothing changes) when the claim was lost."""
        paths = json.dumps([relative_path(path) for path in outputs])
        with self._write() as tx:
            row = tx.execute(
                "UPDATE items SET status = 'done', outputs = ?, warnings = ?, timings = ?,"
                " width = ?, height = ?, error = NULL, token = NULL, lease_until = NULL,"
                " updated_at = ? WHERE job_id = ? AND idx = ? AND status = 'processing'"
                " AND token = ? RETURNING job_id",
                (
                    paths,
                    json.dumps([str(w) for w in warnings]),
                    json.dumps({str(k): float(v) for k, v in (timings or {}).items()}),
                    width,
                    height,
                    tx.now,
                    claim.job_id,
                    claim.index,
                    claim.token,
                ),
            ).fetchone()
            if row is None:
                return False
            tx.items_ended(claim.job_id, done=1)
        return True

    def fail(self, claim: Claim, error: str, *, retry: bool = False) -> bool:
        """The item failed. ``retry`` and attempts left: back to pending for another
        try (the reason is kept as its last error). False when the claim was lost."""
        with self._write() as tx:
            row = tx.held(claim)
            if row is None:
                return False
            if retry and row["attempts"] < claim.max_attempts:
                tx.requeue(claim, row["job_status"], error=error, uncount=False)
                return True
            tx.execute(
                "UPDATE items SET status = 'failed', error = ?, last_error = ?, token = NULL,"
                " lease_until = NULL, updated_at = ? WHERE job_id = ? AND idx = ?",
                (error, error, tx.now, claim.job_id, claim.index),
            )
            tx.items_ended(claim.job_id, failed=1)
        return True

    def release(self, claim: Claim) -> bool:
        """Hand the item back untouched (graceful stop): pending again, and this
        attempt does not count. False when the claim was lost."""
        with self._write() as tx:
            row = tx.held(claim)
            if row is None:
                return False
            tx.requeue(claim, row["job_status"], error=None, uncount=True)
        return True

    def queue_depth(self) -> int:
        """Items a worker could claim now."""
        return int(
            self._value(
                f"SELECT count(*) FROM items AS i JOIN jobs AS j ON j.id = i.job_id"
                f" WHERE j.status IN {ACTIVE} AND {CLAIMABLE}",
                {"now": self._clock()},
            )
        )

    # -- workers -----------------------------------------------------------------

    def heartbeat(
        self, worker_id: str, *, pid: int, host: str, info: Mapping[str, Any] | None = None
    ) -> None:
        """Say this worker is alive (call every few seconds)."""
        with self._write() as tx:
            tx.execute(
                "INSERT INTO workers (id, pid, host, info, started_at, seen_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
                " pid = excluded.pid, host = excluded.host, info = excluded.info,"
                " seen_at = excluded.seen_at",
                (worker_id, pid, host, json.dumps(dict(info or {})), tx.now, tx.now),
            )
            tx.execute("DELETE FROM workers WHERE seen_at < ?", (tx.now - _WORKER_RETENTION,))

    def remove_worker(self, worker_id: str) -> None:
        with self._write() as tx:
            tx.execute("DELETE FROM workers WHERE id = ?", (worker_id,))

    def live_workers(self, *, within: float = 10.0) -> list[dict[str, Any]]:
        """Workers whose last heartbeat is at most ``within`` seconds old."""
        rows = self._all(
            "SELECT * FROM workers WHERE seen_at >= ? ORDER BY started_at, id",
            (self._clock() - within,),
        )
        return [{**dict(row), "info": json.loads(row["info"])} for row in rows]

    # -- change feed ---------------------------------------------------------------

    def data_version(self) -> int:
        """Changes when *another* connection commits (SQLite's own counter): a cheap
        poll for watchers in other processes. Per thread: compare values from one thread."""
        return int(self._value("PRAGMA data_version"))

    def revision(self) -> int:
        """Store-wide counter, bumped by every change to a job or item (lease renewals
        and heartbeats excepted)."""
        return int(self._value("SELECT value FROM meta WHERE key = 'revision'"))

    def jobs_changed_since(self, revision: int) -> list[Job]:
        """Jobs changed after ``revision`` (deleted ones are gone), oldest change first."""
        rows = self._all("SELECT * FROM jobs WHERE version > ? ORDER BY version", (revision,))
        return [job_from_row(row) for row in rows]

    # -- helpers -------------------------------------------------------------------

    @staticmethod
    def _id(job_id: object) -> str:
        """Canonical job id; anything malformed cannot name a job."""
        canonical = canonical_job_id(job_id)
        if canonical is None:
            raise JobNotFoundError(str(job_id)[:80])
        return canonical

    @staticmethod
    def _status_filter(status: str | JobStatus | None) -> tuple[str, tuple[str, ...]]:
        if status is None:
            return "", ()
        return "WHERE status = ?", (_status(status),)


def _reopen(path: Path, busy_timeout: float, clock: Callable[[], float]) -> JobStore:
    return JobStore(path, busy_timeout=busy_timeout, clock=clock)
