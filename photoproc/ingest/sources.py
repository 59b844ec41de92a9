"""What ingestion yields: :class:`Source` (an image to process) and :class:`Skipped`.

A source does not hold its bytes. It holds a way to open them again — a path,
an in-memory upload, an archive entry — so that walking a 10,000-file folder or
archive costs a few KiB per file, and the bytes are read once, by whoever
processes or stores the image. Every read counts the bytes it actually gets
(for an archive entry: the bytes actually inflated, never the sizes the archive
declares) and stops at the first byte over a limit.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..errors import InvalidOptionsError, UploadTooLargeError
from ..fsutil import write_atomic

__all__ = [
    "CHUNK_BYTES",
    "MALFORMED",
    "NOT_IMAGE",
    "TOO_LARGE",
    "IngestLimits",
    "Skipped",
    "Source",
    "UploadedFile",
]

#: read size when streaming; big enough to amortise calls, small enough to bound memory.
CHUNK_BYTES = 1 << 20

#: a stream opener: each call gives a fresh binary stream positioned at the start.
Opener = Callable[[], "contextlib.AbstractContextManager[BinaryIO]"]
#: called with (bytes just read, bytes read so far); raises to stop the read.
Meter = Callable[[int, int], None]

# What a skipped input says about an upload in which nothing could be used — the
# cause an upload is refused for (HTTP 413, 422 and 415; see PhotoService.submit).
#: over a limit: too big, a zip bomb, too many files.
TOO_LARGE = "too_large"
#: a damaged archive or entry, or one that cannot be read safely (zip slip, encrypted).
MALFORMED = "malformed"
#: not of an image type (text, an empty file, a nested archive, a hidden file).
NOT_IMAGE = "not_image"


@dataclass(frozen=True)
class IngestLimits:
    """Bounds on what one upload, job or archive may make photoproc read.

    All byte limits count bytes actually read or inflated, so an archive that
    lies about its sizes cannot get past them.
    """

    #: images per upload/job; beyond it the rest is skipped with one reason.
    max_files: int = 10_000
    #: files in one archive, counted in its central directory: more refuses the upload.
    max_entries: int = 10_000
    #: one image, bytes actually read or inflated.
    max_file_bytes: int = 256 << 20
    #: all bytes inflated from one archive (declared: more refuses the upload; actual:
    #: the rest of the archive is skipped).
    max_total_bytes: int = 4 << 30
    #: inflated / compressed bytes of one archive entry, counted while inflating.
    max_ratio: float = 250.0

    def __post_init__(self) -> None:
        for name in ("max_files", "max_entries", "max_file_bytes", "max_total_bytes", "max_ratio"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise InvalidOptionsError(name, f"must be a positive number, got {value!r}")


@dataclass(frozen=True)
class UploadedFile:
    """An upload the HTTP server has already streamed into a temporary file.

    ``name`` is what the client called it (cleaned before use); ``path`` is the
    temporary file, which must outlive the sources made from it.
    """

    name: str
    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))


@dataclass(frozen=True)
class Skipped:
    """An input that will not be processed, and why (``reason`` is shown to the user as is).

    ``kind`` is :data:`TOO_LARGE`, :data:`MALFORMED` or :data:`NOT_IMAGE`;
    ``archive`` names the archive an entry came from.
    """

    name: str
    reason: str
    kind: str = NOT_IMAGE
    archive: str | None = None

    def __str__(self) -> str:
        return f"{self.name}: {self.reason}"


class Source:
    """One image to process: a clean relative ``name``, its sniffed ``format``, its bytes.

    Reading may raise :class:`~photoproc.errors.UploadTooLargeError` (a limit was
    reached while reading) or :class:`~photoproc.errors.InvalidImageError` (a
    corrupt archive entry); the caller records the item as failed and goes on.
    """

    __slots__ = ("_max_bytes", "_meter", "_open", "format", "name")

    def __init__(
        self,
        name: str,
        format: str | None,
        opener: Opener,
        *,
        max_bytes: int,
        meter: Meter | None = None,
    ) -> None:
        self.name = name
        self.format = format
        self._open = opener
        self._max_bytes = max_bytes
        self._meter = meter

    def __repr__(self) -> str:
        return f"Source({self.name!r}, format={self.format!r})"

    def chunks(self, *, stop: int | None = None) -> Iterator[bytes]:
        """The bytes in pieces of at most :data:`CHUNK_BYTES`, limits enforced as they come.

        ``stop`` ends the stream after that many bytes (sniffing needs only a head).
        """
        size = 0
        with self._open() as stream:
            while stop is None or size < stop:
                want = CHUNK_BYTES if stop is None else min(CHUNK_BYTES, stop - size)
                chunk = stream.read(want)
                if not chunk:
                    break
                size += len(chunk)
                if size > self._max_bytes:
                    raise UploadTooLargeError(
                        f"{self.name}: larger than the limit of {self._max_bytes:,} bytes"
                    )
                if self._meter is not None:
                    self._meter(len(chunk), size)
                yield chunk

    def head(self, n: int) -> bytes:
        """The first ``n`` bytes (fewer for a shorter file), read and metered like the rest."""
        with contextlib.closing(self.chunks(stop=n)) as chunks:
            return b"".join(chunks)

    def read(self) -> bytes:
        """All the bytes (at most ``max_file_bytes`` of them)."""
        with contextlib.closing(self.chunks()) as chunks:
            return b"".join(chunks)

    def save(self, dest: str | os.PathLike[str]) -> int:
        """Stream the bytes to ``dest`` (temp file + ``os.replace``); returns the size.

        On any error, including a limit reached halfway, ``dest`` is left as it was
        and the temporary file is removed.
        """
        size = 0

        def counted(chunks: Iterator[bytes]) -> Iterator[bytes]:
            nonlocal size
            for chunk in chunks:
                size += len(chunk)
                yield chunk

        with contextlib.closing(self.chunks()) as chunks:
            write_atomic(dest, counted(chunks))
        return size
