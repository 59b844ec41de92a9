"""``photoproc app`` — the notebook app in a browser: Voilà and the API on one port.

Serves ``notebooks/photo_processor.ipynb`` with :class:`~photoproc.server.voila_app.PhotoprocVoila`
(the worker runs in the serving process, the API answers at ``/api/…`` beside
the page) and the repository's ``voila.json`` (preheated kernel, upload
message limit, kernel culling), then prints the URL once the port is open.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from ..errors import InvalidOptionsError
from .hosting import add_host_arguments

__all__ = ["find_app_files", "register"]

NOTEBOOK = "photo_processor.ipynb"


def find_app_files(start: Path | None = None) -> tuple[Path, Path | None]:
    """``(notebook, folder holding voila.json or None)``: the checkout photoproc runs from,
    else the current directory."""
    package = Path(__file__).resolve().parents[1]
    candidates = [package.parent, package / "_app", Path.cwd()]
    if start is not None:
        candidates.insert(0, start)
    for root in candidates:
        notebook = root / "notebooks" / NOTEBOOK
        if notebook.is_file():
            return notebook, root if (root / "voila.json").is_file() else None
    raise InvalidOptionsError(
        "notebook",
        f"notebooks/{NOTEBOOK} not found next to the photoproc package or in {Path.cwd()}; "
        "run from a photoproc checkout or pass --notebook",
    )


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "app",
        help="start the notebook web app (Voilà) with the API on one port",
        description="Serve the photo processor notebook as a web app (Voilà) and the REST/"
        "WebSocket API on the same port, with a worker in the same process. Binds 127.0.0.1 "
        "unless --host says otherwise; on any other address a token is required (one is "
        "generated and printed when --token and PHOTOPROC_TOKEN are not given).",
    )
    add_host_arguments(parser, port=8866, port_help="port (%(default)s)")
    parser.add_argument("--notebook", default=None, help=f"notebook to serve (default {NOTEBOOK})")
    parser.add_argument(
        "--no-browser", action="store_true", help="do not open a browser at the URL"
    )
    parser.set_defaults(func=run)


def _app_class() -> Any:
    from tornado.ioloop import IOLoop

    from ..server.voila_app import PhotoprocVoila

    class PhotoprocApp(PhotoprocVoila):
        """Prints the URL once the port is open (the README's run command promises it)."""

        def listen(self) -> None:
            # Runs once the loop starts, i.e. after the port was bound.
            IOLoop.current().add_callback(
                lambda: print(f"photoproc app: open {self.display_url}", flush=True)
            )
            super().listen()

    return PhotoprocApp


def run(args: argparse.Namespace) -> int:
    if not 1 <= args.port <= 65535:
        raise InvalidOptionsError("port", f"{args.port} is not between 1 and 65535")
    if args.notebook:
        notebook, config_dir = Path(args.notebook).resolve(), None
        if not notebook.is_file():
            raise InvalidOptionsError("notebook", f"{args.notebook} is not a file")
    else:
        notebook, config_dir = find_app_files()
    argv = [
        str(notebook),
        f"--port={args.port}",
        f"--Voila.ip={args.host}",
        "--Voila.port_retries=0",
    ]
    if config_dir is not None:
        # voila.json is otherwise read from the current directory only.
        from jupyter_core.paths import jupyter_config_path

        for path in (str(config_dir), os.getcwd(), *jupyter_config_path()):
            argv.append(f"--Voila.config_file_paths={path}")
    if args.no_browser:
        argv.append("--no-browser")
    if args.token:
        argv.append(f"--token={args.token}")
    if args.data_dir:
        argv.append(f"--PhotoprocVoila.data_dir={args.data_dir}")
    if args.workers:
        argv.append(f"--PhotoprocVoila.workers={args.workers}")
    if args.dask:
        # Read by the server's Settings.from_env, and inherited by its kernels.
        os.environ["PHOTOPROC_DASK"] = args.dask
    print(f"photoproc app: serving {notebook} on {args.host}:{args.port}", file=sys.stderr)
    _app_class().launch_instance(argv)
    return 0
