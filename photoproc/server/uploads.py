"""Streaming ``multipart/form-data`` reception: file parts go straight to disk.

Tornado hands the body over in chunks (``@stream_request_body``);
:class:`MultipartUpload` feeds them to python-multipart's streaming parser and
writes each file part to its own temporary file, so an upload of any size
costs one chunk of memory. Files are named by position (``00000.part``), never
by the client's file name, which is only carried along for display and for
ingest to clean. Plain form fields are kept in memory, bounded in number and
size. Nothing here knows about Tornado, so it is tested on its own.

The event loop never parses: :meth:`MultipartUpload.feed_async` hands each chunk
to a small thread pool of its own, which parses it and creates and writes the
part files (10,001 one-byte parts cost a second of parsing and file creation;
on the loop, ``/health`` waited that long). Tornado waits for each chunk's
future before reading the next, so one upload uses one thread at a time, and a
slow disk slows that upload, never the loop. Every part counts against the
limits as soon as its headers begin, empty file inputs and fields included.
:class:`BodyPace` is the rule that ends a body arriving too slowly.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from python_multipart import MultipartParser
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import parse_options_header

from ..errors import UploadTooLargeError
from ..ingest import UploadedFile

__all__ = ["BodyPace", "MalformedUploadError", "MultipartUpload", "UploadResult", "boundary_of"]

MAX_FIELDS = 200
MAX_FIELD_BYTES = 64 << 10

#: parses upload bodies and writes their files, off the event loop. Two threads:
#: parsing holds the GIL, so more would only slow the loop's own turns.
_FEEDERS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="photoproc-upload")


class MalformedUploadError(ValueError):
    """The body is not the ``multipart/form-data`` it claims to be."""


def boundary_of(content_type: str | None) -> bytes | None:
    """The multipart boundary from a ``Content-Type`` header, ``None`` if not multipart."""
    kind, params = parse_options_header(content_type or "")
    if kind != b"multipart/form-data":
        return None
    boundary = params.get(b"boundary")
    return boundary or None


@dataclass
class UploadResult:
    files: list[UploadedFile] = field(default_factory=list)
    #: form fields by name, every value in order (a repeated field keeps them all).
    fields: dict[str, list[str]] = field(default_factory=dict)
    bytes_received: int = 0


class MultipartUpload:
    """Parse one multipart body, chunk by chunk, into temp files under ``spool_dir``.

    ``feed`` raises :class:`UploadTooLargeError` past ``max_files`` file parts,
    ``max_files + max_fields`` parts of any kind, or ``max_bytes`` of body, and
    :class:`MalformedUploadError` on a broken body; ``finish`` checks the
    closing boundary arrived. ``discard`` removes every file written, whatever
    state the parse is in, and makes later feeds do nothing; it may be called
    from another thread than the one feeding.
    """

    def __init__(
        self,
        boundary: bytes,
        spool_dir: Path,
        *,
        max_files: int,
        max_bytes: int | None = None,
        max_fields: int = MAX_FIELDS,
        max_field_bytes: int = MAX_FIELD_BYTES,
    ) -> None:
        self.spool_dir = Path(spool_dir)
        self.max_files = max_files
        self.max_bytes = max_bytes
        self.max_fields = max_fields
        self.max_field_bytes = max_field_bytes
        self.result = UploadResult()
        self._ended = False
        self._headers: dict[str, bytes] = {}
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._file: BinaryIO | None = None
        self._file_name: str | None = None
        self._file_path: Path | None = None
        self._field_name: str | None = None
        self._field_value = bytearray()
        self._skip = False
        self._file_count = 0
        self._part_count = 0
        self._lock = threading.Lock()
        self._discarded = False
        try:
            self._parser = MultipartParser(
                boundary,
                {
                    "on_part_begin": self._on_part_begin,
                    "on_header_field": self._on_header_field,
                    "on_header_value": self._on_header_value,
                    "on_header_end": self._on_header_end,
                    "on_headers_finished": self._on_headers_finished,
                    "on_part_data": self._on_part_data,
                    "on_part_end": self._on_part_end,
                    "on_end": self._on_end,
                },
            )
        except FormParserError as exc:
            raise MalformedUploadError(f"bad multipart boundary: {exc}") from None

    # -- public -------------------------------------------------------------------------------

    def feed(self, chunk: bytes) -> None:
        """Parse the next piece of the body; on any error the open file is closed."""
        with self._lock:
            if not self._discarded:
                self._feed(chunk)

    async def feed_async(self, chunk: bytes) -> None:
        """:meth:`feed` on the upload threads; the event loop only waits for it."""
        await asyncio.get_running_loop().run_in_executor(_FEEDERS, self.feed, chunk)

    def _feed(self, chunk: bytes) -> None:
        try:
            self.result.bytes_received += len(chunk)
            if self.max_bytes is not None and self.result.bytes_received > self.max_bytes:
                raise UploadTooLargeError(f"upload is over the limit of {self.max_bytes} bytes")
            try:
                self._parser.write(chunk)
            except FormParserError as exc:
                raise MalformedUploadError(f"malformed multipart body: {exc}") from None
        except BaseException:
            self._close_file()
            raise

    def finish(self) -> UploadResult:
        with self._lock:
            if not self._ended:
                self._close_file()
                raise MalformedUploadError("incomplete multipart body (no closing boundary)")
            return self.result

    def close(self) -> None:
        """Close the file being written, if any (the caller removes ``spool_dir``)."""
        with self._lock:
            self._close_file()

    def discard(self) -> None:
        with self._lock:
            self._discarded = True
            self._close_file()
            shutil.rmtree(self.spool_dir, ignore_errors=True)

    # -- parser callbacks ------------------------------------------------------------------------

    def _on_part_begin(self) -> None:
        # Counted before a header is read: empty file inputs and fields are parts
        # too, and a body of a million of them must stop as early as one of files.
        self._part_count += 1
        if self._part_count > self.max_files + self.max_fields:
            raise UploadTooLargeError(
                f"more than {self.max_files + self.max_fields} parts in one upload "
                f"(at most {self.max_files} files and {self.max_fields} fields)"
            )
        self._headers = {}
        self._skip = False

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        name = bytes(self._header_field).decode("latin-1").strip().lower()
        self._headers[name] = bytes(self._header_value)
        self._header_field.clear()
        self._header_value.clear()

    def _on_headers_finished(self) -> None:
        disposition, params = parse_options_header(self._headers.get("content-disposition"))
        if disposition != b"form-data" or b"name" not in params:
            raise MalformedUploadError("a part has no Content-Disposition: form-data name")
        # Header bytes arrive as raw UTF-8 from browsers; latin-1 round-trips them.
        name = params[b"name"].decode("utf-8", "replace")
        if b"filename" in params:
            filename = params[b"filename"].decode("utf-8", "replace")
            if not filename:  # an empty <input type=file> sends filename=""
                self._skip = True
                return
            self._open_file(filename)
        else:
            if sum(len(v) for v in self.result.fields.values()) >= self.max_fields:
                raise MalformedUploadError(f"more than {self.max_fields} form fields")
            self._field_name = name
            self._field_value.clear()

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._skip:
            return
        if self._file is not None:
            self._file.write(data[start:end])
        elif self._field_name is not None:
            self._field_value += data[start:end]
            if len(self._field_value) > self.max_field_bytes:
                raise MalformedUploadError(
                    f"form field {self._field_name!r} is over {self.max_field_bytes} bytes"
                )

    def _on_part_end(self) -> None:
        if self._file is not None:
            self._close_file()
            assert self._file_name is not None and self._file_path is not None
            self.result.files.append(UploadedFile(self._file_name, self._file_path))
        elif self._field_name is not None:
            value = bytes(self._field_value).decode("utf-8", "replace")
            self.result.fields.setdefault(self._field_name, []).append(value)
            self._field_name = None

    def _on_end(self) -> None:
        self._ended = True

    # -- files ---------------------------------------------------------------------------------

    def _open_file(self, filename: str) -> None:
        self._file_count += 1
        if self._file_count > self.max_files:
            raise UploadTooLargeError(f"more than {self.max_files} files in one upload")
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        self._file_path = self.spool_dir / f"{self._file_count - 1:05d}.part"
        self._file_name = filename
        # "xb": a name collision would mean two parts share a file; never silently.
        self._file = open(self._file_path, "xb")  # noqa: SIM115 - closed in _close_file

    def _close_file(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None


class BodyPace:
    """When a request body arrives too slowly to keep its connection and spool file.

    ``idle_timeout``: seconds without a byte. ``min_rate``: bytes per second,
    averaged over each window of ``idle_timeout`` seconds (a client may pause,
    but must make up for it within the window). Times are the caller's clock
    (the event loop's), so the rule is tested with a clock it drives.
    """

    def __init__(self, idle_timeout: float, min_rate: float, now: float) -> None:
        self.idle_timeout = idle_timeout
        self.min_rate = min_rate
        self._last_byte = now
        self._window_start = now
        self._window_bytes = 0

    def received(self, size: int, now: float) -> None:
        if size:
            self._last_byte = now
            self._window_bytes += size

    def problem(self, now: float) -> str | None:
        """Why the body should be given up on at ``now``, or ``None``."""
        idle = now - self._last_byte
        if idle >= self.idle_timeout:
            return f"no body data for {idle:.0f} s (the limit is {self.idle_timeout:g} s)"
        window = now - self._window_start
        if window >= self.idle_timeout:
            rate = self._window_bytes / window
            if rate < self.min_rate:
                return (
                    f"the body arrives at {rate:,.0f} bytes/s over {window:.0f} s, "
                    f"under the minimum of {self.min_rate:,.0f} bytes/s"
                )
            self._window_start, self._window_bytes = now, 0
        return None
