"""The OpenAPI 3.1 document served at ``api/openapi.json``.

Written by hand next to the handlers it describes and checked against the
running server by schemathesis (``tests/server/test_openapi.py``): every
status a route can answer is listed, with its JSON shape.
"""

from __future__ import annotations

from typing import Any

from .._version import __version__
from ..jobs import ItemStatus, JobStatus
from ..options import ASPECTS, FACE_DETECTORS, FORMATS, ProcessOptions
from .handler_base import MAX_INT

__all__ = ["openapi_document"]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref("Error")}}}


def _json(description: str, schema: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


_NULLABLE_STR = {"type": ["string", "null"]}
_NULLABLE_INT = {"type": ["integer", "null"]}
_PROVIDERS = {
    "type": "array",
    "items": {"type": "string"},
    "description": "onnxruntime execution providers the model sessions use (--device)",
}

_JOB_ID = {
    "name": "job_id",
    "in": "path",
    "required": True,
    "description": "the job's uuid4 (anything else is answered 404)",
    "schema": {"type": "string", "format": "uuid"},
}

_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error", "message"],
        "properties": {
            "error": {"type": "string", "description": "stable machine-readable code"},
            "message": {"type": "string"},
            "field": {"type": "string", "description": "the option at fault (invalid_option)"},
        },
    },
    "Progress": {
        "type": "object",
        "required": ["processed", "failed", "total", "percentage"],
        "properties": {
            "processed": {"type": "integer", "description": "items ended (done or failed)"},
            "failed": {"type": "integer"},
            "total": {"type": "integer"},
            "percentage": {"type": "number", "minimum": 0, "maximum": 100},
        },
    },
    "Item": {
        "type": "object",
        "required": ["index", "name", "status", "error", "warnings", "outputs"],
        "properties": {
            "index": {"type": "integer"},
            "name": {"type": "string", "description": "uploaded name, for display only"},
            "status": {"type": "string", "enum": [s.value for s in ItemStatus]},
            "error": _NULLABLE_STR,
            "warnings": {"type": "array", "items": {"type": "string"}},
            "outputs": {"type": "integer", "description": "number of result files"},
            "timings": {"type": "object", "additionalProperties": {"type": "number"}},
            "attempts": {"type": "integer"},
            "width": _NULLABLE_INT,
            "height": _NULLABLE_INT,
        },
    },
    "Job": {
        "type": "object",
        "required": ["id", "job_id", "status", "progress", "metadata", "created_at", "error"],
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "job_id": {"type": "string", "format": "uuid"},
            "status": {"type": "string", "enum": [s.value for s in JobStatus]},
            "progress": _ref("Progress"),
            "metadata": {"type": "object", "description": "the processing options"},
            "source": {"type": "string"},
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
            "finished_at": {"type": ["string", "null"], "format": "date-time"},
            "error": _NULLABLE_STR,
            "items": {"type": "array", "items": _ref("Item")},
            "status_url": {"type": "string"},
            "download_url": {"type": "string"},
            "websocket_url": {"type": "string"},
            "files_received": {"type": "integer"},
            "event": {"type": "string", "enum": ["progress", "final"]},
        },
    },
    "JobList": {
        "type": "object",
        "required": ["jobs", "total", "limit", "offset"],
        "properties": {
            "jobs": {"type": "array", "items": _ref("Job")},
            "total": {"type": "integer"},
            "limit": {"type": "integer"},
            "offset": {"type": "integer"},
        },
    },
    "Deleted": {
        "type": "object",
        "required": ["job_id", "deleted"],
        "properties": {"job_id": {"type": "string"}, "deleted": {"type": "boolean"}},
    },
    "Health": {
        "type": "object",
        "required": ["status"],
        "properties": {
            "status": {"type": "string", "enum": ["ok", "error"]},
            "db": {"type": "string"},
            "worker_alive": {"type": "boolean"},
            "workers": {"type": "array"},
            "queue_depth": _NULLABLE_INT,
            "jobs": {"type": "object"},
            "providers": _PROVIDERS,
        },
    },
    "ProcessingInfo": {
        "type": "object",
        "required": ["models", "default_model", "options", "limits"],
        "properties": {
            "models": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "installed"],
                    "properties": {
                        "name": {"type": "string"},
                        "installed": {"type": "boolean"},
                        "offline": {"type": "boolean", "description": "needs no weights"},
                        "family": _NULLABLE_STR,
                        "description": {"type": ["string", "null"]},
                        "licence": _NULLABLE_STR,
                        "size_bytes": _NULLABLE_INT,
                    },
                },
            },
            "providers": _PROVIDERS,
            "default_model": {"type": "string"},
            "options": {"type": "object"},
            "choices": {"type": "object"},
            "input_formats": {"type": "array", "items": {"type": "string"}},
            "limits": {"type": "object", "additionalProperties": {"type": "integer"}},
        },
    },
}


