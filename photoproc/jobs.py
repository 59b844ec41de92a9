"""Job and item values as every edge sees them (immutable snapshots of store rows).

A **job** holds many **items**, one per input image. ``processed`` counts the
items that have ended (done *or* failed), so ``percentage`` reaches 100 exactly
when the job can no longer change; ``failed`` says how many of those failed.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from typing import Any

__all__ = [
    "TERMINAL_ITEM",
    "TERMINAL_JOB",
    "Item",
    "ItemStatus",
    "Job",
    "JobStatus",
    "canonical_job_id",
    "iso_time",
    "new_job_id",
]

# The one rule for job ids, used by the store, the service and every edge: a uuid4 in
# its canonical lower-case form. Anything else names no job, so it is refused before it
# reaches the database or the disk (job ids become folder names).
_JOB_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def new_job_id() -> str:
    return str(uuid.uuid4())


def canonical_job_id(value: object) -> str | None:
    """``value`` as a job id (surrounding blanks and upper case forgiven), or ``None``
    when it cannot name a job."""
    if isinstance(value, str):
        text = value.strip().lower()
        if _JOB_ID.fullmatch(text):
            return text
    return None


def iso_time(timestamp: float | None) -> str | None:
    """Epoch seconds → ISO 8601 in UTC, the form every JSON edge uses."""
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="milliseconds")


class JobStatus(str, Enum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    def __str__(self) -> str:
        return self.value


class ItemStatus(str, Enum):
    PENDING = "pending"
    PROCESSING = "processing"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    def __str__(self) -> str:
        return self.value


TERMINAL_JOB = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})
TERMINAL_ITEM = frozenset({ItemStatus.DONE, ItemStatus.FAILED, ItemStatus.CANCELLED})


@dataclass(frozen=True)
class Item:
    job_id: str
    index: int
    #: the uploaded / relative name, for display only — never used as a path.
    name: str
    #: generated, unique within the job; input and output files derive from it.
    storage_name: str
    status: ItemStatus
    #: output files, relative to the data directory.
    outputs: tuple[str, ...] = ()
    error: str | None = None
    warnings: tuple[str, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)
    attempts: int = 0
    width: int | None = None
    height: int | None = None
    updated_at: float | None = None

    @property
    def ended(self) -> bool:
        return self.status in TERMINAL_ITEM

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "name": self.name,
            "status": self.status.value,
            "error": self.error,
            "warnings": list(self.warnings),
            "outputs": len(self.outputs),
            "timings": dict(self.timings),
            "attempts": self.attempts,
            "width": self.width,
            "height": self.height,
        }


@dataclass(frozen=True)
class Job:
    id: str
    status: JobStatus
    options: dict[str, Any]
    source: str
    created_at: float
    updated_at: float
    total: int
    processed: int
    failed: int
    finished_at: float | None = None
    error: str | None = None
    #: store-wide change counter at this snapshot; watchers compare it.
    version: int = 0

    @property
    def ended(self) -> bool:
        return self.status in TERMINAL_JOB

    @property
    def succeeded(self) -> int:
        return self.processed - self.failed

    @property
    def percentage(self) -> float:
        return round(100.0 * self.processed / self.total, 1) if self.total else 100.0

    def progress(self) -> dict[str, Any]:
        return {
            "processed": self.processed,
            "failed": self.failed,
            "total": self.total,
            "percentage": self.percentage,
        }

    def to_dict(self, items: list[Item] | None = None) -> dict[str, Any]:
        """The ``process-status`` shape shared by REST, WebSocket and ``--json`` output."""
        data: dict[str, Any] = {
            "id": self.id,
            "job_id": self.id,
            "status": self.status.value,
            "progress": self.progress(),
            "metadata": dict(self.options),
            "source": self.source,
            "created_at": iso_time(self.created_at),
            "updated_at": iso_time(self.updated_at),
            "finished_at": iso_time(self.finished_at),
            "error": self.error,
        }
        if items is not None:
            data["items"] = [item.to_dict() for item in items]
        return data
