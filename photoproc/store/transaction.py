"""The state machine's writes, each run inside one ``BEGIN IMMEDIATE`` transaction.

Every function here that moves an item also fixes its job's counts and state
in the same transaction, so no reader ever sees a job that disagrees with its
items. The store-wide revision is bumped at most once per transaction, and only
if something changed.
"""

from __future__ import annotations

import collections
import secrets
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any, cast

from .records import Claim

__all__ = ["ACTIVE", "CLAIMABLE", "ENDED", "Transaction"]

ACTIVE = "('pending', 'processing')"
ENDED = "('completed', 'failed', 'cancelled')"
# An item a worker may take: waiting, or held by a worker whose lease ran out.
# The first conjunct repeats the partial index's condition so the planner uses it.
CLAIMABLE = (
    "i.status IN ('pending', 'processing') AND (i.status = 'pending' OR i.lease_until < :now)"
)

# Fair pick: the job served longest ago (``last_claim`` = revision of its last
# claim, 0 for a new job), then its lowest claimable index. Both lookups walk
# partial indexes, so a claim costs O(active jobs), not O(items).
_CLAIM = f"""
UPDATE items SET
    status = 'processing', attempts = attempts + 1, token = :token, worker_id = :worker,
    lease_until = :now + :lease, updated_at = :now,
    last_error = CASE WHEN status = 'processing'
        THEN 'lease of worker ' || worker_id || ' expired' ELSE last_error END
WHERE rowid = (
    SELECT i.rowid FROM items AS i
    WHERE i.job_id = (
        SELECT j.id FROM jobs AS j
        WHERE j.status IN {ACTIVE}
          AND EXISTS (SELECT 1 FROM items AS i WHERE i.job_id = j.id AND {CLAIMABLE})
        ORDER BY j.last_claim, j.created_at, j.rowid LIMIT 1)
      AND {CLAIMABLE}
    ORDER BY i.idx LIMIT 1)
RETURNING *"""

# Both walk the few leased items (items_leased); the job's state is looked up per
# item, since an IN over jobs would make the planner visit every item of every job.
_POISON = f"""
UPDATE items SET
    status = 'failed', token = NULL, lease_until = NULL, updated_at = :now,
    error = 'worker died or hung on this image ' || attempts || ' times; last: lease of worker '
        || coalesce(worker_id, '?') || ' expired'
WHERE status = 'processing' AND lease_until < :now AND attempts >= :max
  AND (SELECT status FROM jobs WHERE id = items.job_id) IN {ACTIVE}
RETURNING job_id"""

_ABANDONED = """
UPDATE items SET status = 'cancelled', token = NULL, lease_until = NULL, updated_at = :now
WHERE status = 'processing' AND lease_until < :now
  AND (SELECT status FROM jobs WHERE id = items.job_id) = 'cancelled'
RETURNING job_id"""


class Transaction:
    """One write transaction: its connection, its clock reading, its revision."""

    def __init__(self, conn: sqlite3.Connection, now: float) -> None:
        self.conn = conn
        self.now = now
        self._rev: int | None = None

    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)

    @property
    def rev(self) -> int:
        """This transaction's revision, bumped on first use."""
        if self._rev is None:
            row = self.conn.execute(
                "UPDATE meta SET value = value + 1 WHERE key = 'revision' RETURNING value"
            ).fetchone()
            self._rev = int(row[0])
        return self._rev

    def bump(self) -> int:
        """Count a change that no job row records (a deletion)."""
        return self.rev

    def touch(self, job_id: str) -> None:
        """The job or one of its items changed: watchers must look again."""
        self.execute(
            "UPDATE jobs SET updated_at = ?, version = ? WHERE id = ?", (self.now, self.rev, job_id)
        )

    def items_ended(self, job_id: str, *, done: int = 0, failed: int = 0) -> None:
        """Count items that reached done/failed; end the job when none is left."""
        row = self.execute(
            "UPDATE jobs SET processed = processed + ?, failed = failed + ?, updated_at = ?,"
            " version = ? WHERE id = ? RETURNING status, total, processed, failed",
            (done + failed, failed, self.now, self.rev, job_id),
        ).fetchone()
        # A cancelled job keeps its state; its late items only update the counts.
        if row is None or row["status"] not in ("pending", "processing"):
            return
        if row["processed"] >= row["total"]:
            succeeded = row["processed"] > row["failed"]
            self.execute(
                "UPDATE jobs SET status = ?, finished_at = ?, error = ? WHERE id = ?",
                (
                    "completed" if succeeded else "failed",
                    self.now,
                    None if succeeded else f"all {row['total']} items failed",
                    job_id,
                ),
            )

    def expire(self, max_attempts: int) -> None:
        """Settle expired leases that must not be claimed again: the item's last
        allowed attempt (poison pill: fail it, the job goes on), or an item of a
        cancelled job whose worker vanished (it will never report back)."""
        params = {"now": self.now, "max": max_attempts}
        poisoned = self.execute(_POISON, params).fetchall()
        for job_id, count in collections.Counter(row[0] for row in poisoned).items():
            self.items_ended(job_id, failed=count)
        for job_id in {row[0] for row in self.execute(_ABANDONED, params).fetchall()}:
            self.touch(job_id)

    def claim_next(self, worker_id: str, lease_seconds: float) -> sqlite3.Row | None:
        """Claim the fair next item (one UPDATE … RETURNING); its row, or None."""
        params = {
            "token": secrets.token_hex(16),
            "worker": worker_id,
            "now": self.now,
            "lease": lease_seconds,
        }
        row = self.execute(_CLAIM, params).fetchone()
        if row is not None:
            self.execute(
                "UPDATE jobs SET last_claim = :rev, version = :rev, updated_at = :now,"
                " status = CASE status WHEN 'pending' THEN 'processing' ELSE status END"
                " WHERE id = :id",
                {"rev": self.rev, "now": self.now, "id": row["job_id"]},
            )
        return cast("sqlite3.Row | None", row)

    def held(self, claim: Claim) -> sqlite3.Row | None:
        """The item's attempts and its job's status, if ``claim`` still holds it."""
        row = self.execute(
            "SELECT i.attempts, j.status AS job_status FROM items AS i"
            " JOIN jobs AS j ON j.id = i.job_id WHERE i.job_id = ? AND i.idx = ?"
            " AND i.status = 'processing' AND i.token = ?",
            (claim.job_id, claim.index, claim.token),
        ).fetchone()
        return cast("sqlite3.Row | None", row)

    def requeue(self, claim: Claim, job_status: str, *, error: str | None, uncount: bool) -> None:
        """Put a held item back in the queue (``uncount``: this attempt never happened)."""
        # In a cancelled job nothing may start again.
        status = "cancelled" if job_status == "cancelled" else "pending"
        self.execute(
            "UPDATE items SET status = ?, attempts = attempts - ?,"
            " last_error = coalesce(?, last_error), token = NULL, worker_id = NULL,"
            " lease_until = NULL, updated_at = ? WHERE job_id = ? AND idx = ?",
            (status, int(uncount), error, self.now, claim.job_id, claim.index),
        )
        self.touch(claim.job_id)