def _upload_schema() -> dict[str, Any]:
    defaults = ProcessOptions().to_dict()
    props: dict[str, Any] = {
        "files": {
            "type": "array",
            "items": {"type": "string", "format": "binary"},
            "minItems": 1,
            "description": "images (JPEG, PNG, WebP, BMP, TIFF, GIF, HEIC) and/or ZIP archives",
        },
        "remove_bg": {"type": "boolean", "default": defaults["remove_bg"]},
        "crop_face": {"type": "boolean", "default": defaults["crop_face"]},
        "model": {
            "type": "string",
            "description": "default: the best installed model (GET api/processing-info "
            "reports it as default_model); 'grabcut' needs no weights",
        },
        "format": {"type": "string", "enum": list(FORMATS), "default": defaults["format"]},
        "aspect": {"type": "string", "enum": list(ASPECTS), "default": defaults["aspect"]},
        "face_detector": {
            "type": "string",
            "enum": list(FACE_DETECTORS),
            "default": defaults["face_detector"],
        },
        "face_margin": {"type": "number", "minimum": 0, "maximum": 5},
        "output_size": {"type": "integer", "minimum": 16, "maximum": 8192},
        "bgcolor": {"type": "string", "description": "#rrggbb[aa], r,g,b[,a] or a colour name"},
    }
    for name in ("alpha_matting", "post_process_mask", "only_mask", "all_faces"):
        props[name] = {"type": "boolean", "default": defaults[name]}
    for name in (
        "alpha_matting_foreground_threshold",
        "alpha_matting_background_threshold",
        "alpha_matting_erode_size",
    ):
        props[name] = {"type": "integer", "default": defaults[name]}
    props["_xsrf"] = {"type": "string", "description": "Jupyter's XSRF token (JupyterLab only)"}
    return {
        "type": "object",
        "required": ["files"],
        "properties": props,
        "additionalProperties": False,
    }


