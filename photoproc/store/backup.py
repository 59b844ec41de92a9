"""A consistent copy of a live job database, with SQLite's online backup.

``cp`` of a database in WAL mode copies the main file without the commits
still in ``-wal`` (or a main file caught mid-checkpoint): the copy can miss
jobs or be corrupt. :meth:`sqlite3.Connection.backup` copies a snapshot page
by page while workers and the server keep writing; the copy is written to a
temporary file, checked, switched to a plain rollback journal (one
self-contained file) and only then renamed into place.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
import time
from pathlib import Path

__all__ = ["backup_database"]

_SIDE = ("-wal", "-shm", "-journal")


def backup_database(source: str | os.PathLike[str], dest: str | os.PathLike[str]) -> Path:
    """Copy the SQLite database ``source`` to ``dest`` and return the copy's path.

    ``dest`` is a file (replaced atomically) or a folder (an existing one, or a path
    ending in ``/``), which gets ``photoproc-YYYYmmdd-HHMMSS.db``.
    """
    source = Path(source)
    if not source.is_file():
        raise FileNotFoundError(f"no database at {source}")
    folder = str(dest).endswith(("/", os.sep))
    dest = Path(dest)
    if folder or dest.is_dir():
        dest = dest / f"{source.stem}-{time.strftime('%Y%m%d-%H%M%S')}{source.suffix}"
    if dest.resolve() in {source.resolve(), *(Path(f"{source.resolve()}{s}") for s in _SIDE)}:
        raise ValueError(f"{dest} is the database itself; back up to another file")
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        # A plain connection: it only reads, and it waits for a writer's lock like
        # the store's own connections do rather than failing at once.
        with (
            contextlib.closing(sqlite3.connect(source, timeout=30)) as src,
            contextlib.closing(sqlite3.connect(tmp)) as dst,
        ):
            src.backup(dst, pages=1024)
            dst.execute("PRAGMA journal_mode=DELETE")
            (verdict,) = dst.execute("PRAGMA quick_check").fetchone()
            if verdict != "ok":
                raise sqlite3.DatabaseError(f"the copy of {source} failed its check: {verdict}")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest
