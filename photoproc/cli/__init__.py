"""The ``photoproc`` command.

Each sub-command lives in its own module with a ``register(subparsers)`` that
adds its parser and sets ``func``; ``main`` only wires them together, turns
:class:`~photoproc.errors.PhotoprocError` into a one-line message and exit
status 2, and Ctrl-C into exit status 130.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from ..errors import PhotoprocError

# Sub-command modules, in the order ``--help`` lists them.
_COMMANDS = ("process", "models", "jobs", "serve", "app")


def build_parser() -> argparse.ArgumentParser:
    from .._version import __version__

    parser = argparse.ArgumentParser(
        prog="photoproc",
        description="Remove photo backgrounds and crop faces in bulk.",
    )
    parser.add_argument("--version", action="version", version=f"photoproc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in _COMMANDS:
        try:
            module = importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except PhotoprocError as exc:
        print(f"photoproc: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("photoproc: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
