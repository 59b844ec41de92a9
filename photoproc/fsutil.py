"""File-system helpers every writer uses: atomic writes and contained paths."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

__all__ = ["contained", "write_atomic"]


def write_atomic(
    path: str | os.PathLike[str], data: bytes | Iterable[bytes], *, fsync: bool = False
) -> Path:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one.

    The bytes go to a temporary file in the same folder (so ``os.replace`` is a
    rename on one file system), which is removed if anything fails — a killed
    process leaves at most a ``.tmp-*`` file that no reader looks for.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=path.suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            if isinstance(data, (bytes, bytearray, memoryview)):
                fh.write(data)
            else:
                for chunk in data:
                    fh.write(chunk)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def contained(root: str | os.PathLike[str], *parts: str) -> Path:
    """``root/parts`` resolved, refusing anything that escapes ``root`` (``..``, links, absolute)."""
    base = Path(root).resolve()
    target = base.joinpath(*parts).resolve()
    if not target.is_relative_to(base):
        raise ValueError(f"path {'/'.join(parts)!r} escapes {base}")
    return target
