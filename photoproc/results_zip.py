"""The results of a job as one ZIP, streamed with bounded memory.

:meth:`photoproc.service.PhotoService.results_zip` feeds it the job's results;
the server writes the pieces to the client as they come.
"""

from __future__ import annotations

import time
import zipfile
from collections.abc import Generator, Iterable, Iterator
from pathlib import Path
from typing import Protocol

__all__ = ["ZipEntry", "ZipSink", "stream_zip", "zip_time"]


class ZipEntry(Protocol):
    """What a ZIP member needs: its name in the archive, the file and its size."""

    @property
    def name(self) -> str: ...
    @property
    def path(self) -> Path: ...
    @property
    def size(self) -> int: ...


class ZipSink:
    """A write-only, non-seekable file for :class:`zipfile.ZipFile` that hands the
    bytes out in pieces, so a ZIP of any size is streamed with bounded memory."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._position = 0

    def write(self, data: bytes) -> int:
        if data:
            self._chunks.append(bytes(data))
            self._position += len(data)
        return len(data)

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass  # a ZipFile never closes a file it was handed; here for the file protocol

    def drain(self) -> Iterator[bytes]:
        if self._chunks:
            chunks, self._chunks = self._chunks, []
            yield b"".join(chunks)


def zip_time(path: Path) -> tuple[int, int, int, int, int, int]:
    stamp = time.localtime(max(path.stat().st_mtime, 315_532_800 + 86_400))  # ZIP starts at 1980
    return stamp[:6]


def stream_zip(
    files: Iterable[ZipEntry], chunk_size: int = 1 << 20
) -> Generator[bytes, None, None]:
    """The files as a ZIP, piece by piece (stored: PNG/WebP/JPEG do not compress
    further); a file deleted meanwhile is left out."""
    sink = ZipSink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for result in files:
            try:
                source = result.path.open("rb")
            except OSError:  # deleted meanwhile
                continue
            with source:
                info = zipfile.ZipInfo(result.name, date_time=zip_time(result.path))
                info.compress_type = zipfile.ZIP_STORED
                info.external_attr = 0o644 << 16
                with zf.open(info, "w", force_zip64=result.size >= 0x7FFF0000) as target:
                    while chunk := source.read(chunk_size):
                        target.write(chunk)
                        yield from sink.drain()
            yield from sink.drain()
    yield from sink.drain()
