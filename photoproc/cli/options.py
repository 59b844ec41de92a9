"""Flags shared by several commands: the pipeline options (``process``, ``submit``),
the data directory (``worker``, ``submit``, ``jobs``) and ``--dask``."""

from __future__ import annotations

import argparse
import sys

from ..options import ASPECTS, FACE_DETECTORS, FORMATS, ProcessOptions

__all__ = [
    "add_dask_argument",
    "add_data_dir_argument",
    "add_pipeline_arguments",
    "options_from_args",
]


def add_pipeline_arguments(parser: argparse.ArgumentParser) -> None:
    from ..pipeline.models import default_rule

    defaults = ProcessOptions()
    group = parser.add_argument_group("processing options")
    group.add_argument(
        "-m",
        "--model",
        default=None,
        help=f"background-removal model (default: the first installed of {default_rule()}; "
        f"here {defaults.model}); 'grabcut' works offline with no weights; "
        "see `photoproc models list`",
    )
    group.add_argument("--model-path", help="custom ONNX file following rembg's U²-Net contract")
    group.add_argument(
        "--no-remove-bg",
        dest="remove_bg",
        action="store_false",
        help="keep the background (e.g. only crop faces)",
    )
    group.add_argument("--crop-face", action="store_true", help="crop around the largest face")
    group.add_argument("--all-faces", action="store_true", help="one crop per detected face")
    group.add_argument(
        "--margin",
        type=float,
        default=defaults.face_margin,
        help="space around the face, as a fraction of its size (default %(default)s)",
    )
    group.add_argument(
        "--aspect",
        choices=list(ASPECTS),
        default=defaults.aspect,
        help="aspect ratio of face crops (default %(default)s)",
    )
    group.add_argument(
        "--size", dest="output_size", type=int, help="longest side of face crops in pixels"
    )
    group.add_argument("--face-detector", choices=FACE_DETECTORS, default=defaults.face_detector)
    group.add_argument("--yunet-model", dest="yunet_path", help="YuNet face detector ONNX file")
    group.add_argument(
        "-f",
        "--format",
        choices=[*FORMATS, "jpg"],
        default=defaults.format,
        help="output format (default %(default)s; jpeg gets a white background)",
    )
    group.add_argument("--bgcolor", help="background colour: #rrggbb, r,g,b[,a] or a name")
    group.add_argument(
        "--only-mask", action="store_true", help="write the mask instead of a cutout"
    )
    group.add_argument(
        "--post-process-mask",
        action="store_true",
        help="smooth the mask edges (rembg's post-processing)",
    )
    group.add_argument("-a", "--alpha-matting", action="store_true", help="refine edges by matting")
    group.add_argument(
        "-af",
        "--alpha-matting-foreground-threshold",
        type=int,
        default=defaults.alpha_matting_foreground_threshold,
    )
    group.add_argument(
        "-ab",
        "--alpha-matting-background-threshold",
        type=int,
        default=defaults.alpha_matting_background_threshold,
    )
    group.add_argument(
        "-ae", "--alpha-matting-erode-size", type=int, default=defaults.alpha_matting_erode_size
    )


def options_from_args(args: argparse.Namespace) -> ProcessOptions:
    """Validated options from parsed flags (raises InvalidOptionsError with the field)."""
    names = set(ProcessOptions.field_names())
    values = {k: v for k, v in vars(args).items() if k in names}
    options = ProcessOptions.from_mapping(values)
    if not values.get("model") and options.remove_bg and not getattr(args, "quiet", False):
        print(f"photoproc: model {options.model} (the best installed)", file=sys.stderr)
    return options


def add_data_dir_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        help="job database and files (default: $PHOTOPROC_DATA_DIR, else the per-user data folder)",
    )


def add_dask_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dask",
        metavar="ADDRESS",
        default=None,
        help="run the images on the Dask cluster whose scheduler is at ADDRESS "
        "(tcp://host:8786) instead of local processes; env PHOTOPROC_DASK",
    )
