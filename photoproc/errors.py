"""Exceptions raised by photoproc.

Every error the core raises is a :class:`PhotoprocError`, carries the data
needed to act on it, and reads well as ``str(exc)`` in a widget or a JSON body::

    PhotoprocError
     ├── InvalidOptionsError        bad processing option (field, reason)
     ├── ImageError
     │    ├── InvalidImageError     not an image, truncated, unsupported
     │    └── ImageTooLargeError    over the configured pixel limit
     ├── ModelError
     │    ├── UnknownModelError     no such model name
     │    └── ModelNotAvailableError  not installed and could not be fetched
     ├── IngestError                an upload refused as a whole (``entry``: the input to blame)
     │    ├── NoImagesError         nothing in it is an image type             (HTTP 415)
     │    ├── MalformedArchiveError a damaged archive, or one without images   (HTTP 422)
     │    └── UploadTooLargeError   over a size / count limit, a zip bomb      (HTTP 413)
     └── JobError
          ├── JobNotFoundError
          ├── ItemNotFoundError
          └── JobStateError         operation not allowed in the job's state

Only ``photoproc.server`` maps these to HTTP status codes, in one place.
:func:`describe_error` is what a user is shown for an exception that is *not*
one of these (a bug, a library's error): never a traceback or a file path.
"""

from __future__ import annotations

import re

__all__ = [
    "ImageError",
    "ImageTooLargeError",
    "IngestError",
    "InvalidImageError",
    "InvalidOptionsError",
    "ItemNotFoundError",
    "JobError",
    "JobNotFoundError",
    "JobStateError",
    "MalformedArchiveError",
    "ModelError",
    "ModelNotAvailableError",
    "NoImagesError",
    "PhotoprocError",
    "UnknownModelError",
    "UploadTooLargeError",
    "describe_error",
]


class PhotoprocError(Exception):
    """Base class of every error photoproc raises on purpose."""


class InvalidOptionsError(PhotoprocError, ValueError):
    """A processing option is missing, of the wrong type or out of range."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"invalid option {field!r}: {reason}")


class ImageError(PhotoprocError):
    """An input could not be turned into pixels."""


class InvalidImageError(ImageError):
    """Not an image, a truncated file, or a format photoproc cannot read."""


class ImageTooLargeError(ImageError):
    """The image has more pixels than the configured limit."""

    def __init__(self, width: int, height: int, max_pixels: int) -> None:
        self.width = width
        self.height = height
        self.max_pixels = max_pixels
        super().__init__(
            f"image is {width}x{height} ({width * height / 1e6:.1f} MP), "
            f"over the limit of {max_pixels / 1e6:.1f} MP"
        )


class ModelError(PhotoprocError):
    """A segmentation model cannot be used."""


class UnknownModelError(ModelError, ValueError):
    def __init__(self, name: str, known: list[str] | tuple[str, ...] = ()) -> None:
        self.name = name
        hint = f"; known models: {', '.join(known)}" if known else ""
        super().__init__(f"unknown model {name!r}{hint}")


class ModelNotAvailableError(ModelError):
    """The model's weights are not on this host and could not be downloaded."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason
        super().__init__(reason)


class IngestError(PhotoprocError):
    """An upload or archive was refused as a whole; ``entry`` names the input to blame."""

    def __init__(self, message: str, *, entry: str | None = None) -> None:
        self.entry = entry
        super().__init__(message)


class NoImagesError(IngestError):
    """Nothing in the upload is of an image type (text, empty files, nested archives…)."""


class MalformedArchiveError(IngestError):
    """A damaged archive, or an upload whose archives hold no image at all."""


class UploadTooLargeError(IngestError):
    """An upload exceeds a configured size or count limit (a zip bomb included)."""


class JobError(PhotoprocError):
    pass


class JobNotFoundError(JobError, KeyError):
    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"job {job_id} not found")

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class ItemNotFoundError(JobError, KeyError):
    def __init__(self, job_id: str, index: int) -> None:
        self.job_id = job_id
        self.index = index
        super().__init__(f"job {job_id} has no item {index}")

    def __str__(self) -> str:
        return str(self.args[0])


class JobStateError(JobError):
    """The operation is not allowed while the job is in its current state."""


# A path as it appears in library messages: "/io/opencv/modules/core/src/arithm.cpp:1531",
# "C:\\build\\x.cpp", "'/data/jobs/…/in/00001-a.jpg'".
_PATH = re.compile(r"(?<![\w.])(?:[A-Za-z]:)?[\\/][^\s'\"(),;]*")


def describe_error(exc: BaseException) -> str:
    """One plain line for an unexpected exception: its kind and gist, no paths or traceback.

    OpenCV's errors carry the library's build path (``OpenCV(4.14.0)
    /io/opencv/modules/core/src/arithm.cpp:1531: error: (-209:Sizes of input
    arguments do not match) …``); their ``err`` attribute holds just the gist.
    """
    if isinstance(exc, PhotoprocError):
        return str(exc) or type(exc).__name__
    gist = getattr(exc, "err", None) if type(exc).__module__.startswith("cv2") else None
    text = str(gist or exc).strip().splitlines()
    message = _PATH.sub("…", text[0] if text else "").strip()
    kind = "OpenCV error" if gist else type(exc).__name__
    if len(message) > 200:
        message = message[:199] + "…"
    return f"{kind}: {message}" if message else kind
