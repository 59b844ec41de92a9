"""The one place where photoproc errors become HTTP statuses.

The core raises :class:`~photoproc.errors.PhotoprocError` subclasses that know
nothing about HTTP; handlers turn them into :class:`ApiError` here and every
host writes the same JSON body::

    {"error": "job_not_found", "message": "job 3f2… not found"}

``error`` is a stable machine-readable code, ``message`` is for people.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from tornado.web import HTTPError

from ..errors import (
    ImageTooLargeError,
    IngestError,
    InvalidImageError,
    InvalidOptionsError,
    ItemNotFoundError,
    JobNotFoundError,
    JobStateError,
    MalformedArchiveError,
    ModelError,
    NoImagesError,
    PhotoprocError,
    UnknownModelError,
    UploadTooLargeError,
)

__all__ = ["STATUS_CODES", "ApiError", "error_body", "from_exception", "to_api_error"]

# Most specific first: the first isinstance match wins.
_MAPPING: tuple[tuple[type[PhotoprocError], int, str], ...] = (
    (JobNotFoundError, 404, "job_not_found"),
    (ItemNotFoundError, 404, "item_not_found"),
    (JobStateError, 409, "conflict"),
    (InvalidOptionsError, 422, "invalid_option"),
    (UnknownModelError, 422, "unknown_model"),
    (ModelError, 422, "model_not_available"),
    (NoImagesError, 415, "no_images"),
    (MalformedArchiveError, 422, "malformed_archive"),
    (UploadTooLargeError, 413, "too_large"),
    (ImageTooLargeError, 413, "image_too_large"),
    (InvalidImageError, 415, "invalid_image"),
)

#: default ``error`` code for statuses raised without one (tornado's own 404/405…).
STATUS_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_option",
    500: "internal_error",
    503: "unavailable",
}


class ApiError(HTTPError):
    """An HTTP error with a JSON code; ``message`` is safe to show to the client."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        # log_message is %-formatted by tornado: keep user text out of the format string.
        super().__init__(status, "%s", message, reason=HTTPStatus(status).phrase)
        self.code = code
        self.message = message
        self.extra = extra


def to_api_error(exc: PhotoprocError) -> ApiError:
    """Map a core error to its status and code (400 for anything unlisted)."""
    for kind, status, code in _MAPPING:
        if isinstance(exc, kind):
            extra: dict[str, Any] = {}
            if isinstance(exc, InvalidOptionsError):
                extra["field"] = exc.field
            elif isinstance(exc, IngestError) and exc.entry is not None:
                extra["entry"] = exc.entry  # the input to blame, as the job would name it
            return ApiError(status, code, str(exc), **extra)
    return ApiError(400, "bad_request", str(exc))


def from_exception(status: int, exc: BaseException | None) -> tuple[int, dict[str, Any]]:
    """``(status, body)`` for whatever ended a request; internals never leak into the body."""
    if isinstance(exc, PhotoprocError):
        exc = to_api_error(exc)
    if isinstance(exc, ApiError):
        return exc.status_code, error_body(exc.status_code, exc.code, exc.message, **exc.extra)
    if isinstance(exc, HTTPError):
        status = exc.status_code
        message = exc.log_message % exc.args if exc.log_message else None
        return status, error_body(status, None, message or exc.reason)
    return status, error_body(status, None, None)


def error_body(status: int, code: str | None, message: str | None, **extra: Any) -> dict[str, Any]:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "error"
    body = {
        "error": code or STATUS_CODES.get(status, "error"),
        "message": message or phrase,
    }
    body.update(extra)
    return body
