"""The job store's SQLite schema, its migrations, and how a connection is opened.

The schema version lives in ``PRAGMA user_version``. ``MIGRATIONS[n]`` takes a
database from version ``n`` to ``n + 1``; a new database runs them all, an old
one runs the ones it lacks, all in one ``BEGIN IMMEDIATE`` transaction so two
processes opening the same file at once cannot both migrate it, and a failed
step leaves the file as it was. A shipped step is never edited: change the
schema by appending a step (tests build a v1 file by hand and upgrade it).

Statements run one by one because ``executescript`` would COMMIT first and
break the one-transaction guarantee.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ..errors import PhotoprocError

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "SchemaVersionError", "connect", "migrate"]


class SchemaVersionError(PhotoprocError):
    """The database was written by a newer photoproc than this one."""

    def __init__(self, found: int, supported: int) -> None:
        self.found = found
        self.supported = supported
        super().__init__(
            f"job database has schema version {found}, this photoproc supports up to "
            f"{supported}: upgrade photoproc or use another data dir"
        )


_JOB_STATES = "'pending', 'processing', 'completed', 'failed', 'cancelled'"
_ITEM_STATES = "'pending', 'processing', 'done', 'failed', 'cancelled'"

# v1: a plain queue — jobs, their items, leases on items.
_V1 = (
    f"""
    CREATE TABLE jobs (
        id          TEXT PRIMARY KEY,
        status      TEXT NOT NULL CHECK (status IN ({_JOB_STATES})),
        options     TEXT NOT NULL,
        source      TEXT NOT NULL,
        created_at  REAL NOT NULL,
        updated_at  REAL NOT NULL,
        finished_at REAL,
        total       INTEGER NOT NULL,
        processed   INTEGER NOT NULL DEFAULT 0,
        failed      INTEGER NOT NULL DEFAULT 0,
        error       TEXT
    )""",
    "CREATE INDEX jobs_created ON jobs (created_at)",
    f"""
    CREATE TABLE items (
        job_id       TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
        idx          INTEGER NOT NULL,
        name         TEXT NOT NULL,
        storage_name TEXT NOT NULL,
        input_path   TEXT,
        status       TEXT NOT NULL CHECK (status IN ({_ITEM_STATES})),
        outputs      TEXT NOT NULL DEFAULT '[]',
        error        TEXT,
        warnings     TEXT NOT NULL DEFAULT '[]',
        timings      TEXT NOT NULL DEFAULT '{{}}',
        attempts     INTEGER NOT NULL DEFAULT 0,
        width        INTEGER,
        height       INTEGER,
        token        TEXT,
        worker_id    TEXT,
        lease_until  REAL,
        updated_at   REAL NOT NULL,
        PRIMARY KEY (job_id, idx),
        UNIQUE (job_id, storage_name)
    )""",
)

# v2: fair claims (jobs.last_claim), a change feed (meta.revision, jobs.version),
# worker heartbeats, the reason of the last lost attempt, and the indexes that
# keep a claim O(active jobs) instead of O(items).
_V2 = (
    "ALTER TABLE jobs ADD COLUMN last_claim INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE jobs ADD COLUMN version INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE items ADD COLUMN last_error TEXT",
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    "INSERT INTO meta (key, value) VALUES ('revision', 0)",
    """
    CREATE TABLE workers (
        id         TEXT PRIMARY KEY,
        pid        INTEGER NOT NULL,
        host       TEXT NOT NULL,
        info       TEXT NOT NULL DEFAULT '{}',
        started_at REAL NOT NULL,
        seen_at    REAL NOT NULL
    )""",
    """
    CREATE INDEX jobs_active ON jobs (last_claim, created_at)
        WHERE status IN ('pending', 'processing')""",
    "CREATE INDEX jobs_version ON jobs (version)",
    "CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL",
    """
    CREATE INDEX items_open ON items (job_id, idx)
        WHERE status IN ('pending', 'processing')""",
    "CREATE INDEX items_leased ON items (lease_until) WHERE status = 'processing'",
)


def _steps(statements: Sequence[str]) -> Callable[[sqlite3.Connection], None]:
    def step(conn: sqlite3.Connection) -> None:
        for statement in statements:
            conn.execute(statement)

    return step


#: UPDATE … RETURNING, which every atomic claim relies on, arrived in 3.35.
MIN_SQLITE = (3, 35, 0)

#: ``MIGRATIONS[n]`` upgrades a version-``n`` database to ``n + 1``. Append only.
MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (_steps(_V1), _steps(_V2))
SCHEMA_VERSION = len(MIGRATIONS)


def _user_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the database to :data:`SCHEMA_VERSION`; returns the version found before."""
    found = _user_version(conn)
    if found == SCHEMA_VERSION:
        return found
    if found > SCHEMA_VERSION:
        raise SchemaVersionError(found, SCHEMA_VERSION)
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Another process may have migrated between the first look and the lock.
        found = _user_version(conn)
        if found > SCHEMA_VERSION:
            raise SchemaVersionError(found, SCHEMA_VERSION)
        for step in MIGRATIONS[found:]:
            step(conn)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return found


def _enable_wal(conn: sqlite3.Connection, busy_timeout: float) -> None:
    """Switch to WAL, retrying: the switch needs the file to itself, and the busy
    handler does not cover it when several processes create the database at once."""
    deadline = time.monotonic() + busy_timeout
    while True:
        try:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
            continue
        if str(mode).lower() != "wal":
            raise sqlite3.OperationalError(f"cannot use WAL journal mode (got {mode!r})")
        return


def connect(path: str | Path, *, busy_timeout: float = 30.0) -> sqlite3.Connection:
    """A connection set up the way every store connection must be, schema migrated.

    Autocommit mode (``isolation_level=None``): the store issues ``BEGIN IMMEDIATE``
    itself, so writers queue on the busy handler instead of failing when a read
    transaction tries to upgrade. ``check_same_thread=False`` only so that
    :meth:`JobStore.close` can close connections of other threads; each
    connection is still used by one thread.
    """
    if sqlite3.sqlite_version_info < MIN_SQLITE:
        raise RuntimeError(
            f"photoproc's job store needs SQLite >= {'.'.join(map(str, MIN_SQLITE))} "
            f"(UPDATE … RETURNING); this Python has {sqlite3.sqlite_version}"
        )
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(
        str(path), timeout=busy_timeout, isolation_level=None, check_same_thread=False
    )
    try:
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        _enable_wal(conn, busy_timeout)
        conn.execute("PRAGMA foreign_keys = ON")
        # In WAL mode NORMAL loses at most the last commits on power loss, never integrity.
        conn.execute("PRAGMA synchronous = NORMAL")
        migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn
