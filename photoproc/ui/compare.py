"""The model comparison widget: pick images and variants, press Compare, read the grid.

The measuring is :func:`photoproc.analysis.compare_variants`; the grid's HTML is
:func:`photoproc.ui.comparison_html.comparison_html`. One image re-run as the
thresholds move is :class:`photoproc.ui.tuner.LiveTuner`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ipywidgets as widgets

from ..analysis import Comparison, as_options, compare_variants
from ..options import ProcessOptions
from .comparison_html import comparison_html

__all__ = ["ModelComparison"]


class ModelComparison(widgets.VBox):
    """Pick images and variants, press Compare, read the grid.

    ``images``: name → encoded bytes; ``variants``: label → options. The first
    selected variant is the reference the agreement is measured against.
    ``on_submit(cb)`` / :meth:`submit` run the comparison (``cb(comparison)``).
    """

    def __init__(
        self,
        images: Mapping[str, bytes],
        variants: Mapping[str, ProcessOptions | Mapping[str, Any]],
        *,
        side: int = 200,
    ) -> None:
        self.images = dict(images)
        self.variants = {label: as_options(v) for label, v in variants.items()}
        self.side = side
        self.image_picker = widgets.SelectMultiple(
            options=list(self.images), value=tuple(self.images), description="Images", rows=5
        )
        self.variant_picker = widgets.SelectMultiple(
            options=list(self.variants),
            value=tuple(self.variants),
            description="Variants",
            rows=5,
            layout=widgets.Layout(width="min(100%, 28em)"),
        )
        self.run_button = widgets.Button(description="Compare", button_style="primary", icon="play")
        self.grid = widgets.HTML("")
        self.status = widgets.HTML("")
        self.comparison: Comparison | None = None
        self._handlers = widgets.CallbackDispatcher()
        self.run_button.on_click(lambda _: self.submit())
        super().__init__(
            [
                widgets.HBox([self.image_picker, self.variant_picker, self.run_button]),
                self.status,
                self.grid,
            ]
        )

    def on_submit(self, callback: Any, remove: bool = False) -> None:
        self._handlers.register_callback(callback, remove=remove)

    def submit(self) -> Comparison | None:
        images = [(name, self.images[name]) for name in self.image_picker.value]
        variants = {label: self.variants[label] for label in self.variant_picker.value}
        if not images or not variants:
            self.status.value = "<i>Select at least one image and one variant.</i>"
            return None
        self.run_button.disabled = True
        self.status.value = f"<i>Running {len(images) * len(variants)} combinations…</i>"
        try:
            self.comparison = compare_variants(images, variants)
        finally:
            self.run_button.disabled = False
        self.status.value = ""
        self.grid.value = comparison_html(self.comparison, self.side)
        self._handlers(self.comparison)
        return self.comparison
