"""``POST api/upload-and-process``: the multipart body streamed to disk, then one submit.

The body is parsed as it arrives (:mod:`photoproc.server.uploads`), so a big upload
never sits in memory; limits are enforced from the headers before a byte is read.
"""

from __future__ import annotations

import functools
import inspect
import logging
import shutil
import uuid
from pathlib import Path
from typing import Any

from tornado.ioloop import IOLoop, PeriodicCallback

from ..errors import InvalidOptionsError, NoImagesError, PhotoprocError, UploadTooLargeError
from ..options import ProcessOptions
from .errors import ApiError, to_api_error
from .handler_base import PhotoprocMixin
from .uploads import BodyPace, MalformedUploadError, MultipartUpload, boundary_of

__all__ = ["UploadMixin"]

log = logging.getLogger("photoproc.server")

#: form fields that are transport, not processing options.
_TRANSPORT_FIELDS = frozenset({"_xsrf", "token"})


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
    _pace: BodyPace | None = None
    _pace_timer: PeriodicCallback | None = None

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
        # Chunked bodies have no Content-Length: MultipartUpload counts instead and answers
        # 413. Tornado refuses a chunk that would cross its own limit before handing us a
        # byte of it, with a bare 400, so its limit sits a whole `limit` above ours.
        self.request.connection.set_max_body_size(2 * limit + 1)
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
        # A body that trickles in would hold its connection and spool file for ever.
        settings = self.ctx.settings
        self._pace = BodyPace(
            settings.body_idle_timeout, settings.body_min_rate, IOLoop.current().time()
        )
        self._pace_timer = PeriodicCallback(
            self._check_pace, 1000 * min(1.0, settings.body_idle_timeout / 4)
        )
        self._pace_timer.start()

    async def data_received(self, chunk: bytes) -> None:
        upload = self._upload
        if upload is None or self._finished:
            return
        if self._pace is not None:
            self._pace.received(len(chunk), IOLoop.current().time())
        try:
            await upload.feed_async(chunk)  # parsed off the loop; Tornado waits for it
        except UploadTooLargeError as exc:
            self._abort(to_api_error(exc))
        except MalformedUploadError as exc:
            self._abort(ApiError(400, "malformed_upload", str(exc)))

    def _check_pace(self) -> None:
        problem = self._pace.problem(IOLoop.current().time()) if self._pace else None
        if problem is not None:
            log.info("%s: upload dropped: %s", self.request.remote_ip, problem)
            self._abort(ApiError(408, "body_timeout", f"upload dropped: {problem}"))

    def _stop_pace(self) -> None:
        timer, self._pace_timer, self._pace = self._pace_timer, None, None
        if timer is not None:
            timer.stop()

    def _abort(self, error: ApiError) -> None:
        self._cleanup()
        self.send_api_error(error)

    async def post(self) -> None:
        self._stop_pace()  # the whole body is in
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
        # The service has copied what it kept; the spool folder goes, off the IOLoop
        # (discard waits for a chunk still being parsed, then stops the parse).
        self._stop_pace()
        spool, self._spool = self._spool, None
        upload, self._upload = self._upload, None
        loop = IOLoop.current()
        if upload is not None:
            loop.run_in_executor(None, upload.discard)
        elif spool is not None:
            loop.run_in_executor(None, functools.partial(shutil.rmtree, spool, True))
