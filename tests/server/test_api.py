"""The REST API end to end: the seeds' three workflows and every endpoint's answers.

Processing uses the offline ``grabcut`` model on small synthetic photos, through
the server's real worker processes.
"""

from __future__ import annotations

import io
import uuid

import numpy as np
import pytest
from httpkit import Api, ws_messages, zip_members
from PIL import Image
from support.archives import zip_bytes
from support.images import object_on_background
from support.onnx_models import make_u2net_like

PNG = b"\x89PNG\r\n\x1a\n"


def _photo(width: int = 120, height: int = 90, seed: int = 0) -> bytes:
    data, _ = object_on_background(width, height, fmt="jpeg", noise=3, seed=seed)
    return data


def _rgba(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    assert image.mode == "RGBA"
    return image


def _run(api: Api, files, **fields) -> tuple[dict, list[dict]]:
    """Upload, then follow the job over the WebSocket to its final message."""
    reply = api.upload(files, fields)
    assert reply.status == 202, reply.body
    accepted = reply.json()
    assert accepted["status"] in ("pending", "processing")
    assert reply.header("Location") == accepted["status_url"]
    messages = ws_messages(api.ws(accepted["job_id"]))
    return accepted, messages


def _check_progress(messages: list[dict], total: int) -> None:
    assert messages, "no WebSocket message"
    assert [m["event"] for m in messages][-1] == "final"
    assert all(m["event"] == "progress" for m in messages[:-1])
    done = [m["progress"]["processed"] for m in messages]
    assert done == sorted(done), "progress went backwards"
    final = messages[-1]
    assert final["status"] == "completed"
    assert final["progress"] == {
        "processed": total,
        "failed": 0,
        "total": total,
        "percentage": 100.0,
    }
    assert [item["status"] for item in final["items"]] == ["done"] * total


def test_one_image(api):
    accepted, messages = _run(api, [("portrait.jpg", _photo())])
    _check_progress(messages, 1)
    job_id = accepted["job_id"]
    # With a single result, format=individual needs no item number.
    reply = api.get(f"api/download-results/{job_id}", query={"format": "individual"})
    assert reply.status == 200, reply.body
    assert reply.header("Content-Type") == "image/png"
    assert reply.header("X-Content-Type-Options") == "nosniff"
    assert reply.header("Content-Disposition") == (
        "attachment; filename=\"portrait.png\"; filename*=UTF-8''portrait.png"
    )
    assert int(reply.header("Content-Length")) == len(reply.body)
    image = _rgba(reply.body)
    assert image.size == (120, 90)
    alpha = np.asarray(image)[..., 3]
    assert alpha.min() == 0 and alpha.max() == 255  # background cut, object kept


def test_several_images(api):
    files = [
        ("a.jpg", _photo(seed=1)),
        ("b.jpg", _photo(100, 100, seed=2)),
        ("a.jpg", _photo(seed=3)),  # the same name twice: two items, two results
    ]
    accepted, messages = _run(api, files)
    _check_progress(messages, 3)
    assert [item["name"] for item in messages[-1]["items"]] == ["a.jpg", "b.jpg", "a.jpg"]
    reply = api.get(f"api/download-results/{accepted['job_id']}", query={"format": "zip"})
    assert reply.status == 200
    assert reply.header("Content-Type") == "application/zip"
    disposition = reply.header("Content-Disposition")
    assert disposition.startswith('attachment; filename="photoproc-')
    members = zip_members(reply.body)
    assert sorted(members) == ["a (2).png", "a.png", "b.png"]
    for data in members.values():
        assert data.startswith(PNG)
        _rgba(data)
    # One by one: by item number, and by the result's name.
    second = api.get(
        f"api/download-results/{accepted['job_id']}", query={"format": "individual", "item": 1}
    )
    assert second.status == 200 and second.body == members["b.png"]
    named = api.get(
        f"api/download-results/{accepted['job_id']}",
        query={"format": "individual", "name": "a (2).png"},
    )
    assert named.status == 200 and named.body == members["a (2).png"]


def test_a_zip_archive(api):
    archive = zip_bytes(
        {
            "people/one.jpg": _photo(seed=4),
            "people/two.jpg": _photo(seed=5),
            "readme.txt": b"not an image",
            ".DS_Store": b"junk",
        }
    )
    reply = api.upload([("batch.zip", archive)])
    assert reply.status == 202, reply.body
    job_id = reply.json()["job_id"]
    messages = ws_messages(api.ws(job_id))
    final = messages[-1]
    assert final["event"] == "final" and final["status"] == "completed"
    items = {item["name"]: item for item in final["items"]}
    assert set(items) == {"batch/people/one.jpg", "batch/people/two.jpg", "batch/readme.txt"}
    assert items["batch/readme.txt"]["status"] == "failed"
    assert final["progress"]["processed"] == 3 and final["progress"]["failed"] == 1
    members = zip_members(api.get(f"api/download-results/{job_id}").body)
    assert sorted(members) == ["batch/people/one.png", "batch/people/two.png"]
    assert all(_rgba(data) for data in members.values())


def test_status_shape(api, server):
    reply = api.upload([("x.jpg", _photo(seed=6))], {"crop_face": "false", "format": "png"})
    job_id = reply.json()["job_id"]
    status = api.wait(job_id)
    assert {
        "id",
        "job_id",
        "status",
        "progress",
        "items",
        "metadata",
        "created_at",
        "updated_at",
        "error",
    } <= set(status)
    assert status["id"] == status["job_id"] == job_id
    assert status["metadata"]["model"] == "grabcut"
    assert status["metadata"]["format"] == "png"
    assert {"name", "status", "error", "warnings"} <= set(status["items"][0])
    paged = api.get(f"api/process-status/{job_id}", query={"items_offset": 1}).json()
    assert paged["items"] == []


def test_jobs_list_is_paginated(api):
    ids = []
    for seed in range(3):
        reply = api.upload([(f"{seed}.jpg", _photo(60, 40, seed=seed))])
        ids.append(reply.json()["job_id"])
    for job_id in ids:
        api.wait(job_id)
    page = api.get("api/jobs", query={"limit": 2}).json()
    assert page["limit"] == 2 and page["offset"] == 0 and len(page["jobs"]) == 2
    assert page["total"] >= 3
    assert [job["id"] for job in page["jobs"]] == ids[::-1][:2]  # newest first
    rest = api.get("api/jobs", query={"limit": 2, "offset": 1}).json()
    assert rest["jobs"][0]["id"] == ids[1]
    completed = api.get("api/jobs", query={"status": "completed", "limit": 500}).json()
    assert all(job["status"] == "completed" for job in completed["jobs"])
    assert api.get("api/jobs", query={"status": "cancelled"}).json()["jobs"] == []


@pytest.mark.parametrize(
    "query", [{"limit": 0}, {"limit": 501}, {"limit": "ten"}, {"offset": -1}, {"status": "x"}]
)
def test_jobs_list_refuses_bad_parameters(api, query):
    reply = api.get("api/jobs", query=query)
    assert reply.status == 400
    assert reply.json()["error"] == "bad_request"


def test_cancel_then_delete(api, server):
    files = [(f"{i}.jpg", _photo(seed=10 + i)) for i in range(6)]
    job_id = api.upload(files).json()["job_id"]
    reply = api.post(f"api/cancel-job/{job_id}")
    assert reply.status == 200
    assert reply.json()["status"] == "cancelled"
    status = api.wait(job_id, timeout=10)
    assert status["status"] == "cancelled"
    # An ended job: cancelling again changes nothing.
    assert api.post(f"api/cancel-job/{job_id}").json()["status"] == "cancelled"
    job_dir = server.settings.jobs_dir / job_id
    assert job_dir.exists()
    reply = api.delete(f"api/jobs/{job_id}")
    assert reply.status == 200 and reply.json() == {"job_id": job_id, "deleted": True}
    assert not job_dir.exists()
    assert api.get(f"api/process-status/{job_id}").status == 404
    assert api.delete(f"api/jobs/{job_id}").status == 404


def test_download_errors(api):
    files = [("a.jpg", _photo(seed=20)), ("b.jpg", _photo(seed=21))]
    job_id = api.upload(files).json()["job_id"]
    api.wait(job_id)
    path = f"api/download-results/{job_id}"
    several = api.get(path, query={"format": "individual"})
    assert several.status == 400 and "item=N" in several.json()["message"]
    assert api.get(path, query={"format": "individual", "item": 5}).status == 404
    assert api.get(path, query={"format": "individual", "item": -1}).status == 400
    assert api.get(path, query={"format": "tar"}).status == 400
    missing = api.get(path, query={"format": "individual", "name": "../../photoproc.db"})
    assert missing.status == 404 and missing.json()["error"] == "result_not_found"


def test_job_without_results(api):
    # Every file is unusable but one is an image too large to decode: a failed job.
    from support.images import header_only

    reply = api.upload([("big.png", header_only("png", 30_000, 30_000))])
    job_id = reply.json()["job_id"]
    assert api.wait(job_id)["status"] == "failed"
    reply = api.get(f"api/download-results/{job_id}")
    assert reply.status == 404 and reply.json()["error"] == "no_results"


MALFORMED = ["not-a-uuid", "..", "%2e%2e%2f%2e%2e%2fphotoproc.db", "x" * 300, str(uuid.uuid1())]


@pytest.mark.parametrize("job_id", [str(uuid.uuid4()), *MALFORMED])
def test_unknown_and_malformed_job_ids_are_404(api, job_id):
    for method, path in (
        ("GET", f"api/process-status/{job_id}"),
        ("GET", f"api/download-results/{job_id}"),
        ("POST", f"api/cancel-job/{job_id}"),
        ("DELETE", f"api/jobs/{job_id}"),
        ("GET", f"ws/job/{job_id}"),
    ):
        reply = api.request(method, path)
        assert reply.status == 404, (method, path, reply.body)
        body = reply.json()
        assert body["error"] in ("job_not_found", "not_found")
        assert set(body) >= {"error", "message"}


def test_unknown_endpoint_is_json_404(api):
    reply = api.get("api/nothing/here")
    assert reply.status == 404
    assert reply.json()["error"] == "not_found"
    assert api.request("PUT", "api/jobs").status == 405


def test_bad_options_are_422(api):
    image = _photo(40, 30)
    reply = api.upload([("a.jpg", image)], {"format": "gif"})
    assert reply.status == 422
    assert reply.json() == {
        "error": "invalid_option",
        "message": reply.json()["message"],
        "field": "format",
    }
    unknown = api.upload([("a.jpg", image)], {"colour": "red"})
    assert unknown.status == 422 and unknown.json()["field"] == "colour"
    nothing = api.upload([("a.jpg", image)], {"remove_bg": "false", "crop_face": "false"})
    assert nothing.status == 422


@pytest.mark.parametrize("field", ["model_path", "yunet_path"])
def test_clients_cannot_name_files_outside_the_model_folder(api, field):
    reply = api.upload([("a.jpg", _photo(40, 30))], {field: "/etc/passwd", "model": "grabcut"})
    assert reply.status == 422
    assert reply.json()["field"] == field
    assert "model folder" in reply.json()["message"]
    sneaky = api.upload([("a.jpg", _photo(40, 30))], {field: "../../etc/passwd"})
    assert sneaky.status == 422


def test_not_multipart_and_no_files_are_415(api):
    reply = api.post(
        "api/upload-and-process",
        body=b'{"files": []}',
        headers={"Content-Type": "application/json"},
    )
    assert reply.status == 415 and reply.json()["error"] == "unsupported_media_type"
    reply = api.upload([])
    assert reply.status == 415 and reply.json()["error"] == "no_images"
    reply = api.upload([("a.txt", b"hello")])
    assert reply.status == 415 and "not an image" in reply.json()["message"]


def test_malformed_multipart_is_400(api):
    reply = api.post(
        "api/upload-and-process",
        body=b'--abc\r\nContent-Disposition: form-data; name="files"; filename="a.jpg"\r\n\r\nxx',
        headers={"Content-Type": "multipart/form-data; boundary=abc"},
    )
    assert reply.status == 400 and reply.json()["error"] == "malformed_upload"


def test_processing_info_defaults_to_the_best_installed_model(api, tmp_path):
    from photoproc.pipeline.models import import_model

    import_model("u2netp", make_u2net_like(tmp_path / "u2netp.onnx"), force=True)
    info = api.get("api/processing-info").json()
    assert info["default_model"] == "u2netp"
    assert info["options"]["model"] == "u2netp"
    assert {m["name"]: m for m in info["models"]}["u2netp"]["installed"] is True


def test_processing_info(api, server):
    info = api.get("api/processing-info").json()
    models = {model["name"]: model for model in info["models"]}
    assert models["grabcut"]["installed"] is True and models["grabcut"]["offline"] is True
    assert "u2net" in models and models["u2net"]["installed"] is False  # nothing downloaded
    assert info["default_model"] == "grabcut"  # the best installed: nothing else is
    assert info["options"]["remove_bg"] is True
    assert "png" in info["choices"]["format"]
    assert info["limits"]["max_upload_bytes"] == server.settings.max_upload_bytes
    assert info["limits"]["max_upload_files"] == server.settings.max_upload_files


def test_health(api):
    reply = api.get("health")
    assert reply.status == 200
    health = reply.json()
    assert health["status"] == "ok" and health["db"] == "ok"
    assert health["worker_alive"] is True
    assert isinstance(health["queue_depth"], int)


def test_one_route_table_for_every_prefix(server):
    from photoproc.server.routes import photoproc_routes

    rules = photoproc_routes(server.service, "/lab/x/", page_url="/lab/x/", token="t")
    patterns = [rule[0].replace("\\", "") for rule in rules]
    assert all(pattern.startswith("/lab/x") for pattern in patterns)
    assert "/lab/x" in patterns  # redirects to the page's slash
    assert "/lab/x/api/upload-and-process" in patterns
    assert "/lab/x/ws/job/([^/]+)" in patterns
    assert patterns[-1] == "/lab/x/(.*)"  # the page comes last, after every API route
    contexts = {id(rule[2]["ctx"]) for rule in rules if "ctx" in rule[2]}
    assert len(contexts) == 1
