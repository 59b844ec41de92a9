"""Processing options: one validated, immutable dataclass shared by every edge.

The CLI, the REST form fields, the widgets and the job store all speak
:class:`ProcessOptions`. ``from_mapping`` accepts loosely typed values (form
strings such as ``"true"`` or ``"#ff0000"``) and ``to_dict`` gives a JSON-safe
dict that ``from_mapping`` reads back unchanged.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from .errors import InvalidOptionsError
from .flags import parse_bool

__all__ = ["ASPECTS", "FACE_DETECTORS", "FORMATS", "ProcessOptions", "parse_color"]

FORMATS = ("png", "webp", "jpeg")
ASPECTS = {"1:1": 1.0, "4:5": 4 / 5, "3:4": 3 / 4, "free": None}
FACE_DETECTORS = ("auto", "yunet", "haar")
_FORMAT_ALIASES = {"jpg": "jpeg"}
_NAMED_COLORS = {
    "white": (255, 255, 255, 255),
    "black": (0, 0, 0, 255),
    "transparent": (0, 0, 0, 0),
    "red": (255, 0, 0, 255),
    "green": (0, 128, 0, 255),
    "blue": (0, 0, 255, 255),
    "grey": (128, 128, 128, 255),
    "gray": (128, 128, 128, 255),
}


def parse_color(value: Any, field_name: str = "bgcolor") -> tuple[int, int, int, int] | None:
    """``"#rrggbb"``, ``"#rrggbbaa"``, ``"r,g,b[,a]"``, a name, or a 3/4-sequence → RGBA."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("", "none"):
            return None
        if text in _NAMED_COLORS:
            return _NAMED_COLORS[text]
        if re.fullmatch(r"#?[0-9a-f]{6}([0-9a-f]{2})?", text):
            text = text.lstrip("#")
            parts = [int(text[i : i + 2], 16) for i in range(0, len(text), 2)]
        else:
            try:
                parts = [int(p) for p in re.split(r"[,\s]+", text.strip("()[] ")) if p]
            except ValueError:
                raise InvalidOptionsError(
                    field_name, f"{value!r} is not a colour (use #rrggbb, r,g,b or r,g,b,a)"
                ) from None
    else:
        try:
            parts = [int(p) for p in value]
        except (TypeError, ValueError):
            raise InvalidOptionsError(field_name, f"{value!r} is not a colour") from None
    if len(parts) == 3:
        parts.append(255)
    if len(parts) != 4 or not all(0 <= p <= 255 for p in parts):
        raise InvalidOptionsError(
            field_name, f"{value!r} must have 3 or 4 components between 0 and 255"
        )
    return (parts[0], parts[1], parts[2], parts[3])


def _to_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        parsed = parse_bool(value)
        if parsed is not None:
            return parsed
    raise InvalidOptionsError(name, f"{value!r} is not a boolean (use true/false)")


def _to_number(name: str, value: Any, kind: type) -> int | float:
    if isinstance(value, bool):
        raise InvalidOptionsError(name, f"{value!r} is not a number")
    try:
        number = kind(value) if kind is float else int(str(value).strip(), 10)
    except (TypeError, ValueError):
        try:  # "12.0" is a fine int
            as_float = float(value)
        except (TypeError, ValueError):
            raise InvalidOptionsError(name, f"{value!r} is not a number") from None
        if kind is int and as_float.is_integer():
            return int(as_float)
        raise InvalidOptionsError(name, f"{value!r} is not a whole number") from None
    if kind is float and number != number:  # NaN
        raise InvalidOptionsError(name, "NaN is not allowed")
    return number


