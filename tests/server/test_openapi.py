"""``api/openapi.json`` matches what the server does: schemathesis against the live server.

A bounded run (a few examples per operation and mode, well under a minute):
status codes, content types and JSON bodies must all be the documented ones,
and nothing may answer 5xx.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from photoproc.server.openapi import openapi_document

EXAMPLES = 12


@pytest.fixture(scope="module")
def schema(server):
    return schemathesis.openapi.from_url(server.url + "api/openapi.json")


def test_document_lists_every_route():
    document = openapi_document("/")
    assert set(document["paths"]) == {
        "/api/upload-and-process",
        "/api/process-status/{job_id}",
        "/api/download-results/{job_id}",
        "/api/cancel-job/{job_id}",
        "/api/jobs",
        "/api/jobs/{job_id}",
        "/api/processing-info",
        "/api/openapi.json",
        "/health",
    }
    assert openapi_document("/lab/photoproc/")["servers"] == [{"url": "/lab/photoproc"}]


def _check_operation(operation, mode: GenerationMode, base_url: str) -> bool:
    """Run the bounded property test of one operation; ``False`` if it has no such cases."""
    # Schema-valid parts are still random bytes, not images: 415 is the right answer.
    skip = [positive_data_acceptance] if operation.path == "/api/upload-and-process" else []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def conforms(case) -> None:
        case.call_and_validate(base_url=base_url, excluded_checks=skip)

    try:
        conforms()
    except Unsatisfiable:
        # Nothing to get wrong (no parameters, no body): no negative case exists.
        assert mode is GenerationMode.NEGATIVE
        return False
    return True


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_server_conforms_to_its_document(schema, server, mode):
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8  # schemathesis skips the document's own route
    tested = sum(_check_operation(op, mode, server.url.rstrip("/")) for op in operations)
    assert tested >= 5
    assert server.service.health()["status"] == "ok"
