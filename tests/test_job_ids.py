"""One rule for job ids (a canonical uuid4), the same verdict in the store, the service
and the HTTP API."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from support.worker_proc import make_png, make_settings

from photoproc.errors import JobNotFoundError
from photoproc.jobs import canonical_job_id, new_job_id
from photoproc.service import PhotoService
from photoproc.store import JobStore, NewItem

V4 = "3f2a8c1e-5b7d-4e9f-a1c2-0d4e6f8a9b1c"
REFUSED = [
    str(uuid.uuid1()),  # a UUID, but not version 4
    "00000000-0000-0000-0000-000000000000",
    "3f2a8c1e-5b7d-4e9f-71c2-0d4e6f8a9b1c",  # version 4 with a wrong variant
    "3f2a8c1e5b7d4e9fa1c20d4e6f8a9b1c",  # no dashes
    "../../etc/passwd",
    "",
    None,
    42,
]


def test_canonical_form():
    assert canonical_job_id(V4) == V4
    assert canonical_job_id(f"  {V4.upper()}\n") == V4
    for value in REFUSED:
        assert canonical_job_id(value) is None, value
    made = new_job_id()
    assert canonical_job_id(made) == made and uuid.UUID(made).version == 4


def test_store_and_service_apply_the_same_rule(tmp_path: Path):
    with JobStore(tmp_path / "jobs.db") as store:
        for value in REFUSED:
            with pytest.raises(JobNotFoundError):
                store.get_job(value)
        with pytest.raises(ValueError, match="UUID"):
            store.create_job(
                options={}, source="t", items=[NewItem("a", "a", None)], job_id=REFUSED[0]
            )
    with PhotoService(settings=make_settings(tmp_path / "data"), start_worker=False) as service:
        job = service.submit([("a.png", make_png(1))])
        assert service.get(job.id.upper()).id == job.id
        for value in REFUSED:
            with pytest.raises(JobNotFoundError):
                service.get(value)
