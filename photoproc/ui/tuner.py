"""One image, re-processed whenever a threshold or switch changes (for analysts)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import ipywidgets as widgets

from ..analysis import ComparisonCell, as_options, compare_variants
from ..errors import PhotoprocError
from ..options import ProcessOptions
from .comparison_html import cell_html

__all__ = ["LiveTuner"]


class LiveTuner(widgets.VBox):
    """One image, re-processed whenever a threshold or switch changes (on release)."""

    def __init__(
        self,
        data: bytes,
        options: ProcessOptions | Mapping[str, Any] | None = None,
        *,
        models: Sequence[str] = ("grabcut",),
        side: int = 360,
    ) -> None:
        self.data = data
        self.side = side
        base = as_options(options or {"model": models[0]})
        self.model = widgets.Dropdown(options=list(models), value=base.model, description="Model")
        slider = {"continuous_update": False, "style": {"description_width": "initial"}}
        self.alpha_matting = widgets.Checkbox(
            value=base.alpha_matting, description="Alpha matting (first use compiles: slow)"
        )
        self.foreground = widgets.IntSlider(
            value=base.alpha_matting_foreground_threshold, min=1, max=255,
            description="Foreground threshold", **slider,
        )  # fmt: skip
        self.background = widgets.IntSlider(
            value=base.alpha_matting_background_threshold, min=0, max=254,
            description="Background threshold", **slider,
        )  # fmt: skip
        self.erode = widgets.IntSlider(
            value=base.alpha_matting_erode_size, min=0, max=40, description="Erode size", **slider
        )
        self.post_process = widgets.Checkbox(
            value=base.post_process_mask, description="Smooth mask"
        )
        self.view = widgets.HTML("")
        self.runs = 0
        self.last: ComparisonCell | None = None
        self._base = base
        for control in (
            self.model, self.alpha_matting, self.foreground, self.background, self.erode,
            self.post_process,
        ):  # fmt: skip
            control.observe(lambda _: self.run(), names="value")
        super().__init__(
            [
                widgets.HBox([self.model, self.alpha_matting, self.post_process]),
                self.foreground,
                self.background,
                self.erode,
                self.view,
            ]
        )
        self.run()

    @property
    def options(self) -> ProcessOptions:
        return self._base.replace(
            model=self.model.value,
            alpha_matting=self.alpha_matting.value,
            alpha_matting_foreground_threshold=self.foreground.value,
            alpha_matting_background_threshold=self.background.value,
            alpha_matting_erode_size=self.erode.value,
            post_process_mask=self.post_process.value,
        )

    def run(self) -> ComparisonCell:
        """Process the image with the current settings and show it."""
        try:
            options = self.options
        except PhotoprocError as exc:
            cell = ComparisonCell("image", "live", 0.0, error=str(exc))
        else:
            comparison = compare_variants([("image", self.data)], {"live": options})
            cell = comparison.cell("image", "live")
        self.runs += 1
        self.last = cell
        self.view.value = cell_html(cell, self.side)
        return cell
