"""The one rule for every name photoproc writes or serves.

Display names of inputs, output paths of ``photoproc process``, download and
ZIP entry names, and the ``_faceN`` output names are all made here, so a name
that is safe in one place is safe in all of them. A name is a relative POSIX
path; each component:

- is NFC-normalised (macOS sends NFD; ``é`` must not be two names);
- loses ASCII and C1 controls and the bidirectional controls (U+202A–U+202E,
  U+2066–U+2069, U+200E/F, U+061C: ``U+202E`` makes ``photo‮gnp.exe`` read as
  ``photoexe.png``);
- has ``<>:"|?*\\`` replaced by ``_`` (refused by Windows or unzip tools), no
  trailing dots or spaces (Windows drops them) and no leading dot (a hidden file);
- gets a ``_`` prefix when it is a Windows device name (``CON``, ``PRN``,
  ``AUX``, ``NUL``, ``COM1``–``COM9``, ``LPT1``–``LPT9``, any case, any
  extension: ``nul.png`` cannot be created on Windows);
- is at most 255 UTF-8 bytes (truncated keeping its extension);

and the whole path is at most :data:`MAX_PATH_BYTES` (folders are dropped from
the top). Uniqueness is case-insensitive (``A.jpg`` and ``a.png`` both want
``a.png`` on macOS and Windows) and counts the ``_faceN`` outputs of a stem as
taken by it (:class:`UniqueStems`, the one de-duplication, used by
``photoproc process`` and by the service's download names). On-disk storage names are plain ASCII
(:func:`ascii_name`).
"""

from __future__ import annotations

import posixpath
import re
import unicodedata
from collections.abc import Iterable, Sequence

__all__ = [
    "MAX_COMPONENT_BYTES",
    "MAX_PATH_BYTES",
    "UniqueStems",
    "ascii_name",
    "clean_component",
    "clean_path",
    "face_number",
    "fit",
    "output_names",
    "output_stem",
    "split_stem",
]

#: the limit of ext4, APFS, NTFS and of most unzip tools, per path component.
MAX_COMPONENT_BYTES = 255
#: a whole relative name; far below PATH_MAX (4096) so an extraction folder still fits.
MAX_PATH_BYTES = 1024
#: bytes kept free at the end of a stem for the suffixes added to it later:
#: " (12345)" (uniqueness), "_face123" (faces) and the extension (".webp").
SUFFIX_ROOM = 32

_BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
#: removed: C0 and C1 controls, DEL, bidirectional controls.
_INVISIBLE = re.compile(f"[\\x00-\\x1f\\x7f-\\x9f{_BIDI}]")
#: replaced by "_": refused in names by Windows or by unzip tools ("/" is a separator).
_RESERVED_CHARS = re.compile(r'[<>:"|?*\\/]')
_DEVICE = re.compile(r"(?:CON|PRN|AUX|NUL|COM[1-9]|LPT[1-9])", re.IGNORECASE)
_DRIVE = re.compile(r"^[A-Za-z]:")
_FACE = re.compile(r"^(.*)_face([1-9][0-9]*)$", re.DOTALL)
_ASCII_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def clean_component(part: str, *, default: str = "_") -> str:
    """One path component under the rule above (never empty, never ``.`` or ``..``)."""
    part = _INVISIBLE.sub("", unicodedata.normalize("NFC", part))
    part = _RESERVED_CHARS.sub("_", part).rstrip(". ")
    if part.startswith("."):
        part = "_" + part.lstrip(".")
    if not part:
        return default
    if _DEVICE.fullmatch(part.split(".", 1)[0].rstrip(" ")):
        part = "_" + part
    return fit(part, MAX_COMPONENT_BYTES)


def clean_path(raw: str, *, default: str = "image", max_bytes: int = MAX_PATH_BYTES) -> str:
    """A name sent by anyone as a relative POSIX path: drive, root, ``.`` and ``..`` removed.

    ``\\`` separates too (Windows clients send ``C:\\photos\\a.jpg``). When the
    path is longer than ``max_bytes``, its top folders are dropped.
    """
    path = _DRIVE.sub("", raw.replace("\\", "/"))
    parts = [clean_component(p) for p in path.split("/") if p.strip() not in ("", ".", "..")]
    if not parts:
        return default
    while len(parts) > 1 and len("/".join(parts).encode()) > max_bytes:
        parts.pop(0)
    return "/".join(parts)


