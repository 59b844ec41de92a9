"""The REST handlers, written once as mixins over :class:`~photoproc.service.PhotoService`.

Each mixin parses the request, makes one service call and writes JSON; it has no
base class of its own. :mod:`photoproc.server.routes` combines it with the
host's base — a plain ``RequestHandler`` with token auth (``photoproc serve``,
Voilà) or jupyter_server's ``APIHandler`` with ``@web.authenticated`` — so the
three hosts run the same code. The two that stream bodies live beside this
module: :mod:`~photoproc.server.upload_handlers` and
:mod:`~photoproc.server.download_handlers`.

Service calls are short SQLite transactions, but one may wait on a writer's
lock, so every call runs on the executor (:meth:`PhotoprocMixin.call`); the
IOLoop only parses, streams and writes.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from tornado.ioloop import IOLoop

from ..jobs import JobStatus
from ..options import ASPECTS, FACE_DETECTORS, FORMATS, ProcessOptions
from .errors import ApiError
from .handler_base import PhotoprocMixin
from .openapi import openapi_document

__all__ = [
    "CancelMixin",
    "DeleteJobMixin",
    "HealthMixin",
    "InfoMixin",
    "JobsMixin",
    "NotFoundMixin",
    "OpenApiMixin",
    "StatusMixin",
]

log = logging.getLogger("photoproc.server")


class StatusMixin(PhotoprocMixin):
    """``GET api/process-status/{job_id}``: the job with its items (the shared JSON shape)."""

    async def get(self, job_id: str) -> None:
        job_id = self.job_id_arg(job_id)
        offset = self.int_arg("items_offset", 0, 0)
        limit = self.int_arg("items_limit", None, 0)
        job = await self.call(self.ctx.service.get, job_id)
        # Any change to the job or one of its items gives it a new version.
        key = (job.id, job.version, offset, limit)
        body = self.ctx.cached_status(key)
        if body is None:
            items = await self.call(self.ctx.service.items, job_id, offset=offset, limit=limit)
            data = {**job.to_dict(items), **self.links(job_id)}
            body = json.dumps(data, separators=(",", ":")).encode()
            self.ctx.cache_status(key, body)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(body)


class CancelMixin(PhotoprocMixin):
    """``POST api/cancel-job/{job_id}``: pending items never start."""

    async def post(self, job_id: str) -> None:
        job = await self.call(self.ctx.service.cancel, self.job_id_arg(job_id))
        self.write_json(job.to_dict())


class JobsMixin(PhotoprocMixin):
    """``GET api/jobs``: newest first, paginated, optionally by status."""

    async def get(self) -> None:
        limit = self.int_arg("limit", 50, 1, 500)
        offset = self.int_arg("offset", 0, 0)
        status = self.get_query_argument("status", None)
        if status is not None and status not in {s.value for s in JobStatus}:
            choices = ", ".join(s.value for s in JobStatus)
            raise ApiError(400, "bad_request", f"status must be one of {choices}")
        service = self.ctx.service
        jobs = await self.call(service.list, status=status, limit=limit, offset=offset)
        total = await self.call(service.count, status=status)
        self.write_json(
            {
                "jobs": [job.to_dict() for job in jobs],
                "total": total,
                "limit": limit,
                "offset": offset,
            }
        )


class DeleteJobMixin(PhotoprocMixin):
    """``DELETE api/jobs/{job_id}``: rows and files (a running job is cancelled first)."""

    async def delete(self, job_id: str) -> None:
        job_id = self.job_id_arg(job_id)
        await self.call(self.ctx.service.delete, job_id)
        self.write_json({"job_id": job_id, "deleted": True})


class InfoMixin(PhotoprocMixin):
    """``GET api/processing-info``: models and whether they are installed, options, limits."""

    async def get(self) -> None:
        self.write_json(await IOLoop.current().run_in_executor(None, self._info))

    def _info(self) -> dict[str, Any]:
        from ..pipeline.models import list_models

        settings = self.ctx.settings
        models = []
        for status in list_models():
            info = status.info
            models.append(
                {
                    "name": info.name,
                    "installed": bool(status.installed),
                    "offline": info.family == "classical",
                    "family": info.family,
                    "description": info.description,
                    "licence": info.licence,
                    "size_bytes": info.size_bytes,
                }
            )
        defaults = ProcessOptions()
        limits = settings.ingest
        from ..pipeline.providers import providers_in_use

        return {
            "models": models,
            "providers": providers_in_use(),
            "default_model": defaults.model,
            "options": defaults.to_dict(),
            "choices": {
                "format": list(FORMATS),
                "aspect": list(ASPECTS),
                "face_detector": list(FACE_DETECTORS),
            },
            "input_formats": ["jpeg", "png", "webp", "bmp", "tiff", "gif", "heif", "zip"],
            "limits": {
                "max_upload_bytes": settings.max_upload_bytes,
                "max_upload_files": settings.max_upload_files,
                "max_pixels": settings.max_pixels,
                "max_file_bytes": limits.max_file_bytes,
                "max_archive_entries": limits.max_entries,
                "max_archive_bytes": limits.max_total_bytes,
            },
        }


class HealthMixin(PhotoprocMixin):
    """``GET health``: database reachable, worker alive, queue depth."""

    async def get(self) -> None:
        try:
            health = await IOLoop.current().run_in_executor(None, self._health)
        except Exception as exc:  # a broken database is exactly what health must report
            log.warning("health check failed: %s", exc)
            self.write_json({"status": "error", "db": "error", "message": str(exc)}, 503)
            return
        self.write_json(health, 200 if health.get("status") == "ok" else 503)

    def _health(self) -> dict[str, Any]:
        from ..pipeline.providers import providers_in_use

        return {**self.ctx.service.health(), "providers": providers_in_use()}


class OpenApiMixin(PhotoprocMixin):
    """``GET api/openapi.json``: the document describing exactly these routes."""

    public = True

    def get(self) -> None:
        auth = self.ctx.auth
        token = auth is None or auth.required
        self.write_json(openapi_document(self.ctx.base_url, token=token))


class NotFoundMixin(PhotoprocMixin):
    """Any other ``api/…`` path: a JSON 404 rather than a host's HTML page."""

    def _not_found(self, *args: Any) -> None:
        raise ApiError(404, "not_found", f"no such endpoint: {self.request.path[:200]}")

    get = post = put = patch = delete = _not_found
