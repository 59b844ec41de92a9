"""What every photoproc handler shares: the mixin with context, JSON, errors and executor
calls, the limits of query parameters, and the download header.

:mod:`photoproc.server.handlers` (REST), :mod:`photoproc.server.websocket` and
:mod:`photoproc.server.openapi` build on this module; it imports none of them.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Any, TypeVar
from urllib.parse import quote

from tornado.ioloop import IOLoop

from ..errors import PhotoprocError
from ..jobs import canonical_job_id
from ..naming import ascii_name
from .context import ServerContext
from .errors import ApiError, from_exception, to_api_error

__all__ = ["MAX_INT", "RESULT_MEDIA_TYPES", "PhotoprocMixin", "content_disposition"]

log = logging.getLogger("photoproc.server")
T = TypeVar("T")

#: the only media types ever sent as results; anything else is refused.
RESULT_MEDIA_TYPES = frozenset({"image/png", "image/webp", "image/jpeg"})
#: bound of every integer query parameter (SQLite and Python agree below it).
MAX_INT = 2**31 - 1


def content_disposition(name: str, kind: str = "attachment") -> str:
    """RFC 6266: an ASCII ``filename`` fallback and the exact name as ``filename*``."""
    base = PurePosixPath(name.replace("\\", "/")).name or "download"
    fallback = ascii_name(base, default="download")
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(base, safe='')}"


class PhotoprocMixin:
    """What every photoproc handler shares: context, JSON, errors, executor calls."""

    ctx: ServerContext
    #: ``photoproc serve`` lets these through without a token (static documents).
    public = False

    # Provided by the RequestHandler this is mixed into.
    request: Any
    set_header: Callable[..., None]
    set_status: Callable[..., None]
    finish: Callable[..., Any]
    write: Callable[..., None]
    flush: Callable[..., Any]
    get_query_argument: Callable[..., Any]
    _finished: bool

    def initialize(self, ctx: ServerContext) -> None:
        self.ctx = ctx

    def set_default_headers(self) -> None:
        super().set_default_headers()  # type: ignore[misc]
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Cache-Control", "no-store")

    # -- responses ----------------------------------------------------------------------------

    def write_json(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(json.dumps(data, separators=(",", ":")))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc_info = kwargs.get("exc_info")
        status, body = from_exception(status_code, exc_info[1] if exc_info else None)
        self.set_status(status)
        if status == 401:
            self.set_header("WWW-Authenticate", 'token realm="photoproc"')
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(json.dumps(body))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        # Client errors are answers, not incidents: no traceback in the server log.
        if isinstance(value, (ApiError, PhotoprocError)):
            log.debug("%s %s: %s", self.request.method, self.request.path, value)
            return
        super().log_exception(typ, value, tb)  # type: ignore[misc]

    def send_api_error(self, error: ApiError) -> None:
        """Answer now, from outside the handler method (e.g. while the body streams in)."""
        if not self._finished:
            self.send_error(error.status_code, exc_info=(type(error), error, None))  # type: ignore[attr-defined]

    # -- arguments ----------------------------------------------------------------------------

    def job_id_arg(self, job_id: str) -> str:
        """A canonical job id, or 404 without touching the database or the disk."""
        text = canonical_job_id(job_id)
        if text is None:
            raise ApiError(404, "job_not_found", f"job {job_id[:64]!r} not found")
        return text

    def int_arg(self, name: str, default: int | None, lo: int, hi: int = MAX_INT) -> int | None:
        raw = self.get_query_argument(name, None)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ApiError(400, "bad_request", f"{name} must be a whole number") from None
        if not lo <= value <= hi:
            raise ApiError(400, "bad_request", f"{name} must be between {lo} and {hi}")
        return value

    # -- service calls -------------------------------------------------------------------------

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a service call on the executor; core errors become API errors here."""
        try:
            return await IOLoop.current().run_in_executor(
                None, functools.partial(fn, *args, **kwargs)
            )
        except PhotoprocError as exc:
            raise to_api_error(exc) from exc

    def links(self, job_id: str) -> dict[str, str]:
        return {
            "status_url": self.ctx.url(f"api/process-status/{job_id}"),
            "download_url": self.ctx.url(f"api/download-results/{job_id}?format=zip"),
            "websocket_url": self.ctx.url(f"ws/job/{job_id}"),
        }
