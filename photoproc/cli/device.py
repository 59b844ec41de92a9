"""``--device cpu|cuda|auto`` for the commands that run models (see :mod:`..pipeline.providers`).

The option is added to those commands' parsers by :func:`photoproc.cli.build_parser`
and applied by :func:`photoproc.cli.main` before the command runs, so a missing
GPU stops ``photoproc serve --device cuda`` at start with the reason, not at the
first image.
"""

from __future__ import annotations

import argparse

from ..pipeline.providers import DEVICE_ENV, DEVICES

__all__ = ["DEVICE_COMMANDS", "add_device_argument", "apply_device"]

#: the commands whose processes (or children) create model sessions.
DEVICE_COMMANDS = ("process", "worker", "submit", "serve", "app")


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        choices=DEVICES,
        default=None,
        help=f"where models run: cuda fails at start unless a CUDA session really works; "
        f"auto uses CUDA when it does, else the CPU (default: ${DEVICE_ENV}, else auto)",
    )


def apply_device(args: argparse.Namespace) -> None:
    """Check the device now and pass the choice on to child processes."""
    if not hasattr(args, "device"):
        return
    from ..pipeline.providers import use_device

    use_device(args.device)
