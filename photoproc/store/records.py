"""What goes into the store and what a claim hands out, and rows → values.

The job and item values themselves are :mod:`photoproc.jobs`; this module only
maps table rows onto them (JSON columns decoded here, in one place).
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from ..jobs import Item, ItemStatus, Job, JobStatus

__all__ = ["Claim", "NewItem", "item_from_row", "job_from_row", "relative_path"]


@dataclass(frozen=True)
class NewItem:
    """One input of a job being created. ``error`` set: the item starts FAILED with
    that reason (an upload entry that was skipped), so nothing accepted is lost silently."""

    name: str
    storage_name: str
    #: the staged input, relative to the data dir.
    input_path: str | None
    error: str | None = None


@dataclass(frozen=True)
class Claim:
    """A worker's hold on one item; pass it back to renew/finish/fail/release."""

    job_id: str
    index: int
    #: random per claim: the fence that stops a worker who lost the item.
    token: str
    attempt: int
    worker_id: str
    item: Item
    options: dict[str, Any]
    input_path: str | None
    #: the limit given to ``claim``; ``fail(retry=True)`` honours it.
    max_attempts: int = 3
    lease_until: float = 0.0


def relative_path(path: str | os.PathLike[str]) -> str:
    """Paths are stored relative to the data dir, so the dir can move and a row
    can never point outside it."""
    text = os.fspath(path)
    pure = PurePath(text)
    if pure.is_absolute() or ".." in pure.parts:
        raise ValueError(f"store paths must be relative to the data dir, got {text!r}")
    return pure.as_posix()


def job_from_row(row: sqlite3.Row) -> Job:
    return Job(
        id=row["id"],
        status=JobStatus(row["status"]),
        options=json.loads(row["options"]),
        source=row["source"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        total=row["total"],
        processed=row["processed"],
        failed=row["failed"],
        finished_at=row["finished_at"],
        error=row["error"],
        version=row["version"],
    )


def item_from_row(row: sqlite3.Row) -> Item:
    return Item(
        job_id=row["job_id"],
        index=row["idx"],
        name=row["name"],
        storage_name=row["storage_name"],
        status=ItemStatus(row["status"]),
        outputs=tuple(json.loads(row["outputs"])),
        error=row["error"],
        warnings=tuple(json.loads(row["warnings"])),
        timings=json.loads(row["timings"]),
        attempts=row["attempts"],
        width=row["width"],
        height=row["height"],
        updated_at=row["updated_at"],
    )
