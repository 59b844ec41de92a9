"""Flags shared by the commands that serve HTTP (``photoproc serve``, ``photoproc app``)."""

from __future__ import annotations

import argparse
import os

from .options import add_dask_argument

__all__ = ["add_host_arguments"]


def add_host_arguments(parser: argparse.ArgumentParser, *, port: int, port_help: str) -> None:
    # PHOTOPROC_HOST/PORT: containers set them once for the server and its health check.
    parser.add_argument(
        "--host",
        default=os.environ.get("PHOTOPROC_HOST") or "127.0.0.1",
        help="address to bind (%(default)s; env PHOTOPROC_HOST)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=os.environ.get("PHOTOPROC_PORT") or port,
        help=port_help + "; env PHOTOPROC_PORT",
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        help="data directory (default: PHOTOPROC_DATA_DIR, else the per-user data folder)",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("PHOTOPROC_TOKEN") or None,
        help="require this token (Authorization: token X, or ?token=X); env PHOTOPROC_TOKEN",
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="pipeline processes (default: cores)"
    )
    add_dask_argument(parser)
