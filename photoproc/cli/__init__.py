"""The ``photoproc`` command.

Each sub-command lives in its own module with a ``register(subparsers)`` that
adds its parser and sets ``func``; ``main`` only wires them together, turns
:class:`~photoproc.errors.PhotoprocError` into a one-line message and exit
status 2, Ctrl-C into exit status 130, and a reader that went away
(``photoproc jobs show … | head``) into a quiet exit with status 141, as a
command killed by SIGPIPE.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from ..errors import PhotoprocError

# Sub-command modules, in the order ``--help`` lists them.
_COMMANDS = (
    "process",
    "models",
    "worker",
    "submit",
    "jobs",
    "serve",
    "app",
    "healthcheck",
    "backup",
)


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
        importlib.import_module(f".{name}", __name__).register(sub)
    from .device import DEVICE_COMMANDS, add_device_argument

    for name in DEVICE_COMMANDS:
        if name in sub.choices:
            add_device_argument(sub.choices[name])
    return parser


#: exit status of a command whose reader closed the pipe (128 + SIGPIPE).
EXIT_CLOSED_PIPE = 141


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _run(argv)
    except BrokenPipeError:
        # Python ignores SIGPIPE, so `| head` closing early surfaces as this error. Point
        # stdout at /dev/null so that the interpreter's final flush cannot raise it again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_CLOSED_PIPE


def _run(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        from .device import apply_device

        apply_device(args)
        status = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, inside main, not at exit
        return status
    except PhotoprocError as exc:
        print(f"photoproc: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("photoproc: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
