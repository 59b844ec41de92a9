"""What a JPEG or PNG says about itself before any pixel is decoded.

Walking the markers / chunks gives the size (so the pixel limit is enforced without
allocating the image), the EXIF orientation, whether OpenCV can decode it, where the
image ends (trailing data is ignored) and, when bytes are missing, why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import ImageTooLargeError, InvalidImageError
from .orientation import exif_orientation, upright

__all__ = ["PNG_SIGNATURE", "Header", "check_limit", "jpeg_header", "png_header", "u32be", "u32le"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class Header:
    """What the pipeline needs to know before decoding; sizes as stored, before orientation."""

    width: int
    height: int
    orientation: int = 1
    #: OpenCV decodes this file correctly (else Pillow is used).
    opencv: bool = True
    #: decode with IMREAD_UNCHANGED to keep the alpha channel (PNG).
    alpha: bool = False
    #: offset just past the image's last byte (EOI / IEND); trailing data is ignored.
    end: int = 0
    #: every byte the image needs is present.
    complete: bool = True
    #: why it is not complete.
    problem: str = ""

    @property
    def upright(self) -> tuple[int, int]:
        return upright((self.width, self.height), self.orientation)


_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# The next marker after entropy-coded data: 0xFF not followed by a stuffed 0x00, a restart
# marker (which belongs to the scan) or another 0xFF (fill byte).


_JPEG_NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")


def jpeg_header(data: bytes, *, to_end: bool) -> Header:
    """Walk the JPEG markers: frame size, EXIF orientation and (with *to_end*) the EOI.

    Segments are skipped by their length and scans by searching for the next marker, so an
    EXIF thumbnail's own EOI or a ZIP appended after the image cannot be mistaken for the end.
    Truncation after the frame header is reported in the result, so that the pixel limit
    can be checked first; before it there is no size, so it raises.
    """
    n = len(data)
    pos = 2
    frame: tuple[int, int, int] | None = None  # width, height, components
    orientation = 1
    problem = ""
    while True:
        if pos + 2 > n:
            problem = f"data ends at byte {n} before the end-of-image marker"
            break
        if data[pos] != 0xFF:
            # Stray bytes between segments: libjpeg skips them with a warning, so do we.
            pos = data.find(b"\xff", pos)
            if pos < 0:
                raise InvalidImageError("corrupt JPEG: no end-of-image marker after the header")
            continue
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        pos += 2
        if marker == 0xD9:  # EOI
            break
        if 0xD0 <= marker <= 0xD7 or marker in (0x01, 0xD8):
            continue  # no length field
        if pos + 2 > n:
            problem = f"data ends at byte {n} inside a segment header"
            break
        end = pos + int.from_bytes(data[pos : pos + 2], "big")
        if end > n:
            problem = f"segment 0xFF{marker:02X} at byte {pos - 2} needs {end - n} more bytes"
            break
        if marker in _JPEG_SOF and frame is None and end - pos >= 8:
            height = int.from_bytes(data[pos + 3 : pos + 5], "big")
            width = int.from_bytes(data[pos + 5 : pos + 7], "big")
            frame = (width, height, data[pos + 7])
            if width == 0 or height == 0:
                raise InvalidImageError(f"unsupported JPEG: frame size {width}x{height}")
        elif marker == 0xE1 and orientation == 1 and data[pos + 2 : pos + 8] == b"Exif\x00\x00":
            orientation = exif_orientation(data[pos + 2 : end])
        elif marker == 0xDA:  # SOS: entropy-coded data follows
            if frame is None:
                raise InvalidImageError("corrupt JPEG: scan before the frame header")
            if not to_end:
                break
            found = _JPEG_NEXT_MARKER.search(data, end)
            if found is None:
                problem = f"image data ends without an end-of-image marker ({n} bytes)"
                break
            pos = found.start()
            continue
        pos = end
    if frame is None:
        raise InvalidImageError(
            f"truncated JPEG: {problem}" if problem else "corrupt JPEG: no frame header"
        )
    width, height, components = frame
    # 4-component (CMYK/YCCK) JPEGs go to Pillow, which knows Adobe's inverted CMYK.
    return Header(
        width,
        height,
        orientation,
        opencv=components in (1, 3),
        end=pos,
        complete=not problem,
        problem=problem,
    )


def png_header(data: bytes) -> Header:
    """Walk the PNG chunks (headers only): size, colour type, tRNS, eXIf and the IEND."""
    n = len(data)
    if n < 33 or data[12:16] != b"IHDR":
        raise InvalidImageError(f"truncated PNG: no image header ({n} bytes)")
    width, height = u32be(data, 16), u32be(data, 20)
    color_type = data[25]
    if width == 0 or height == 0:
        raise InvalidImageError(f"corrupt PNG: image size {width}x{height}")
    transparency = has_data = False
    orientation = 1
    pos = 8
    problem = ""
    while True:
        if pos + 8 > n:
            problem = f"no end chunk; data ends at byte {n}"
            break
        length, kind = u32be(data, pos), data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if end > n:
            problem = f"chunk {kind.decode('latin-1')!r} at byte {pos} needs {end - n} more bytes"
            break
        if kind == b"IEND":
            pos = end
            if not has_data:
                problem = "no image data before the end chunk"
            break
        if kind == b"IDAT":
            has_data = True
        elif kind == b"tRNS":
            transparency = True
        elif kind == b"eXIf":
            orientation = exif_orientation(data[pos + 8 : end - 4])
        pos = end
    # OpenCV drops the tRNS of a grey PNG; Pillow keeps it.
    opencv = not (transparency and color_type == 0)
    alpha = color_type in (4, 6) or (transparency and color_type in (2, 3))
    return Header(
        width, height, orientation, opencv, alpha, end=pos, complete=not problem, problem=problem
    )


def check_limit(size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width * height > max_pixels:
        raise ImageTooLargeError(width, height, max_pixels)


def u32be(data: bytes, pos: int) -> int:
    return int.from_bytes(data[pos : pos + 4], "big")


def u32le(data: bytes, pos: int) -> int:
    return int.from_bytes(data[pos : pos + 4], "little")
