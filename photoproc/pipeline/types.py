"""Values passed between pipeline stages.

Pixels are numpy ``uint8`` arrays in OpenCV channel order — ``(H, W, 3)`` BGR or
``(H, W, 4)`` BGRA — because decode, resize and encode are all OpenCV calls and
converting once at each edge is cheaper than at every stage. ``Output.to_pil()``
gives the usual RGB(A) view for notebooks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

__all__ = ["Face", "Output", "Result"]


@dataclass(frozen=True)
class Face:
    """A detected face box in the coordinates of the full, upright image."""

    x: int
    y: int
    w: int
    h: int
    score: float = 1.0

    @property
    def area(self) -> int:
        return self.w * self.h


@dataclass
class Output:
    """One encoded result image (a cutout, a face crop or a mask)."""

    data: bytes
    format: str  # "png" | "webp" | "jpeg"
    width: int
    height: int
    #: the face this output was cropped around, ``None`` when uncropped.
    face: Face | None = None
    #: decoded result pixels (BGR/BGRA/L); dropped by workers to save memory.
    pixels: np.ndarray | None = field(default=None, repr=False)

    @property
    def media_type(self) -> str:
        return f"image/{self.format}"

    @property
    def extension(self) -> str:
        return {"png": ".png", "webp": ".webp", "jpeg": ".jpg"}[self.format]

    def to_pil(self) -> PILImage:
        """The result as a PIL image (RGB/RGBA/L)."""
        import io

        from PIL import Image

        image = Image.open(io.BytesIO(self.data))
        image.load()
        return image


@dataclass
class Result:
    """What ``process_image`` returns: outputs, warnings and per-stage timings (seconds)."""

    outputs: list[Output]
    width: int
    height: int
    source_format: str
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    faces: list[Face] = field(default_factory=list)

    @property
    def output(self) -> Output:
        """The first (often the only) output."""
        return self.outputs[0]
