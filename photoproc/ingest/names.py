"""Which names ingest refuses or ignores: zip-slip rules, hidden files and OS junk.

Every name leaving this package follows :mod:`photoproc.naming` (a clean
relative POSIX path). Names that *arrive* hostile inside an archive are refused
(the entry is skipped, so a zip-slip attempt is visible); names sent by a client
are cleaned, because browsers and HTTP clients legitimately send ``C:\\...`` or
``dir/a.jpg``.

Hidden names — one rule wherever a name comes from: a file whose name, or the
name of a folder it is in, starts with a dot (``.DS_Store``, ``._a.jpg``,
``.git/``, ``...``, ``....jpg``), and the junk operating systems leave beside
photos (``Thumbs.db``, ``__MACOSX/``…), is never processed. Inside a folder or
an archive it is passed over silently; a file sent or named directly is listed
as skipped with the reason, so nothing a user picked disappears without a word.
"""

from __future__ import annotations

import posixpath
import re

__all__ = ["HIDDEN_REASON", "archive_stem", "entry_problem", "hidden_part", "is_ignored"]

#: files that operating systems drop next to photos; never images, never worth a warning.
JUNK_NAMES = frozenset({"__macosx", "thumbs.db", "ehthumbs.db", "desktop.ini", "icon\r"})
HIDDEN_REASON = "hidden or system file (its name starts with a dot, or is OS junk)"

_DRIVE = re.compile(r"^[A-Za-z]:")


def is_ignored(part: str) -> bool:
    """A hidden name (starts with a dot) or OS junk; ``.`` and ``..`` are path syntax."""
    if part in (".", ".."):  # judged by entry_problem / removed by cleaning, not junk
        return False
    return part.startswith(".") or part.lower() in JUNK_NAMES


def hidden_part(raw: str) -> str | None:
    """The first hidden or junk component of a raw name (``\\`` separates too), if any."""
    for part in raw.replace("\\", "/").split("/"):
        if part and is_ignored(part):
            return part
    return None


def entry_problem(raw: str) -> str | None:
    """Why an archive entry's name is refused (zip slip), or ``None`` when it is safe.

    Backslashes count as separators: Windows tools write them, and extracting
    ``..\\x.jpg`` on Windows escapes just like ``../x.jpg``.
    """
    path = raw.replace("\\", "/")
    if path.startswith("/"):
        return f"absolute path ({raw!r})"
    if _DRIVE.match(path):
        return f"drive path ({raw!r})"
    if ".." in path.split("/"):
        return f"path escapes the archive ({raw!r})"
    return None


def archive_stem(name: str) -> str:
    """``"sub/x.zip"`` → ``"sub/x"``: the folder an archive's entries are named under."""
    head, base = posixpath.split(name)
    stem = base[:-4] if base.lower().endswith(".zip") else posixpath.splitext(base)[0]
    return posixpath.join(head, stem or "archive")