def openapi_document(base_url: str = "/", *, token: bool = False) -> dict[str, Any]:
    """The document for a route table mounted at ``base_url``."""
    auth_errors = {"401": _error("missing or wrong token"), "403": _error("refused origin")}
    job_errors = {"404": _error("unknown or malformed job id"), **auth_errors}
    paths: dict[str, Any] = {
        "/api/upload-and-process": {
            "post": {
                "summary": "Upload images and/or ZIP archives and start processing them",
                "operationId": "uploadAndProcess",
                "requestBody": {
                    "required": True,
                    "content": {"multipart/form-data": {"schema": _upload_schema()}},
                },
                "responses": {
                    "202": _json("job accepted; follow status_url or websocket_url", "Job"),
                    "400": _error("malformed multipart body"),
                    "408": _error("the body stalled or arrived under the minimum rate"),
                    "413": _error("over a limit: body, parts, files, archive entries, zip bomb"),
                    "415": _error("not multipart, or nothing of an image type in the upload"),
                    "422": _error("invalid option, or damaged archives / archives without images"),
                    **auth_errors,
                },
            }
        },
        "/api/process-status/{job_id}": {
            "get": {
                "summary": "A job, its progress and its items",
                "operationId": "processStatus",
                "parameters": [
                    _JOB_ID,
                    _query("items_offset", "first item listed", 0),
                    _query("items_limit", "most items listed (default: all)", 0),
                ],
                "responses": {
                    "200": _json("the job", "Job"),
                    "400": _error("bad query parameter"),
                    **job_errors,
                },
            }
        },
        "/api/download-results/{job_id}": {
            "get": {
                "summary": "All results as a ZIP, or one result image",
                "operationId": "downloadResults",
                "parameters": [
                    _JOB_ID,
                    {
                        "name": "format",
                        "in": "query",
                        "schema": {"type": "string", "enum": ["zip", "individual"]},
                    },
                    _query("item", "item index (individual)", 0),
                    _query("output", "which output of the item (face crops)", 0),
                    {"name": "name", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": {
                        "description": "a ZIP archive or one image (Content-Disposition: attachment)",
                        "content": {
                            "application/zip": {"schema": {"type": "string", "format": "binary"}},
                            "image/png": {"schema": {"type": "string", "format": "binary"}},
                            "image/webp": {"schema": {"type": "string", "format": "binary"}},
                            "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
                        },
                    },
                    "400": _error("bad query parameter, or several results and no item"),
                    "409": _error("the job has no results yet"),
                    **job_errors,
                },
            }
        },
        "/api/cancel-job/{job_id}": {
            "post": {
                "summary": "Cancel a job: pending items never start",
                "operationId": "cancelJob",
                "parameters": [_JOB_ID],
                "responses": {
                    "200": _json("the job, cancelled (or already ended)", "Job"),
                    "409": _error("the job cannot be cancelled in its state"),
                    **job_errors,
                },
            }
        },
        "/api/jobs": {
            "get": {
                "summary": "Jobs, newest first",
                "operationId": "listJobs",
                "parameters": [
                    _query("limit", "page size", 1, 500),
                    _query("offset", "jobs skipped", 0),
                    {
                        "name": "status",
                        "in": "query",
                        "schema": {"type": "string", "enum": [s.value for s in JobStatus]},
                    },
                ],
                "responses": {
                    "200": _json("a page of jobs", "JobList"),
                    "400": _error("bad query parameter"),
                    **auth_errors,
                },
            }
        },
        "/api/jobs/{job_id}": {
            "delete": {
                "summary": "Delete a job, its rows and its files (cancelling it first)",
                "operationId": "deleteJob",
                "parameters": [_JOB_ID],
                "responses": {
                    "200": _json("deleted", "Deleted"),
                    "409": _error("the job cannot be deleted now"),
                    **job_errors,
                },
            }
        },
        "/api/processing-info": {
            "get": {
                "summary": "Models (and whether installed), option defaults, limits",
                "operationId": "processingInfo",
                "responses": {
                    "200": _json("what this server can do", "ProcessingInfo"),
                    **auth_errors,
                },
            }
        },
        "/api/openapi.json": {
            "get": {
                "summary": "This document",
                "operationId": "openapi",
                "responses": {
                    "200": {
                        "description": "OpenAPI 3.1",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    **auth_errors,
                },
            }
        },
        "/health": {
            "get": {
                "summary": "Database, worker and queue state",
                "operationId": "health",
                "responses": {
                    "200": _json("healthy", "Health"),
                    "503": _json("the database cannot be reached", "Health"),
                    **auth_errors,
                },
            }
        },
    }
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "photoproc",
            "version": __version__,
            "description": (
                "Background removal and face cropping in bulk. Progress is also pushed over "
                "a WebSocket at ws/job/{job_id}: on connect the current state, then messages "
                "with the process-status shape plus 'event' ('progress' or 'final'); the "
                "server closes the socket after the final one. Send 'ping' to get 'pong'."
            ),
        },
        "servers": [{"url": base_url.rstrip("/") or "/"}],
        "paths": paths,
        "components": {"schemas": _SCHEMAS},
    }
    if token:
        document["components"]["securitySchemes"] = {
            "token": {
                "type": "apiKey",
                "in": "header",
                "name": "Authorization",
                "description": "'token <TOKEN>'; or pass ?token=<TOKEN>",
            },
            "token_query": {"type": "apiKey", "in": "query", "name": "token"},
        }
        document["security"] = [{"token": []}, {"token_query": []}]
    return document


def _query(name: str, description: str, minimum: int, maximum: int = MAX_INT) -> dict:
    schema: dict[str, Any] = {"type": "integer", "minimum": minimum, "maximum": maximum}
    return {"name": name, "in": "query", "description": description, "schema": schema}
