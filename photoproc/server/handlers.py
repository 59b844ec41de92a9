"""The REST handlers, written once as mixins over :class:`~photoproc.service.PhotoService`.

Each mixin parses the request, makes one service call and writes JSON; it has no
base class of its own. :mod:`photoproc.server.routes` combines it with the
host's base — a plain ``RequestHandler`` with token auth (``photoproc serve``,
Voilà) or jupyter_server's ``APIHandler`` with ``@web.authenticated`` — so the
three hosts run the same code.

Service calls are short SQLite transactions, but one may wait on a writer's
lock, so every call runs on the executor (:meth:`PhotoprocMixin.call`); the
IOLoop only parses, streams and writes.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import logging
import shutil
import uuid
from pathlib import Path
from typing import Any

from tornado.ioloop import IOLoop
from tornado.iostream import StreamClosedError

from ..errors import InvalidOptionsError, NoImagesError, PhotoprocError, UploadTooLargeError
from ..jobs import JobStatus
from ..options import ASPECTS, FACE_DETECTORS, FORMATS, ProcessOptions
from .errors import ApiError, to_api_error
from .handler_base import RESULT_MEDIA_TYPES, PhotoprocMixin, content_disposition
from .openapi import openapi_document
from .uploads import MalformedUploadError, MultipartUpload, boundary_of

__all__ = [
    "CancelMixin",
    "DeleteJobMixin",
    "DownloadMixin",
    "HealthMixin",
    "InfoMixin",
    "JobsMixin",
    "NotFoundMixin",
    "OpenApiMixin",
    "StatusMixin",
    "UploadMixin",
]

log = logging.getLogger("photoproc.server")

#: form fields that are transport, not processing options.
_TRANSPORT_FIELDS = frozenset({"_xsrf", "token"})
_CHUNK = 256 << 10


def _check_client_paths(fields: dict[str, Any]) -> None:
    """A client may name model files only inside the model folder, never anywhere on the host.

    Same rule as rembg's own ``u2net_custom`` session: the host's owner decides which
    ONNX files can be loaded by placing them in ``REMBG_HOME`` (or ``photoproc models
    import``); a remote caller cannot make the server open arbitrary paths.
    """
    from ..pipeline.models import models_home

    home = models_home().resolve()
    for key in ("model_path", "yunet_path"):
        value = fields.get(key)
        if isinstance(value, (list, tuple)):
            value = value[-1] if value else None
        if not value:
            continue
        candidate = Path(str(value)).expanduser()
        resolved = (candidate if candidate.is_absolute() else home / candidate).resolve()
        if not resolved.is_relative_to(home):
            raise InvalidOptionsError(
                key,
                f"over HTTP only files inside the model folder {home} are accepted "
                "(place the file there, or use `photoproc models import`)",
            )
        fields[key] = str(resolved)


class UploadMixin(PhotoprocMixin):
    """``POST api/upload-and-process``: stream the multipart body to disk, then submit."""

    _upload: MultipartUpload | None = None
    _spool: Path | None = None
    _submitting = False

    async def prepare(self) -> None:
        result = super().prepare()  # type: ignore[misc]
        if inspect.isawaitable(result):  # the jupyter base's is async, Tornado's is not
            await result
        if self._finished or self.request.method != "POST":
            return
        limit = self.ctx.settings.max_upload_bytes
        # Answer before reading a byte: Tornado would otherwise read up to its own
        # limit and then reply 400. The connection is closed after the reply.
        length = self.request.headers.get("Content-Length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                raise ApiError(400, "bad_request", "Content-Length is not a number") from None
            if declared > limit:
                raise to_api_error(
                    UploadTooLargeError(f"upload of {declared} bytes is over the limit of {limit}")
                )
        boundary = boundary_of(self.request.headers.get("Content-Type"))
        if boundary is None:
            raise ApiError(
                415, "unsupported_media_type", "send the images as multipart/form-data 'files'"
            )
        # Chunked bodies have no Content-Length: MultipartUpload counts instead.
        self.request.connection.set_max_body_size(limit + 1)
        self._spool = self.ctx.spool_dir / uuid.uuid4().hex
        try:
            self._upload = MultipartUpload(
                boundary,
                self._spool,
                max_files=self.ctx.settings.max_upload_files,
                max_bytes=limit,
            )
        except MalformedUploadError as exc:
            raise ApiError(400, "malformed_upload", str(exc)) from None

    def data_received(self, chunk: bytes) -> None:
        if self._upload is None or self._finished:
            return
        try:
            self._upload.feed(chunk)
        except UploadTooLargeError as exc:
            self._abort(to_api_error(exc))
        except MalformedUploadError as exc:
            self._abort(ApiError(400, "malformed_upload", str(exc)))

    def _abort(self, error: ApiError) -> None:
        self._cleanup()
        self.send_api_error(error)

    async def post(self) -> None:
        if self._upload is None or self._finished:  # answered while streaming
            return
        try:
            received = self._upload.finish()
        except MalformedUploadError as exc:
            raise ApiError(400, "malformed_upload", str(exc)) from None
        fields = {k: v for k, v in received.fields.items() if k not in _TRANSPORT_FIELDS}
        try:
            _check_client_paths(fields)
            options = ProcessOptions.from_mapping(fields)
        except PhotoprocError as exc:
            raise to_api_error(exc) from exc
        if not received.files:
            raise to_api_error(NoImagesError("the upload holds no files (send them as 'files')"))
        # A client that hangs up now does not take back an upload it sent whole.
        self._submitting = True
        try:
            job = await self.call(self.ctx.service.submit, received.files, options, source="api")
        finally:
            self._submitting = False
            self._cleanup()
        body = {**job.to_dict(), **self.links(job.id), "files_received": len(received.files)}
        self.set_header("Location", body["status_url"])
        self.write_json(body, 202)

    def on_finish(self) -> None:
        self._cleanup()

    def on_connection_close(self) -> None:
        super().on_connection_close()  # type: ignore[misc]
        if not self._submitting:
            self._cleanup()

    def _cleanup(self) -> None:
        # The service has copied what it kept; the spool folder goes, off the IOLoop.
        spool, self._spool = self._spool, None
        upload, self._upload = self._upload, None
        if upload is not None:
            upload.close()
        if spool is not None:
            IOLoop.current().run_in_executor(None, functools.partial(shutil.rmtree, spool, True))


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


class DownloadMixin(PhotoprocMixin):
    """``GET api/download-results/{job_id}?format=zip|individual[&item=N][&output=K][&name=…]``."""

    async def get(self, job_id: str) -> None:
        job_id = self.job_id_arg(job_id)
        fmt = (self.get_query_argument("format", "zip") or "zip").lower()
        if fmt not in ("zip", "individual"):
            raise ApiError(400, "bad_request", "format must be zip or individual")
        item = self.int_arg("item", None, 0)
        output = self.int_arg("output", None, 0)
        name = self.get_query_argument("name", None) or None
        job = await self.call(self.ctx.service.get, job_id)
        results = await self.call(self.ctx.service.results, job_id)
        if not results:
            if job.ended:
                raise ApiError(404, "no_results", f"job {job_id} has no results")
            raise ApiError(409, "no_results_yet", f"job {job_id} has no results yet")
        if fmt == "zip" and item is None and name is None:
            await self._send_zip(job_id)
        else:
            await self._send_file(self._pick(results, item, output, name))

    def _pick(self, results: list[Any], item: int | None, output: int | None, name: str | None):
        if name is not None:
            for result in results:
                if result.name == name:
                    return result
            raise ApiError(404, "result_not_found", f"no result named {name[:200]!r}")
        if item is None:
            if len(results) == 1:
                return results[0]
            raise ApiError(
                400,
                "bad_request",
                f"the job has {len(results)} results: pass item=N (or name=…), or format=zip",
            )
        of_item = [r for r in results if r.item_index == item]
        index = output or 0
        if index >= len(of_item):
            raise ApiError(404, "result_not_found", f"item {item} has no result {index}")
        return of_item[index]

    async def _send_zip(self, job_id: str) -> None:
        chunks = await self.call(self.ctx.service.results_zip, job_id)
        self.set_header("Content-Type", "application/zip")
        self.set_header("Content-Disposition", content_disposition(f"photoproc-{job_id[:8]}.zip"))
        loop = IOLoop.current()
        try:
            while True:
                chunk = await loop.run_in_executor(None, next, chunks, None)
                if chunk is None:
                    break
                self.write(chunk)
                await self.flush()
        except StreamClosedError:
            return  # the client went away; nothing to answer
        finally:
            with contextlib.suppress(Exception):
                chunks.close()
        self.finish()

    async def _send_file(self, result: Any) -> None:
        if result.media_type not in RESULT_MEDIA_TYPES:
            raise ApiError(404, "result_not_found", "that result is not an image")
        root = self.ctx.settings.data_dir.resolve()
        path = Path(result.path).resolve()
        if not path.is_relative_to(root):
            raise ApiError(404, "result_not_found", "that result is not available")
        loop = IOLoop.current()
        try:
            handle = await loop.run_in_executor(None, open, path, "rb")
        except OSError:
            raise ApiError(404, "result_not_found", "that result file is gone") from None
        try:
            size = await loop.run_in_executor(None, lambda: Path(handle.name).stat().st_size)
            self.set_header("Content-Type", result.media_type)
            self.set_header("Content-Length", str(size))
            # A finished result never changes (retries write the same bytes): let the
            # page's thumbnails come from the browser cache.
            self.set_header("Cache-Control", "private, max-age=3600")
            self.set_header("Content-Disposition", content_disposition(result.name))
            while True:
                chunk = await loop.run_in_executor(None, handle.read, _CHUNK)
                if not chunk:
                    break
                self.write(chunk)
                await self.flush()
        except StreamClosedError:
            return
        finally:
            handle.close()
        self.finish()


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
        return {
            "models": models,
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
            health = await IOLoop.current().run_in_executor(None, self.ctx.service.health)
        except Exception as exc:  # a broken database is exactly what health must report
            log.warning("health check failed: %s", exc)
            self.write_json({"status": "error", "db": "error", "message": str(exc)}, 503)
            return
        self.write_json(health, 200 if health.get("status") == "ok" else 503)


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