@dataclass(frozen=True)
class ProcessOptions:
    """What to do with each image. Defaults match rembg's CLI where both have the option."""

    remove_bg: bool = True
    #: rembg model name, ``grabcut`` (offline, no weights) or ``custom`` with ``model_path``.
    #: Empty (or ``None``): the best installed model, chosen when the options are made
    #: (``pipeline.models.best_installed_model``), so a job records the model it ran with.
    model: str = ""
    #: an ONNX file following rembg's U²-Net contract; implies ``model="custom"``.
    model_path: str | None = None
    alpha_matting: bool = False
    alpha_matting_foreground_threshold: int = 240
    alpha_matting_background_threshold: int = 10
    alpha_matting_erode_size: int = 10
    post_process_mask: bool = False
    only_mask: bool = False
    #: RGBA background colour painted under the cutout; ``None`` keeps transparency.
    bgcolor: tuple[int, int, int, int] | None = None
    format: str = "png"
    crop_face: bool = False
    all_faces: bool = False
    #: space added on every side of the face box, as a fraction of the box size.
    face_margin: float = 0.5
    aspect: str = "1:1"
    #: longest side of a face crop in pixels; ``None`` keeps the crop's own size.
    output_size: int | None = None
    face_detector: str = "auto"
    #: path of a YuNet ONNX file; ``None`` uses the configured / downloaded one.
    yunet_path: str | None = None

    _aliases: ClassVar[dict[str, str]] = {
        "background_color": "bgcolor",
        "bg_color": "bgcolor",
        "output_format": "format",
        "margin": "face_margin",
        "aspect_ratio": "aspect",
        "af": "alpha_matting_foreground_threshold",
        "ab": "alpha_matting_background_threshold",
        "ae": "alpha_matting_erode_size",
    }

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "bool":
                set_(self, f.name, _to_bool(f.name, value))
        model = str(self.model).strip() if self.model is not None else ""
        if self.model_path:
            model = "custom"
        if not model:
            from .pipeline.models import best_installed_model  # a few stat() calls

            model = best_installed_model()
        set_(self, "model", model)
        if model == "custom" and not self.model_path and self.remove_bg:
            raise InvalidOptionsError("model_path", "model 'custom' needs model_path")
        fmt = str(self.format).strip().lower().lstrip(".")
        fmt = _FORMAT_ALIASES.get(fmt, fmt)
        if fmt not in FORMATS:
            raise InvalidOptionsError(
                "format", f"{self.format!r} is not one of {', '.join(FORMATS)}"
            )
        set_(self, "format", fmt)
        set_(self, "bgcolor", parse_color(self.bgcolor))
        if fmt == "jpeg" and self.bgcolor is None:
            # JPEG has no alpha: default to a white background rather than black.
            set_(self, "bgcolor", (255, 255, 255, 255))
        for name, lo, hi in (
            ("alpha_matting_foreground_threshold", 0, 255),
            ("alpha_matting_background_threshold", 0, 255),
            ("alpha_matting_erode_size", 0, 100),
        ):
            value = _to_number(name, getattr(self, name), int)
            if not lo <= value <= hi:
                raise InvalidOptionsError(name, f"{value} is not between {lo} and {hi}")
            set_(self, name, value)
        if self.alpha_matting_background_threshold >= self.alpha_matting_foreground_threshold:
            raise InvalidOptionsError(
                "alpha_matting_background_threshold",
                "must be below alpha_matting_foreground_threshold",
            )
        margin = float(_to_number("face_margin", self.face_margin, float))
        if not 0.0 <= margin <= 5.0:
            raise InvalidOptionsError("face_margin", f"{margin} is not between 0 and 5")
        set_(self, "face_margin", margin)
        aspect = str(self.aspect).strip().lower().replace("/", ":").replace("x", ":")
        if aspect in ("square", "1"):
            aspect = "1:1"
        if aspect not in ASPECTS:
            raise InvalidOptionsError(
                "aspect", f"{self.aspect!r} is not one of {', '.join(ASPECTS)}"
            )
        set_(self, "aspect", aspect)
        size: object = self.output_size  # a form sends "" for "none"
        if size in ("", None):
            set_(self, "output_size", None)
        else:
            size = _to_number("output_size", self.output_size, int)
            if not 16 <= size <= 8192:
                raise InvalidOptionsError("output_size", f"{size} is not between 16 and 8192")
            set_(self, "output_size", size)
        detector = str(self.face_detector).strip().lower()
        if detector not in FACE_DETECTORS:
            raise InvalidOptionsError(
                "face_detector", f"{self.face_detector!r} is not one of {', '.join(FACE_DETECTORS)}"
            )
        set_(self, "face_detector", detector)
        if not self.remove_bg and not self.crop_face:
            raise InvalidOptionsError("remove_bg", "nothing to do: enable remove_bg or crop_face")

    @property
    def aspect_ratio(self) -> float | None:
        """Width / height of face crops, ``None`` for free."""
        return ASPECTS[self.aspect]

    @property
    def extension(self) -> str:
        return {"png": ".png", "webp": ".webp", "jpeg": ".jpg"}[self.format]

    @property
    def media_type(self) -> str:
        return f"image/{self.format}"

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_mapping(
        cls, values: Mapping[str, Any] | None = None, **overrides: Any
    ) -> ProcessOptions:
        """Build from loosely typed values (form fields, JSON, CLI); unknown keys are refused.

        A list value (repeated form field) uses its last element.
        """
        merged: dict[str, Any] = {}
        known = set(cls.field_names())
        for key, value in {**(values or {}), **overrides}.items():
            name = cls._aliases.get(key, key)
            if name not in known:
                raise InvalidOptionsError(key, "unknown option")
            if isinstance(value, (list, tuple)) and name != "bgcolor":
                value = value[-1] if value else None
            if isinstance(value, bytes):
                value = value.decode("utf-8", "replace")
            merged[name] = value
        return cls(**merged)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        if self.bgcolor is not None:
            data["bgcolor"] = list(self.bgcolor)
        return data

    def replace(self, **changes: Any) -> ProcessOptions:
        return dataclasses.replace(self, **changes)