def fit(name: str, max_bytes: int, *, keep: str | None = None) -> str:
    """``name`` cut to ``max_bytes`` UTF-8 bytes on a character boundary, keeping its
    extension (or ``keep``, a suffix that must survive)."""
    if len(name.encode()) <= max_bytes:
        return name
    if keep is None:
        stem, ext = posixpath.splitext(name)
        keep = ext if len(ext.encode()) <= 16 else ""
        name = stem if keep else name
    elif name.endswith(keep):
        name = name[: len(name) - len(keep)]
    room = max(0, max_bytes - len(keep.encode()))
    cut = name.encode()[:room].decode("utf-8", "ignore").rstrip(". ")
    return (cut or "_") + keep


def split_stem(name: str) -> tuple[str, str]:
    """``"sub/cat.jpg"`` → ``("sub/cat", ".jpg")``; ``"sub/.x"`` and ``"sub/x"`` keep no suffix."""
    stem, ext = posixpath.splitext(name)
    return (stem, ext) if ext and not stem.endswith("/") else (name, "")


def output_names(stem: str, extensions: Sequence[str]) -> list[str]:
    """The names of one image's outputs: ``cat.png``, or ``cat_face1.png``, ``cat_face2.png``…
    when there are several (one per face). Built here only; :func:`face_number` reads them."""
    if len(extensions) == 1:
        return [f"{stem}{extensions[0]}"]
    return [f"{stem}_face{i}{ext}" for i, ext in enumerate(extensions, start=1)]


def face_number(name: str) -> tuple[str, int | None]:
    """``"sub/cat_face2.png"`` → ``("sub/cat", 2)``; a name without ``_faceN`` → ``(stem, None)``."""
    stem, _ = split_stem(name)
    found = _FACE.match(stem)
    return (found.group(1), int(found.group(2))) if found else (stem, None)


def _key(stem: str) -> str:
    """What makes two stems the same file on a case-insensitive file system; a ``_faceN``
    stem is its base's (``cat_face1`` is what ``cat`` is called when it has faces)."""
    base, _ = face_number(unicodedata.normalize("NFC", stem).casefold())
    return base


class UniqueStems:
    """Hands out output stems that are distinct case-insensitively, ``_faceN`` outputs included.

    ``claim("sub/cat")`` → ``"sub/cat"``, then ``"sub/cat (2)"``, … ; ``Cat``,
    ``CAT`` and ``cat_face1`` are all taken by a first ``cat`` (``cat.jpg`` may
    come out as ``cat_face1.png``). Stems listed in ``reserved`` keep their
    spelling when claimed later, and no serial takes them.
    """

    def __init__(self, reserved: Iterable[str] = ()) -> None:
        self._reserved = {_key(s) for s in reserved}
        self._used: set[str] = set()
        self._next: dict[str, int] = {}

    def claim(self, stem: str) -> str:
        key = _key(stem)
        if key not in self._used:
            self._used.add(key)
            return stem
        head, base = posixpath.split(stem)
        serial = self._next.get(key, 2)
        while True:
            suffix = f" ({serial})"
            candidate = posixpath.join(head, fit(base + suffix, MAX_COMPONENT_BYTES, keep=suffix))
            serial += 1
            ckey = _key(candidate)
            if ckey not in self._used and ckey not in self._reserved:
                break
        self._next[key] = serial
        self._used.add(ckey)
        return candidate


def output_stem(name: str) -> str:
    """``"sub/cat.jpg"`` → ``"sub/cat"``: where an input's outputs go, extension dropped,
    the last component cut so that every suffix added later still fits in 255 bytes."""
    stem, _ = split_stem(name)
    head, base = posixpath.split(stem)
    return posixpath.join(head, fit(base, MAX_COMPONENT_BYTES - SUFFIX_ROOM, keep=""))


def ascii_name(name: str, *, default: str = "image", max_length: int = 100) -> str:
    """A plain-ASCII file name from any name (on-disk storage names, HTTP fallbacks):
    the last component, accents folded, anything but ``A-Za-z0-9._-`` as ``_``."""
    base = unicodedata.normalize("NFKD", name.replace("\\", "/").rsplit("/", 1)[-1])
    base = _ASCII_UNSAFE.sub("_", base.encode("ascii", "ignore").decode("ascii")).strip("._-")
    if not base:
        base = default
    if _DEVICE.fullmatch(base.split(".", 1)[0]):
        base = "_" + base
    if len(base) > max_length:
        stem, dot, ext = base.rpartition(".")
        keep = dot and len(ext) <= 10
        base = (stem[: max_length - len(ext) - 1] + "." + ext) if keep else base[:max_length]
    return base
