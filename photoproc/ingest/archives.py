"""ZIP archives → sources, one entry at a time, with every hostile case refused.

Entries are never extracted as a whole: each is opened with ``ZipFile.open``
and read in chunks, so memory stays at one chunk per reader. What an entry may
cost is counted on the bytes actually inflated — per entry (``max_file_bytes``,
``max_ratio``) and per archive (``max_total_bytes``) — because the sizes in the
headers are whatever the archive's author wrote. (``zipfile`` itself stops at
the declared size and then fails the CRC check, so an entry that understates
its size ends as a corrupt entry after inflating no more than it declared.)
"""

from __future__ import annotations

import contextlib
import stat
import threading
import weakref
import zlib
from collections.abc import Callable, Iterator
from typing import BinaryIO
from zipfile import BadZipFile, ZipFile, ZipInfo

from ..errors import InvalidImageError, UploadTooLargeError
from ..naming import clean_path
from .names import entry_problem, hidden_part
from .sources import MALFORMED, NOT_IMAGE, TOO_LARGE, IngestLimits, Skipped, Source

__all__ = ["Archive", "iter_archive"]

#: inflating this much is never a bomb, whatever the ratio (a blank BMP compresses 1000:1).
RATIO_GRACE_BYTES = 1 << 20

_FLAG_ENCRYPTED = 0x1
_FLAG_UTF8 = 0x800
#: what ``zipfile`` raises on damaged data, beyond ``BadZipFile``.
_CORRUPT = (BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, ValueError)


class Archive:
    """One ZIP file, opened lazily and shared by the sources made from its entries.

    The handle is opened while the archive is walked and closed when the walk
    ends; a source read later opens it again (once — parsing the central
    directory per read would make reading n entries O(n²)), and that handle is
    closed when the archive object is garbage-collected, i.e. when the last of
    its sources is gone.
    """

    def __init__(self, name: str, open_file: Callable[[], str | BinaryIO], limits: IngestLimits):
        self.name = name
        self.limits = limits
        self.inflated = 0
        self._open_file = open_file
        self._lock = threading.Lock()
        self._zip: ZipFile | None = None
        self._close: weakref.finalize | None = None

    @property
    def exhausted(self) -> bool:
        return self.inflated > self.limits.max_total_bytes

    def zipfile(self) -> ZipFile:
        with self._lock:
            return self._ensure_open()

    def _ensure_open(self) -> ZipFile:
        if self._zip is None:
            zf = ZipFile(self._open_file())
            self._zip = zf
            self._close = weakref.finalize(self, zf.close)
        return self._zip

    def open(self, info: ZipInfo) -> BinaryIO:
        """One entry's stream; under the lock so that a concurrent :meth:`close` cannot
        slip in between. An open entry survives the close (``zipfile`` counts its readers)."""
        with self._lock:
            return self._ensure_open().open(info)

    def close(self) -> None:
        with self._lock:
            if self._close is not None:
                self._close()
            self._zip = self._close = None

    def count(self, name: str, info: ZipInfo, added: int, size: int) -> None:
        """Meter for one entry's read: refuse bombs while they inflate."""
        with self._lock:
            self.inflated += added
            total = self.inflated
        limits = self.limits
        if total > limits.max_total_bytes:
            raise UploadTooLargeError(
                f"{name}: archive {self.name} inflates to more than "
                f"{limits.max_total_bytes:,} bytes in all"
            )
        if size > RATIO_GRACE_BYTES and size > limits.max_ratio * max(info.compress_size, 1):
            raise UploadTooLargeError(
                f"{name}: inflates more than {limits.max_ratio:g} times its compressed size "
                f"({info.compress_size:,} bytes) — a zip bomb?"
            )

    def opener(self, name: str, info: ZipInfo) -> Callable[[], _EntryStream]:
        return lambda: _EntryStream(name, self.open(info))


class _EntryStream:
    """An open entry whose damage surfaces as :class:`InvalidImageError`, not zipfile's errors."""

    def __init__(self, name: str, stream: BinaryIO) -> None:
        self._name = name
        self._stream = stream

    def read(self, n: int) -> bytes:
        try:
            return self._stream.read(n)
        except _CORRUPT as exc:
            raise InvalidImageError(f"{self._name}: corrupt archive entry ({exc})") from exc

    def __enter__(self) -> _EntryStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stream.close()


