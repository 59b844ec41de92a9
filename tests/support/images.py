"""Synthetic test images, built in memory: encoded bytes plus the truth to check against.

Colours are given as RGB tuples, as Pillow takes them; photoproc's decoded pixels are BGR(A),
so compare with :func:`bgr`. Everything is deterministic (seeded), small by default and needs
no files, so any test can build exactly the image it needs::

    data = jpeg_bytes(64, 32, pattern="quadrants", orientation=6)
    data, mask = object_on_background(320, 240, fmt="jpeg", noise=4)
    big = header_only("png", 100_000, 100_000)   # declares 10 GP, holds no pixels
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from typing import Any

import numpy as np
from PIL import Image

__all__ = [
    "BLUE",
    "GREEN",
    "QUADRANT_COLORS",
    "RED",
    "WHITE",
    "YELLOW",
    "append_zip",
    "bgr",
    "encode",
    "header_only",
    "image_bytes",
    "jpeg_bytes",
    "object_on_background",
    "oriented",
    "pattern",
    "png_bytes",
    "quadrant_means",
    "stored_for_orientation",
]

RED = (255, 0, 0)
GREEN = (0, 255, 0)
BLUE = (0, 0, 255)
WHITE = (255, 255, 255)
YELLOW = (255, 255, 0)
#: the "quadrants" pattern: top-left, top-right, bottom-left, bottom-right (RGB).
QUADRANT_COLORS = (RED, GREEN, BLUE, YELLOW)

Color = tuple[int, ...]


def bgr(color: Color) -> tuple[int, ...]:
    """An RGB(A) tuple in OpenCV's channel order (BGR / BGRA)."""
    return (color[2], color[1], color[0], *color[3:])


