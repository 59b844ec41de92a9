"""Inputs of every kind → :class:`Source` / :class:`Skipped`: paths, folders, uploads, ZIPs.

What a file *is* is decided by its first bytes, never by its name or by
``zipfile.is_zipfile`` (which says yes to a JPEG with a ZIP appended): an image
format sniffed → an image; else ZIP magic → an archive; else not an image.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import tempfile
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..errors import UploadTooLargeError
from ..naming import clean_component, clean_path
from .archives import Archive, is_zip, iter_archive
from .names import HIDDEN_REASON, archive_stem, hidden_part, is_ignored
from .sources import (
    CHUNK_BYTES,
    NOT_IMAGE,
    TOO_LARGE,
    IngestLimits,
    Opener,
    Skipped,
    Source,
    UploadedFile,
)

__all__ = ["DEFAULT_LIMITS", "iter_sources"]

#: bytes read to decide what a file is; every sniffed format needs far fewer.
HEAD_BYTES = 4096
#: a non-seekable upload is spooled to disk beyond this much memory.
_SPOOL_MEMORY = 8 * CHUNK_BYTES


DEFAULT_LIMITS = IngestLimits()


@dataclass(frozen=True)
class _Context:
    limits: IngestLimits
    sniff: Callable[[bytes], str | None]
    recurse: bool


def iter_sources(
    inputs: Iterable[object],
    *,
    limits: IngestLimits = DEFAULT_LIMITS,
    recurse_archives_in_folders: bool = True,
) -> Iterator[Source | Skipped]:
    """Every image in ``inputs``, in input order, and every input that will not be processed.

    ``inputs`` holds paths (a file, a folder walked recursively in sorted order, a
    ZIP), ``(name, bytes)``, ``(name, binary file object)`` and
    :class:`UploadedFile` values. Names (clean, see :mod:`photoproc.naming`): a
    file → ``"a.jpg"``; in a folder → relative to it (``"sub/b.jpg"``); in a ZIP
    ``x.zip`` → ``"x/<entry>"`` (under its folder path when found in a folder).
    Duplicate names are kept (outputs are made unique by
    :class:`~photoproc.naming.UniqueStems`). Hidden names: see :mod:`.names`.
    Beyond ``limits.max_files`` images the rest is skipped with one reason and
    not read. Nothing is read in full here: only a few KiB per file, to sniff
    its type. An archive over its limits raises
    :class:`~photoproc.errors.UploadTooLargeError` before any of it is read.
    """
    from ..pipeline.decode import sniff_format  # the pipeline is heavy; ingest alone is not

    if isinstance(inputs, (str, os.PathLike, UploadedFile)):
        inputs = [inputs]
    ctx = _Context(limits, sniff_format, recurse_archives_in_folders)
    count = 0
    for item in inputs:
        with contextlib.closing(_iter_input(item, ctx)) as results:
            for result in results:
                if isinstance(result, Source):
                    if count == limits.max_files:
                        yield Skipped(
                            result.name,
                            f"file limit ({limits.max_files}) reached; "
                            "the rest of the input was not read",
                            TOO_LARGE,
                        )
                        return
                    count += 1
                yield result


def _iter_input(item: object, ctx: _Context) -> Iterator[Source | Skipped]:
    if isinstance(item, (str, os.PathLike)):
        yield from _iter_path(Path(item), ctx)
    elif isinstance(item, UploadedFile):
        name = clean_path(item.name, default="upload")
        if hidden_part(item.name):
            yield Skipped(name, HIDDEN_REASON)
        else:
            yield from _iter_file(name, *_on_disk(item.path), ctx)
    elif isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
        name, data = clean_path(item[0], default="upload"), item[1]
        if hidden_part(item[0]):
            yield Skipped(name, HIDDEN_REASON)
        elif isinstance(data, (bytes, bytearray, memoryview)):
            data = bytes(data)
            yield from _iter_file(name, lambda: io.BytesIO(data), lambda: io.BytesIO(data), ctx)
        elif callable(getattr(data, "read", None)):
            yield from _iter_stream(name, data, ctx)
        else:
            raise TypeError(f"upload {name!r}: expected bytes or a binary file, got {data!r}")
    else:
        raise TypeError(
            "an input is a path, an UploadedFile, (name, bytes) or (name, binary file); "
            f"got {item!r}"
        )


def _iter_path(path: Path, ctx: _Context) -> Iterator[Source | Skipped]:
    if path.is_dir():
        yield from _walk(path, path.resolve(), "", ctx)
    elif path.is_file() and is_ignored(path.name):
        yield Skipped(clean_component(path.name), HIDDEN_REASON)
    elif path.is_file():
        yield from _iter_file(clean_component(path.name), *_on_disk(path), ctx)
    elif path.exists():
        yield Skipped(str(path), "not a regular file")
    else:
        yield Skipped(str(path), "no such file or folder")


def _on_disk(path: Path) -> tuple[Opener, Callable[[], str]]:
    """How to open a file on disk: as a stream, and as what ``ZipFile`` opens itself."""
    return functools.partial(open, path, "rb"), functools.partial(str, path)


def _walk(folder: Path, base: Path, prefix: str, ctx: _Context) -> Iterator[Source | Skipped]:
    """Depth-first in name order; hidden and junk names ignored; links kept inside ``base``."""
    try:
        with os.scandir(folder) as scan:
            entries = sorted(scan, key=lambda e: e.name)
    except OSError as exc:
        yield Skipped(prefix.rstrip("/") or str(folder), f"unreadable folder ({exc.strerror})")
        return
    for entry in entries:
        if is_ignored(entry.name):
            continue
        name = clean_path(prefix + clean_component(entry.name))
        path = Path(entry.path)
        try:
            if entry.is_symlink():
                # realpath, unlike Path.resolve on 3.11, never raises on a link loop.
                target = Path(os.path.realpath(path))
                if not target.exists():  # dangling, or a loop
                    yield Skipped(name, "broken symlink")
                    continue
                if not target.is_relative_to(base):
                    yield Skipped(name, "symlink out of the folder")
                    continue
                if target.is_dir():  # its files are walked where they really are
                    yield Skipped(name, "symlinked folder (not followed)")
                    continue
                regular = target.is_file()
            elif entry.is_dir(follow_symlinks=False):
                yield from _walk(path, base, name + "/", ctx)
                continue
            else:
                regular = entry.is_file(follow_symlinks=False)
        except OSError as exc:
            yield Skipped(name, f"unreadable ({exc.strerror})")
            continue
        if not regular:  # a FIFO would block the reader, a device never ends
            yield Skipped(name, "not a regular file")
            continue
        yield from _iter_file(name, *_on_disk(path), ctx, in_folder=True)


def _iter_stream(
    name: str, stream: BinaryIO, ctx: _Context, owner: object = None
) -> Iterator[Source | Skipped]:
    """A file object: read in place when seekable, else spooled once (it can be read only once).

    ``owner`` is kept alive by the sources' openers (default arguments) for as long
    as any of them may still read ``stream``.
    """
    seekable = getattr(stream, "seekable", None)
    if seekable is not None and seekable():
        start = stream.tell()

        @contextlib.contextmanager
        def rewound(owner: object = owner) -> Iterator[BinaryIO]:
            stream.seek(start)
            yield stream  # not closed: the caller owns it

        yield from _iter_file(name, rewound, lambda owner=owner: stream, ctx)
        return
    spool = _Spool()
    cap = max(ctx.limits.max_file_bytes, ctx.limits.max_total_bytes)
    size = 0
    while chunk := stream.read(CHUNK_BYTES):
        size += len(chunk)
        if size > cap:
            yield Skipped(name, f"larger than the limit of {cap:,} bytes", TOO_LARGE)
            return
        spool.file.write(chunk)
    spool.file.seek(0)
    yield from _iter_stream(name, spool.file, ctx, owner=spool)


class _Spool:
    """A temporary copy of a stream, closed (and deleted) once its last source is gone."""

    def __init__(self) -> None:
        # Not a `with`: the copy must outlive this call, as long as its sources do.
        self.file = tempfile.SpooledTemporaryFile(max_size=_SPOOL_MEMORY)  # noqa: SIM115
        weakref.finalize(self, self.file.close)


def _iter_file(
    name: str,
    opener: Opener,
    zip_file: Callable[[], str | BinaryIO],
    ctx: _Context,
    *,
    in_folder: bool = False,
) -> Iterator[Source | Skipped]:
    source = Source(name, None, opener, max_bytes=ctx.limits.max_file_bytes)
    try:
        head = source.head(HEAD_BYTES)
    except OSError as exc:
        yield Skipped(name, f"unreadable ({exc.strerror})")
        return
    except UploadTooLargeError as exc:  # limits smaller than a head: odd, but honoured
        yield Skipped(name, str(exc), TOO_LARGE)
        return
    source.format = ctx.sniff(head)
    if source.format is not None:
        yield source
    elif is_zip(head):
        if in_folder and not ctx.recurse:
            yield Skipped(name, "archive in a folder (not opened)")
        else:
            archive = Archive(name, zip_file, ctx.limits)
            yield from iter_archive(archive, archive_stem(name), ctx.sniff, HEAD_BYTES)
    else:
        yield Skipped(name, "empty file" if not head else "not an image", NOT_IMAGE)
