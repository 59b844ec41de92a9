"""Builders of images and hostile ZIP archives for ingest tests, all made in memory.

``zipfile`` refuses to write most hostile archives (it resets flag bits, keeps
sizes honest), so the hostile ones are written honestly and then patched with
:func:`patch_entry`, which edits the local header AND the central directory the
way a crafted archive would.
"""

from __future__ import annotations

import io
import stat
import struct
import warnings
import zipfile
from collections.abc import Iterable

import cv2
import numpy as np

__all__ = [
    "PNG_SIGNATURE",
    "bomb_zip",
    "image_bytes",
    "many_entries_zip",
    "patch_entry",
    "zip_bytes",
    "zip_with_symlink",
]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

_LOCAL = b"PK\x03\x04"
_CENTRAL = b"PK\x01\x02"
_END = b"PK\x05\x06"


def image_bytes(fmt: str = ".jpg", size: int = 16, seed: int = 0) -> bytes:
    """A real, small encoded image (noise, so each seed gives different bytes)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    ok, encoded = cv2.imencode(fmt, pixels)
    assert ok
    return encoded.tobytes()


def zip_bytes(
    entries: Iterable[tuple[str, bytes]] | dict[str, bytes],
    *,
    compression: int = zipfile.ZIP_DEFLATED,
) -> bytes:
    """A ZIP holding ``entries`` in order; names are written exactly as given.

    Duplicate names are allowed (zipfile warns; hostile archives do it on purpose).
    A name ending in ``/`` becomes a directory entry.
    """
    items = entries.items() if isinstance(entries, dict) else entries
    buffer = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w", compression) as zf:
        warnings.simplefilter("ignore", UserWarning)  # "Duplicate name: ..."
        for name, data in items:
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.compress_type = compression
            # ZipInfo would turn "\\" into "/" on Windows only; keep names raw everywhere.
            info.filename = name
            if name.endswith("/"):
                info.external_attr = (stat.S_IFDIR | 0o755) << 16
            zf.writestr(info, data)
    return buffer.getvalue()


def zip_with_symlink(name: str, target: str, extra: dict[str, bytes] | None = None) -> bytes:
    """A ZIP whose entry ``name`` is a Unix symlink to ``target`` (as ``zip -y`` writes it)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
        info.create_system = 3
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, target)
        for entry, data in (extra or {}).items():
            zf.writestr(entry, data)
    return buffer.getvalue()


def patch_entry(
    archive: bytes,
    name: str,
    *,
    set_flags: int = 0,
    clear_flags: int = 0,
    file_size: int | None = None,
    method: int | None = None,
) -> bytes:
    """Rewrite one entry's flag bits, declared size and/or compression method in both headers.

    This is how encrypted-looking entries and bombs that understate their size
    are made: the data stays, the headers lie.
    """
    data = bytearray(archive)
    end = data.rindex(_END)
    count, cd_size, cd_offset = struct.unpack_from("<HII", data, end + 10)
    position = cd_offset
    found = False
    for _ in range(count):
        assert data[position : position + 4] == _CENTRAL
        name_len, extra_len, comment_len = struct.unpack_from("<HHH", data, position + 28)
        entry = bytes(data[position + 46 : position + 46 + name_len])
        local = struct.unpack_from("<I", data, position + 42)[0]
        if entry.decode("utf-8") == name:
            found = True
            # flags: central +8, local +6; method: +10, +8; uncompressed size: +24, +22
            for offset, flags_at, size_at in ((position, 8, 24), (local, 6, 22)):
                if method is not None:
                    struct.pack_into("<H", data, offset + flags_at + 2, method)
                flags = struct.unpack_from("<H", data, offset + flags_at)[0]
                struct.pack_into("<H", data, offset + flags_at, (flags | set_flags) & ~clear_flags)
                if file_size is not None:
                    struct.pack_into("<I", data, offset + size_at, file_size)
        position += 46 + name_len + extra_len + comment_len
    assert found, f"no entry {name!r}"
    return bytes(data)


def bomb_zip(
    inflated: int,
    *,
    name: str = "bomb.png",
    declared: int | None = None,
    extra: Iterable[tuple[str, bytes]] = (),
) -> bytes:
    """A ZIP whose entry ``name`` inflates to ``inflated`` bytes: a PNG signature, then zeros.

    Zeros deflate about 1000:1, far past any sane ratio; the PNG signature makes
    the entry sniff as an image, so only metering while inflating can stop it.
    With ``declared``, both headers claim that many bytes instead. ``extra``
    entries follow the bomb (they must still be read).
    """
    payload = PNG_SIGNATURE + bytes(inflated - len(PNG_SIGNATURE))
    archive = zip_bytes([(name, payload), *extra])
    return archive if declared is None else patch_entry(archive, name, file_size=declared)


def many_entries_zip(count: int, data: bytes = b"not an image") -> bytes:
    """A stored ZIP of ``count`` small entries ``f00000.txt`` …, written quickly."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:
        for index in range(count):
            zf.writestr(f"f{index:05d}.txt", data)
    return buffer.getvalue()