def pattern(
    width: int,
    height: int,
    kind: str = "gradient",
    color: Color = RED,
    *,
    seed: int = 0,
) -> np.ndarray:
    """An ``(H, W, 3)`` RGB ``uint8`` array.

    kinds: ``solid`` (*color*), ``gradient`` (red rises left→right, green top→bottom: every
    pixel differs, JPEG-friendly), ``quadrants`` (:data:`QUADRANT_COLORS`, for orientation
    checks), ``corner`` (*color* in the top-left quarter on blue), ``noise`` (seeded, hard to
    compress), ``checker`` (8-pixel black/white squares).
    """
    if kind == "solid":
        return np.full((height, width, 3), color[:3], np.uint8)
    if kind == "gradient":
        out = np.empty((height, width, 3), np.uint8)
        out[..., 0] = np.linspace(0, 255, width, dtype=np.float32)[None, :].round()
        out[..., 1] = np.linspace(0, 255, height, dtype=np.float32)[:, None].round()
        out[..., 2] = 96
        return out
    if kind == "quadrants":
        out = np.empty((height, width, 3), np.uint8)
        mid_y, mid_x = height // 2, width // 2
        out[:mid_y, :mid_x] = QUADRANT_COLORS[0]
        out[:mid_y, mid_x:] = QUADRANT_COLORS[1]
        out[mid_y:, :mid_x] = QUADRANT_COLORS[2]
        out[mid_y:, mid_x:] = QUADRANT_COLORS[3]
        return out
    if kind == "corner":
        out = np.full((height, width, 3), BLUE, np.uint8)
        out[: max(1, height // 4), : max(1, width // 4)] = color[:3]
        return out
    if kind == "noise":
        return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    if kind == "checker":
        yy, xx = np.mgrid[0:height, 0:width]
        on = ((yy // 8 + xx // 8) % 2).astype(bool)
        return np.where(on[..., None], np.uint8(255), np.uint8(0)).repeat(3, axis=2)
    raise ValueError(f"unknown pattern {kind!r}")


_make_pattern = pattern  # for builders whose ``pattern`` argument names the kind


def quadrant_means(pixels: np.ndarray, margin: float = 0.2) -> list[tuple[float, ...]]:
    """Mean colour of the centre of each quadrant (TL, TR, BL, BR), in the array's own order.

    The *margin* (a fraction of each quadrant) keeps JPEG ringing at the borders out.
    """
    height, width = pixels.shape[:2]
    mid_y, mid_x = height // 2, width // 2
    boxes = [(0, mid_y, 0, mid_x), (0, mid_y, mid_x, width), (mid_y, height, 0, mid_x)]
    boxes.append((mid_y, height, mid_x, width))
    out = []
    for y0, y1, x0, x1 in boxes:
        dy, dx = int((y1 - y0) * margin), int((x1 - x0) * margin)
        block = pixels[y0 + dy : max(y0 + dy + 1, y1 - dy), x0 + dx : max(x0 + dx + 1, x1 - dx)]
        out.append(tuple(float(v) for v in block.reshape(-1, pixels.shape[2]).mean(axis=0)))
    return out


def stored_for_orientation(upright: np.ndarray, orientation: int) -> np.ndarray:
    """The stored pixels that EXIF *orientation* turns into *upright* (the inverse transform)."""
    transforms = {
        1: lambda a: a,
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.swapaxes(0, 1),
        6: lambda a: np.rot90(a, 1),  # shown rotated 90° clockwise, so stored counter-clockwise
        7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
        8: lambda a: np.rot90(a, -1),
    }
    return np.ascontiguousarray(transforms[orientation](upright))


def encode(
    image: Image.Image | np.ndarray,
    fmt: str,
    *,
    orientation: int | None = None,
    **save: Any,
) -> bytes:
    """Encode a Pillow image or an RGB(A)/grey array as *fmt* (jpeg, png, webp, bmp, tiff,
    gif, heif, avif), optionally tagged with EXIF *orientation*; *save* goes to Pillow."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    fmt = fmt.lower()
    pil_format = {"jpg": "JPEG", "tif": "TIFF"}.get(fmt, fmt.upper())
    if orientation is not None and pil_format == "TIFF":
        save["tiffinfo"] = {0x0112: orientation}  # TIFF keeps the tag in its own IFD
    elif orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        save["exif"] = exif.tobytes()
    out = io.BytesIO()
    if fmt == "heif":
        import pillow_heif

        pillow_heif.from_pillow(image).save(out, **save)
        return out.getvalue()
    if pil_format == "WEBP":
        save.setdefault("lossless", True)
    image.save(out, pil_format, **save)
    return out.getvalue()


def image_bytes(
    fmt: str,
    width: int = 64,
    height: int = 48,
    color: Color | None = None,
    *,
    pattern: str | None = None,
    mode: str = "RGB",
    orientation: int | None = None,
    **save: Any,
) -> bytes:
    """An image of *fmt* whose *upright* content is ``pattern(width, height, kind, color)``.

    With *orientation*, the stored pixels are pre-transformed so that a decoder that honours
    the tag shows the pattern the right way up (and one that ignores it does not). *mode*
    converts the RGB pattern with Pillow (``L``, ``RGBA``, ``CMYK``, ``P``, ``1``, ...).
    """
    kind = pattern or ("solid" if color is not None else "gradient")
    upright = _make_pattern(width, height, kind, color or RED)
    stored = stored_for_orientation(upright, orientation) if orientation else upright
    image = Image.fromarray(stored)
    if mode != "RGB":
        image = image.convert(mode)
    return encode(image, fmt, orientation=orientation, **save)


def jpeg_bytes(
    width: int = 64,
    height: int = 48,
    color: Color | None = None,
    *,
    pattern: str | None = None,
    quality: int = 95,
    orientation: int | None = None,
    mode: str = "RGB",
    **save: Any,
) -> bytes:
    """A JPEG (see :func:`image_bytes`); ``progressive=True``, ``comment=b"..."`` pass through."""
    return image_bytes(
        "jpeg",
        width,
        height,
        color,
        pattern=pattern,
        mode=mode,
        orientation=orientation,
        quality=quality,
        **save,
    )


def png_bytes(
    width: int = 64,
    height: int = 48,
    color: Color | None = None,
    *,
    pattern: str | None = None,
    mode: str = "RGB",
    orientation: int | None = None,
    **save: Any,
) -> bytes:
    """A PNG (see :func:`image_bytes`); ``transparency=...`` passes through to Pillow."""
    return image_bytes(
        "png",
        width,
        height,
        color,
        pattern=pattern,
        mode=mode,
        orientation=orientation,
        **save,
    )


def oriented(width: int, height: int, orientation: int, fmt: str = "jpeg") -> bytes:
    """The "quadrants" pattern, upright *width* × *height*, stored under *orientation*."""
    save = {"quality": 95} if fmt == "jpeg" else {}
    return image_bytes(fmt, width, height, pattern="quadrants", orientation=orientation, **save)


def object_on_background(
    width: int = 320,
    height: int = 240,
    *,
    shape: str = "ellipse",
    fg: Color = (200, 40, 40),
    bg: Color = (235, 235, 235),
    fmt: str = "png",
    noise: float = 0.0,
    size: float = 0.5,
    seed: int = 0,
    **save: Any,
) -> tuple[bytes, np.ndarray]:
    """A plain object on a plain background and its ground-truth mask.

    Returns the encoded image and an ``(H, W)`` ``bool`` mask (True = object). *shape* is
    ``ellipse``, ``rectangle`` or ``blob`` (an ellipse with a notch, not convex); *size* is the
    object's extent as a fraction of each side; *noise* adds seeded Gaussian noise (sigma in
    grey levels) to both. ``fmt="array"`` returns the RGB array instead of bytes.
    """
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    cy, cx = (height - 1) / 2, (width - 1) / 2
    ry, rx = height * size / 2, width * size / 2
    if shape == "rectangle":
        mask = (np.abs(yy - cy) <= ry) & (np.abs(xx - cx) <= rx)
    elif shape in ("ellipse", "blob"):
        mask = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
        if shape == "blob":
            notch = ((yy - (cy - ry * 0.6)) / (ry * 0.45)) ** 2 + ((xx - cx) / (rx * 0.3)) ** 2
            mask &= notch > 1.0
    else:
        raise ValueError(f"unknown shape {shape!r}")
    rgb = np.where(mask[..., None], np.array(fg[:3], np.float32), np.array(bg[:3], np.float32))
    if noise:
        rgb = rgb + np.random.default_rng(seed).normal(0.0, noise, rgb.shape)
    pixels = np.clip(rgb.round(), 0, 255).astype(np.uint8)
    if fmt == "array":
        return pixels, mask  # type: ignore[return-value]
    return encode(pixels, fmt, **save), mask


def append_zip(data: bytes, name: str = "hidden.txt", payload: bytes = b"hello") -> bytes:
    """*data* with a small ZIP archive appended (a "polyglot": still a valid JPEG/PNG)."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(name, payload)
    return data + archive.getvalue()


def header_only(fmt: str, width: int, height: int) -> bytes:
    """A file whose header declares *width* × *height* but that holds (almost) no pixels.

    For pixel-limit tests: a decoder that checks the header first refuses it at once; one
    that does not tries to allocate ``width * height`` pixels. Formats: png, jpeg, bmp, gif,
    tiff.
    """
    if fmt == "png":
        ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
        return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IEND", b"")
    if fmt == "jpeg":
        return _jpeg_with_size(width, height)
    if fmt == "bmp":
        # 24-bit, uncompressed; the image-size field may be 0 for uncompressed bitmaps.
        info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 0, 0, 0, 0)
        file_size = min(54 + (width * 3 + 3) // 4 * 4 * height, 0xFFFFFFFF)
        return b"BM" + struct.pack("<IHHI", file_size, 0, 0, 54) + info
    if fmt == "gif":
        screen = struct.pack("<HHBBB", width, height, 0, 0, 0)
        descriptor = b"," + struct.pack("<HHHHB", 0, 0, width, height, 0)
        return b"GIF89a" + screen + descriptor + b"\x08\x02\x4c\x01\x00;"
    if fmt == "tiff":
        entries = [
            (256, 4, 1, width),  # ImageWidth (LONG)
            (257, 4, 1, height),  # ImageLength
            (258, 3, 1, 8),  # BitsPerSample
            (259, 3, 1, 1),  # Compression: none
            (262, 3, 1, 1),  # Photometric: black is zero
            (273, 4, 1, 8),  # StripOffsets
            (277, 3, 1, 1),  # SamplesPerPixel
            (278, 4, 1, height),  # RowsPerStrip
            (279, 4, 1, min(width * height, 0xFFFFFFFF)),  # StripByteCounts
        ]
        ifd = struct.pack("<H", len(entries))
        for tag, kind, count, value in entries:
            packed = struct.pack("<I" if kind == 4 else "<HH", value, *(() if kind == 4 else (0,)))
            ifd += struct.pack("<HHI", tag, kind, count) + packed
        return b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0)
    raise ValueError(f"no header-only builder for {fmt!r}")


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def _jpeg_with_size(width: int, height: int) -> bytes:
    """A tiny real JPEG whose frame header is patched to claim *width* × *height*, cut after
    its scan header (so the declared pixels cannot be there)."""
    data = bytearray(jpeg_bytes(16, 16, color=RED))
    pos = 2
    while True:
        marker = data[pos + 1]
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if 0xC0 <= marker <= 0xC2:
            data[pos + 5 : pos + 9] = struct.pack(">HH", height, width)
        if marker == 0xDA:
            return bytes(data[: pos + 2 + length])
        pos += 2 + length