def entry_name(info: ZipInfo) -> str:
    """The entry's name, repairing UTF-8 names stored without the UTF-8 flag.

    macOS Archive Utility and older tools write UTF-8 but leave the flag unset,
    which ``zipfile`` then decodes as cp437 (``Ã¼`` for ``ü``).
    """
    name = info.filename
    if not info.flag_bits & _FLAG_UTF8 and not name.isascii():
        with contextlib.suppress(UnicodeError):
            return name.encode("cp437").decode("utf-8")
    return name


def iter_archive(
    archive: Archive,
    stem: str,
    sniff: Callable[[bytes], str | None],
    head_bytes: int,
) -> Iterator[Source | Skipped]:
    """The entries of ``archive`` as ``<stem>/<entry>`` sources, in archive order.

    Raises :class:`UploadTooLargeError` before reading any entry when the central
    directory lists more than ``max_entries`` files, or declares more than
    ``max_total_bytes`` for them: the upload is refused as a whole rather than
    half-read. Hidden and junk entries (see :mod:`.names`) are passed over.
    """
    try:
        zf = archive.zipfile()
    except (*_CORRUPT, OSError) as exc:
        yield Skipped(archive.name, f"corrupt archive: {_plain(exc)}", MALFORMED)
        return
    limits = archive.limits
    try:
        infos = [i for i in zf.infolist() if not i.is_dir() and not _ignored(i.filename)]
        if len(infos) > limits.max_entries:
            raise UploadTooLargeError(
                f"{archive.name}: {len(infos):,} files in the archive, over the limit of "
                f"{limits.max_entries:,}",
                entry=archive.name,
            )
        declared = sum(i.file_size for i in infos)
        if declared > limits.max_total_bytes:
            raise UploadTooLargeError(
                f"{archive.name}: its files declare {declared:,} bytes, over the limit of "
                f"{limits.max_total_bytes:,} inflated bytes per archive",
                entry=archive.name,
            )
        if not infos:
            yield Skipped(archive.name, "no files in the archive", MALFORMED)
        for index, info in enumerate(infos):
            if archive.exhausted:  # the entries lied about their sizes
                yield Skipped(
                    archive.name,
                    f"size limit ({limits.max_total_bytes:,} bytes inflated) reached; "
                    f"{len(infos) - index} more entries not read",
                    TOO_LARGE,
                )
                return
            yield _entry(archive, info, stem, sniff, head_bytes)
    finally:
        archive.close()


def _ignored(raw: str) -> bool:
    """Hidden and junk entries are passed over silently — but never a hostile name, which
    must show as skipped."""
    return entry_problem(raw) is None and hidden_part(raw) is not None


def _plain(exc: BaseException) -> str:
    return str(exc) if not isinstance(exc, OSError) else (exc.strerror or type(exc).__name__)


def _entry(
    archive: Archive,
    info: ZipInfo,
    stem: str,
    sniff: Callable[[bytes], str | None],
    head_bytes: int,
) -> Source | Skipped:
    raw = entry_name(info)

    def skip(name: str, reason: str, kind: str = MALFORMED) -> Skipped:
        return Skipped(name, reason, kind, archive=archive.name)

    problem = entry_problem(raw)
    if problem:
        return skip(archive.name, problem)
    name = clean_path(f"{stem}/{raw}")
    if stat.S_ISLNK(info.external_attr >> 16):
        return skip(name, "symlink")
    if info.flag_bits & _FLAG_ENCRYPTED:
        return skip(name, "encrypted entry")
    limits = archive.limits
    if info.file_size > limits.max_file_bytes:
        return skip(
            name,
            f"too large ({info.file_size:,} bytes; the limit is {limits.max_file_bytes:,})",
            TOO_LARGE,
        )
    source = Source(
        name,
        None,
        archive.opener(name, info),
        max_bytes=limits.max_file_bytes,
        meter=lambda added, size: archive.count(name, info, added, size),
    )
    try:
        head = source.head(head_bytes)
    except UploadTooLargeError as exc:
        return skip(name, str(exc), TOO_LARGE)
    except InvalidImageError as exc:
        return skip(name, f"corrupt entry: {exc.__cause__ or exc}")
    except NotImplementedError as exc:  # Deflate64, AES, …: raised by ZipFile.open
        return skip(name, f"unsupported entry ({exc})")
    except (*_CORRUPT, OSError) as exc:  # raised by ZipFile.open, before any read
        return skip(name, f"corrupt entry: {_plain(exc)}")
    source.format = sniff(head)
    if source.format is not None:
        return source
    if is_zip(head):
        return skip(name, "nested archive", NOT_IMAGE)
    return skip(name, "empty file" if not head else "not an image", NOT_IMAGE)


def is_zip(head: bytes) -> bool:
    """ZIP magic: a local file header, or the end record of an empty archive."""
    return head[:4] in (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
