"""Display names of ingested files: cleaning, refusal rules, junk and de-duplication.

A source's name becomes a relative output path in the CLI and a storage name in
the service, so every name leaving this package is a POSIX relative path with no
``..``, no empty or ``.`` parts, no leading ``/``, no drive and no control
characters. Names that *arrive* hostile inside an archive are refused (the entry
is skipped, so a zip-slip attempt is visible); names sent by a client are cleaned,
because browsers and HTTP clients legitimately send ``C:\\...`` or ``dir/a.jpg``.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable

__all__ = [
    "archive_stem",
    "clean_part",
    "clean_relpath",
    "entry_parts",
    "entry_problem",
    "is_ignored",
    "unique_names",
]

#: files that operating systems drop next to photos; never images, never worth a warning.
JUNK_NAMES = frozenset({"__macosx", "thumbs.db", "ehthumbs.db", "desktop.ini", "icon\r"})

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DRIVE = re.compile(r"^[A-Za-z]:")


def is_ignored(part: str) -> bool:
    """Hidden files and folders (``.DS_Store``, ``._a.jpg``, ``.git``) and OS junk."""
    if part in (".", ".."):  # path syntax, judged by entry_problem, not junk
        return False
    return part.startswith(".") or part.lower() in JUNK_NAMES


def clean_part(part: str) -> str:
    """One path component, safe on every file system we write to."""
    # A backslash is an ordinary character on POSIX but a separator on Windows.
    return _CONTROL.sub("_", part).replace("\\", "_")


def clean_relpath(raw: str, *, default: str = "upload") -> str:
    """A client-sent name as a relative POSIX path: drive, root, ``.`` and ``..`` removed."""
    path = _DRIVE.sub("", raw.replace("\\", "/"))
    parts = [clean_part(p) for p in path.split("/") if p not in ("", ".", "..")]
    return "/".join(parts) or default


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


def entry_parts(raw: str) -> list[str]:
    """The components of a safe entry name, empty and ``.`` parts dropped."""
    return [clean_part(p) for p in raw.replace("\\", "/").split("/") if p not in ("", ".")]


def archive_stem(name: str) -> str:
    """``"sub/x.zip"`` → ``"sub/x"``: the folder an archive's entries are named under."""
    head, base = posixpath.split(name)
    stem = base[:-4] if base.lower().endswith(".zip") else posixpath.splitext(base)[0]
    return posixpath.join(head, stem or "archive")


def unique_names(names: Iterable[str]) -> list[str]:
    """Stable de-duplication: ``a.png, a.png`` → ``a.png, a (2).png``.

    Names are compared case-insensitively so that the results are distinct on
    macOS and Windows file systems too. A name that is unique keeps its
    spelling even if it comes after a duplicate that could have taken it
    (``a.png, a.png, a (2).png`` → ``a.png, a (3).png, a (2).png``).
    """
    names = list(names)
    taken = {n.casefold() for n in names}
    used: set[str] = set()
    next_serial: dict[str, int] = {}
    result = []
    for name in names:
        key = name.casefold()
        if key not in used:
            used.add(key)
            result.append(name)
            continue
        head, base = posixpath.split(name)
        stem, ext = posixpath.splitext(base)
        serial = next_serial.get(key, 2)
        while True:
            candidate = posixpath.join(head, f"{stem} ({serial}){ext}")
            serial += 1
            if candidate.casefold() not in taken and candidate.casefold() not in used:
                break
        next_serial[key] = serial
        used.add(candidate.casefold())
        result.append(candidate)
    return result
