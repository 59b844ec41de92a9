"""``photoproc backup``: a consistent copy of a live WAL database (SQLite's online backup)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from photoproc.cli import main
from photoproc.config import Settings
from photoproc.store import JobStore, NewItem
from photoproc.store.backup import backup_database


def _jobs(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT count(*) FROM jobs").fetchone()[0]


@pytest.fixture
def live_store(tmp_path):
    """A store with committed jobs that are still in the -wal file (connection open)."""
    settings = Settings(data_dir=tmp_path / "data")
    settings.data_dir.mkdir()
    store = JobStore(settings.db_path)
    for n in range(3):
        store.create_job(
            options={"model": "grabcut"},
            source="test",
            items=[NewItem(name=f"{n}.png", storage_name=f"{n}.png", input_path=None, error="x")],
        )
    yield settings
    store.close()


def test_backup_of_a_live_database_has_every_committed_job(live_store, tmp_path):
    wal = Path(f"{live_store.db_path}-wal")
    assert wal.is_file() and wal.stat().st_size > 0  # the case `cp photoproc.db` gets wrong
    dest = tmp_path / "backups" / "photoproc.db"
    code = main(["backup", str(dest), "--data-dir", str(live_store.data_dir)])
    assert code == 0
    assert _jobs(dest) == 3
    with sqlite3.connect(dest) as conn:
        # one self-contained file: no WAL mode, nothing beside it
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert sorted(p.name for p in dest.parent.iterdir()) == ["photoproc.db"]


def test_backup_into_a_folder_gets_a_timestamped_name(live_store, tmp_path):
    folder = tmp_path / "backups"
    folder.mkdir()
    path = backup_database(live_store.db_path, folder)
    assert path.parent == folder and path.name.startswith("photoproc-") and path.suffix == ".db"
    assert _jobs(path) == 3
    # a path ending in "/" is a folder, created when missing
    fresh = backup_database(live_store.db_path, f"{tmp_path / 'new'}/")
    assert fresh.parent == tmp_path / "new" and _jobs(fresh) == 3


def test_backup_refuses_to_overwrite_the_database(live_store, capsys):
    code = main(["backup", str(live_store.db_path), "--data-dir", str(live_store.data_dir)])
    assert code == 2
    assert "is the database itself" in capsys.readouterr().err
    assert _jobs(live_store.db_path) == 3


def test_backup_without_a_database_says_so(tmp_path, capsys):
    code = main(["backup", str(tmp_path / "b.db"), "--data-dir", str(tmp_path / "empty")])
    assert code == 2
    assert "no database at" in capsys.readouterr().err
    assert not (tmp_path / "b.db").exists()
