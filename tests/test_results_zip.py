"""The streamed ZIP on its own: readable, stored, bounded pieces, gone files left out."""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

from photoproc.results_zip import stream_zip


@dataclass
class Entry:
    name: str
    path: Path
    size: int


def test_stream_zip_holds_every_file_and_skips_one_deleted_meanwhile(tmp_path: Path):
    entries = []
    for i, size in enumerate((10, 300_000, 0)):
        path = tmp_path / f"f{i}.png"
        path.write_bytes(bytes([i]) * size)
        entries.append(Entry(f"dir/ä{i}.png", path, size))
    entries.append(Entry("gone.png", tmp_path / "gone.png", 5))  # never written
    pieces = list(stream_zip(entries, chunk_size=64 << 10))
    assert len(pieces) > 4  # streamed, not built whole
    assert max(len(p) for p in pieces) < 100_000
    with zipfile.ZipFile(io.BytesIO(b"".join(pieces))) as zf:
        assert zf.namelist() == ["dir/ä0.png", "dir/ä1.png", "dir/ä2.png"]
        assert {i.compress_type for i in zf.infolist()} == {zipfile.ZIP_STORED}
        assert zf.read("dir/ä1.png") == bytes([1]) * 300_000
        assert zf.testzip() is None
