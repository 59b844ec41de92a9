"""``photoproc backup DEST`` — a consistent copy of the job database while it is in use."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "backup",
        help="copy the job database safely while the server and workers run",
        description="Write a consistent copy of the data directory's SQLite database "
        "(photoproc.db) to DEST with SQLite's online backup — never `cp` a live WAL "
        "database. The result files under jobs/ are plain files written atomically: "
        "copy them with rsync or tar.",
    )
    parser.add_argument(
        "dest",
        metavar="DEST",
        help="file to write (replaced atomically), or a folder for a time-stamped file",
    )
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        help="job database and files (default: $PHOTOPROC_DATA_DIR, else the per-user data folder)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..config import Settings
    from ..errors import InvalidOptionsError
    from ..store.backup import backup_database

    settings = Settings.from_env(data_dir=args.data_dir)
    if not settings.db_path.is_file():
        raise InvalidOptionsError("data_dir", f"no database at {settings.db_path}")
    try:
        path = backup_database(settings.db_path, args.dest)
    except ValueError as exc:
        raise InvalidOptionsError("dest", str(exc)) from None
    print(f"photoproc backup: {settings.db_path} -> {path}", file=sys.stderr)
    return 0
