"""``photoproc serve`` — the REST/WebSocket API and the browser page on one port."""

from __future__ import annotations

import argparse
import logging

from ..errors import InvalidOptionsError
from .hosting import add_host_arguments


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "serve",
        help="serve the REST/WebSocket API and the upload page (worker included)",
        description="Serve the photoproc API and the browser page. Binds 127.0.0.1 unless "
        "--host says otherwise; on any other address a token is required (one is generated "
        "and printed when --token and PHOTOPROC_TOKEN are not given). SIGINT/SIGTERM stop "
        "the server gracefully.",
    )
    add_host_arguments(parser, port=5000, port_help="port (%(default)s; 0 picks a free one)")
    parser.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="allow browser pages from ORIGIN (repeatable; 'null' for file:// pages)",
    )
    parser.add_argument(
        "--no-worker",
        action="store_true",
        help="serve only; run `photoproc worker` on the same data dir elsewhere",
    )
    parser.add_argument(
        "--require-token",
        action="store_true",
        help="refuse to start unless --token or PHOTOPROC_TOKEN gives one (containers: "
        "a generated token would be unknown to the health check and the clients)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..config import Settings
    from ..server.app import serve

    if args.require_token and not args.token:
        raise InvalidOptionsError(
            "token", "--require-token is set but no token was given: set PHOTOPROC_TOKEN"
        )
    if not 0 <= args.port <= 65535:
        raise InvalidOptionsError("port", f"{args.port} is not between 0 and 65535")
    settings = Settings.from_env(data_dir=args.data_dir, workers=args.workers, dask=args.dask)
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, format="[%(levelname).1s %(asctime)s %(name)s] %(message)s"
        )
        # One line per request is noise at this level; refused requests still show.
        logging.getLogger("tornado.access").setLevel(logging.WARNING)
    serve(
        settings,
        host=args.host,
        port=args.port,
        token=args.token,
        cors_origins=args.cors_origin,
        start_worker=not args.no_worker,
    )
    return 0
