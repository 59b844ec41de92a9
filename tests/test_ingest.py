"""photoproc.ingest on real files, folders, uploads and hand-built hostile ZIP archives."""

from __future__ import annotations

import gc
import io
import os
import tracemalloc
import warnings
import zipfile
from pathlib import Path

import pytest
from support.archives import (
    PNG_SIGNATURE,
    bomb_zip,
    image_bytes,
    many_entries_zip,
    patch_entry,
    zip_bytes,
    zip_with_symlink,
)

from photoproc.errors import InvalidImageError, InvalidOptionsError, UploadTooLargeError
from photoproc.fsutil import contained
from photoproc.ingest import (
    IngestLimits,
    Skipped,
    Source,
    UploadedFile,
    iter_sources,
    unique_names,
)

pytestmark = pytest.mark.timeout(60)

JPG = image_bytes(".jpg", seed=1)
PNG = image_bytes(".png", seed=2)


def run(inputs, **kwargs) -> tuple[list[Source], list[Skipped]]:
    results = list(iter_sources(inputs, **kwargs))
    return (
        [r for r in results if isinstance(r, Source)],
        [r for r in results if isinstance(r, Skipped)],
    )


def names(items) -> list[str]:
    return [i.name for i in items]


def reasons(skipped: list[Skipped]) -> dict[str, str]:
    return {s.name: s.reason for s in skipped}


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


# --- paths and content sniffing ---------------------------------------------------------


def test_a_file_is_named_by_its_file_name_and_read_whole(tmp_path):
    path = write(tmp_path / "deep" / "a.jpg", JPG)
    sources, skipped = run([path])
    assert skipped == []
    [source] = sources
    assert (source.name, source.format) == ("a.jpg", "jpeg")
    assert source.read() == JPG
    assert source.read() == JPG  # a source can be read again


def test_a_single_path_need_not_be_wrapped_in_a_list(tmp_path):
    path = write(tmp_path / "a.png", PNG)
    sources, _ = run(str(path))
    assert names(sources) == ["a.png"]


def test_the_content_decides_what_a_file_is_not_its_name(tmp_path):
    write(tmp_path / "photo.txt", PNG)
    write(tmp_path / "fake.jpg", b"just some text, long enough to sniff")
    write(tmp_path / "empty.jpg", b"")
    write(tmp_path / "archive.jpg", zip_bytes({"in.jpg": JPG}))
    sources, skipped = run(sorted(tmp_path.iterdir()))
    assert [(s.name, s.format) for s in sources] == [
        ("archive/in.jpg", "jpeg"),
        ("photo.txt", "png"),
    ]
    assert reasons(skipped) == {"empty.jpg": "empty file", "fake.jpg": "not an image"}


def test_a_jpeg_with_a_zip_appended_is_a_jpeg(tmp_path):
    data = JPG + zip_bytes({"hidden.jpg": PNG})
    path = write(tmp_path / "polyglot.jpg", data)
    assert zipfile.is_zipfile(path)  # the trap this guards against
    sources, skipped = run([path, ("upload.jpg", data)])
    assert skipped == []
    assert [(s.name, s.format) for s in sources] == [
        ("polyglot.jpg", "jpeg"),
        ("upload.jpg", "jpeg"),
    ]
    assert all(s.read() == data for s in sources)


def test_missing_and_special_paths_are_skipped_not_raised(tmp_path):
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    sources, skipped = run([tmp_path / "nope.jpg", fifo])
    assert sources == []
    assert reasons(skipped) == {
        str(tmp_path / "nope.jpg"): "no such file or folder",
        str(fifo): "not a regular file",
    }


def test_an_unknown_kind_of_input_is_a_type_error():
    with pytest.raises(TypeError, match="an input is a path"):
        list(iter_sources([42]))
    with pytest.raises(TypeError, match="expected bytes or a binary file"):
        list(iter_sources([("a.jpg", 42)]))


# --- folders -----------------------------------------------------------------------------


@pytest.fixture
def photos(tmp_path) -> Path:
    root = tmp_path / "photos"
    write(root / "a.jpg", JPG)
    write(root / "sub" / "b.png", PNG)
    write(root / "sub" / "x.zip", zip_bytes({"c.jpg": JPG, "d/e.jpg": JPG, "d/": b""}))
    write(root / "sub" / "deeper" / "f.jpg", JPG)
    write(root / "notes.txt", b"shopping list: eggs, milk, film")
    write(root / ".hidden.jpg", JPG)
    write(root / ".git" / "g.jpg", JPG)
    write(root / "__MACOSX" / "._a.jpg", b"\x00\x05\x16\x07")
    write(root / "Thumbs.db", b"junk")
    write(root / "desktop.ini", b"[.ShellClassInfo]")
    return root


def test_a_folder_is_walked_in_name_order_with_relative_names(photos):
    sources, skipped = run([photos])
    assert names(sources) == [
        "a.jpg",
        "sub/b.png",
        "sub/deeper/f.jpg",
        "sub/x/c.jpg",
        "sub/x/d/e.jpg",
    ]
    assert reasons(skipped) == {"notes.txt": "not an image"}
    assert [s.read() for s in sources] == [JPG, PNG, JPG, JPG, JPG]
    assert names(run([photos])[0]) == names(sources)  # deterministic


def test_archives_in_folders_can_be_left_closed(photos):
    sources, skipped = run([photos], recurse_archives_in_folders=False)
    assert "sub/x/c.jpg" not in names(sources)
    assert reasons(skipped)["sub/x.zip"] == "archive in a folder (not opened)"
    # given directly, an archive is always opened
    assert names(run([photos / "sub" / "x.zip"], recurse_archives_in_folders=False)[0]) == [
        "x/c.jpg",
        "x/d/e.jpg",
    ]


def test_symlinks_never_lead_out_of_the_folder(tmp_path):
    outside = tmp_path / "outside"
    write(outside / "secret.jpg", JPG)
    root = tmp_path / "in"
    write(root / "real" / "r.jpg", JPG)
    (root / "file-out.jpg").symlink_to(outside / "secret.jpg")
    (root / "dir-out").symlink_to(outside, target_is_directory=True)
    (root / "dir-in").symlink_to(root / "real", target_is_directory=True)
    (root / "file-in.jpg").symlink_to(root / "real" / "r.jpg")
    (root / "broken.jpg").symlink_to(tmp_path / "gone.jpg")
    (root / "loop").symlink_to(root / "loop")
    os.mkfifo(root / "fifo.jpg")

    sources, skipped = run([root])

    assert names(sources) == ["file-in.jpg", "real/r.jpg"]
    assert reasons(skipped) == {
        "broken.jpg": "broken symlink",
        "dir-in": "symlinked folder (not followed)",
        "dir-out": "symlink out of the folder",
        "fifo.jpg": "not a regular file",
        "file-out.jpg": "symlink out of the folder",
        "loop": "broken symlink",
    }


# --- uploads -----------------------------------------------------------------------------


class _Unseekable(io.RawIOBase):
    """A stream that can be read once, front to back (a socket, a pipe, stdin)."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        chunk = self._data.read(min(len(buffer), 1000))  # short reads, like a socket
        buffer[: len(chunk)] = chunk
        return len(chunk)


def test_uploads_of_every_kind(tmp_path):
    prefixed = io.BytesIO(b"HEADER" + PNG)
    prefixed.seek(6)  # a file object is read from where it stands
    temp = write(tmp_path / "upload-123.tmp", JPG)
    inputs = [
        ("a.jpg", JPG),
        ("b.jpg", bytearray(JPG)),
        ("c.png", memoryview(PNG)),
        ("d.png", prefixed),
        ("e.png", _Unseekable(PNG)),
        UploadedFile("f.jpg", temp),
        ("batch.zip", zip_bytes({"g.jpg": JPG, "h/i.png": PNG})),
        UploadedFile("more.zip", write(tmp_path / "upload-456.tmp", zip_bytes({"j.jpg": JPG}))),
        ("stream.zip", _Unseekable(zip_bytes({"k.png": PNG}))),
    ]
    sources, skipped = run(inputs)
    assert skipped == []
    assert names(sources) == [
        "a.jpg",
        "b.jpg",
        "c.png",
        "d.png",
        "e.png",
        "f.jpg",
        "batch/g.jpg",
        "batch/h/i.png",
        "more/j.jpg",
        "stream/k.png",
    ]
    expected = [JPG, JPG, PNG, PNG, PNG, JPG, JPG, PNG, JPG, PNG]
    assert [s.read() for s in sources] == expected
    assert [s.read() for s in sources] == expected  # twice: streams are rewound


@pytest.mark.parametrize(
    ("sent", "name"),
    [
        ("../../etc/a.jpg", "etc/a.jpg"),
        ("/abs/a.jpg", "abs/a.jpg"),
        ("C:\\Users\\me\\a.jpg", "Users/me/a.jpg"),
        ("./a//b/./c.jpg", "a/b/c.jpg"),
        ("bad\x00name\n.jpg", "bad_name_.jpg"),
        ("..", "upload"),
    ],
)
def test_client_sent_names_are_cleaned(sent, name):
    [source] = run([(sent, JPG)])[0]
    assert source.name == name


# --- ZIP: hostile entries ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ("../evil.jpg", "path escapes the archive ('../evil.jpg')"),
        ("ok/../../evil.jpg", "path escapes the archive ('ok/../../evil.jpg')"),
        ("..\\evil.jpg", "path escapes the archive ('..\\\\evil.jpg')"),
        ("/abs.jpg", "absolute path ('/abs.jpg')"),
        ("\\abs.jpg", "absolute path ('\\\\abs.jpg')"),
        ("C:\\x.jpg", "drive path ('C:\\\\x.jpg')"),
        ("c:/x.jpg", "drive path ('c:/x.jpg')"),
    ],
)
def test_zip_slip_entries_are_skipped_and_nothing_escapes(tmp_path, entry, reason):
    archive = write(tmp_path / "evil.zip", zip_bytes([(entry, JPG), ("fine.jpg", JPG)]))
    sources, skipped = run([archive])
    assert skipped == [Skipped("evil.zip", reason)]
    assert names(sources) == ["evil/fine.jpg"]
    dest = tmp_path / "out"
    before = files_under(tmp_path)
    for source in sources:
        assert source.save(contained(dest, source.name)) == len(JPG)
    assert files_under(tmp_path) - before == {dest / "evil" / "fine.jpg"}


def test_symlink_entries_are_skipped(tmp_path):
    data = zip_with_symlink("link.jpg", "/etc/passwd", {"ok.jpg": JPG})
    sources, skipped = run([("links.zip", data)])
    assert skipped == [Skipped("links/link.jpg", "symlink")]
    assert names(sources) == ["links/ok.jpg"]


def test_encrypted_entries_are_skipped(tmp_path):
    data = patch_entry(zip_bytes({"locked.jpg": JPG, "open.jpg": JPG}), "locked.jpg", set_flags=1)
    sources, skipped = run([("enc.zip", data)])
    assert skipped == [Skipped("enc/locked.jpg", "encrypted entry")]
    assert names(sources) == ["enc/open.jpg"]


def test_nested_archives_are_skipped_not_opened():
    inner = zip_bytes({"deep.jpg": JPG})
    sources, skipped = run([("outer.zip", zip_bytes({"inner.zip": inner, "top.jpg": JPG}))])
    assert skipped == [Skipped("outer/inner.zip", "nested archive")]
    assert names(sources) == ["outer/top.jpg"]


def test_junk_and_directory_entries_are_ignored_entirely():
    data = zip_bytes(
        [
            ("pics/", b""),
            ("pics/a.jpg", JPG),
            ("__MACOSX/pics/._a.jpg", b"\x00\x05\x16\x07junk"),
            ("pics/.DS_Store", b"Bud1junk"),
            ("pics/Thumbs.db", b"junk"),
            ("pics/desktop.ini", b"[.ShellClassInfo]"),
            ("pics/._b.jpg", b"\x00\x05\x16\x07junk"),
        ]
    )
    sources, skipped = run([("mac.zip", data)])
    assert (names(sources), skipped) == (["mac/pics/a.jpg"], [])


def test_an_archive_of_nothing_says_so():
    assert run([("empty.zip", zip_bytes({"__MACOSX/": b"", "d/": b""}))]) == (
        [],
        [Skipped("empty.zip", "no files in the archive")],
    )


def test_duplicate_entries_stay_distinct_sources():
    data = zip_bytes([("a.jpg", JPG), ("a.jpg", PNG), ("A.jpg", JPG)])
    sources, _ = run([("dup.zip", data), ("a.jpg", JPG)])
    assert names(sources) == ["dup/a.jpg", "dup/a.jpg", "dup/A.jpg", "a.jpg"]
    assert [s.read() for s in sources[:2]] == [JPG, PNG]
    assert unique_names(names(sources)) == ["dup/a.jpg", "dup/a (2).jpg", "dup/A (3).jpg", "a.jpg"]


def test_utf8_names_without_the_utf8_flag_are_repaired():
    data = patch_entry(zip_bytes({"süß.jpg": JPG}), "süß.jpg", clear_flags=0x800)
    assert zipfile.ZipFile(io.BytesIO(data)).namelist() == ["s├╝├ƒ.jpg"]  # read as cp437
    assert names(run([("mac.zip", data)])[0]) == ["mac/süß.jpg"]


def test_entries_in_unsupported_compression_are_skipped():
    data = patch_entry(zip_bytes({"x.jpg": JPG, "y.jpg": JPG}), "x.jpg", method=9)  # Deflate64
    sources, skipped = run([("d64.zip", data)])
    assert names(sources) == ["d64/y.jpg"]
    assert [(s.name, s.reason.split(" (")[0]) for s in skipped] == [
        ("d64/x.jpg", "unsupported entry")
    ]


# --- ZIP: corrupt archives ---------------------------------------------------------------


def test_a_corrupt_archive_is_skipped_not_a_crash(tmp_path):
    whole = zip_bytes({"a.jpg": JPG})
    inputs = [
        ("garbage.zip", b"PK\x03\x04" + bytes(range(256)) * 4),
        ("cut.zip", whole[: len(whole) // 2]),
        ("after.jpg", JPG),
    ]
    sources, skipped = run(inputs)
    assert names(sources) == ["after.jpg"]
    assert names(skipped) == ["garbage.zip", "cut.zip"]
    assert all(s.reason.startswith("corrupt archive: ") for s in skipped)


def test_a_damaged_entry_fails_its_read_with_an_image_error(tmp_path):
    big = PNG_SIGNATURE + os.urandom(200_000)
    data = bytearray(zip_bytes({"broken.png": big, "ok.jpg": JPG}, compression=zipfile.ZIP_STORED))
    at = data.index(big) + len(big) - 1
    data[at] ^= 0xFF  # past the sniffed head: found only by the CRC at the end
    bad_header = patch_entry(zip_bytes({"x.jpg": JPG, "y.jpg": JPG}), "x.jpg", file_size=5)
    sources, skipped = run([("damaged.zip", bytes(data)), ("hdr.zip", bad_header)])
    assert names(sources) == ["damaged/broken.png", "damaged/ok.jpg", "hdr/y.jpg"]
    assert names(skipped) == ["hdr/x.jpg"]
    assert skipped[0].reason.startswith("corrupt entry: Bad CRC-32")
    with pytest.raises(InvalidImageError, match=r"damaged/broken\.png: corrupt archive entry"):
        sources[0].read()
    assert sources[1].read() == JPG
    assert sources[2].read() == JPG


# --- ZIP: bombs and limits ---------------------------------------------------------------


def test_a_bomb_with_honest_sizes_is_stopped_while_inflating(tmp_path):
    data = bomb_zip(64 << 20, extra=[("ok.jpg", JPG)])
    # The ratio must stop each read at 250 x ~64 KiB compressed: two reads stay under 40 MiB.
    limits = IngestLimits(max_total_bytes=40 << 20)
    sources, skipped = run([("bomb.zip", data)], limits=limits)
    assert (names(sources), skipped) == (["bomb/bomb.png", "bomb/ok.jpg"], [])
    with pytest.raises(UploadTooLargeError, match="inflates more than 250 times"):
        sources[0].read()
    tracemalloc.start()
    try:
        with pytest.raises(UploadTooLargeError, match="inflates more than 250 times"):
            sources[0].save(tmp_path / "bomb.png")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20  # streamed: a chunk at a time, never the whole
    assert list(tmp_path.iterdir()) == []
    assert sources[1].read() == JPG  # the rest continue


def test_a_bomb_understating_its_size_never_inflates_past_the_lie(tmp_path):
    tiny = bomb_zip(64 << 20, declared=1000, extra=[("ok.jpg", JPG)])
    sources, skipped = run([("tiny.zip", tiny)])
    assert names(sources) == ["tiny/ok.jpg"]
    assert [s.name for s in skipped] == ["tiny/bomb.png"]
    assert skipped[0].reason.startswith("corrupt entry: Bad CRC-32")

    sized = bomb_zip(64 << 20, declared=2 << 20)
    [source] = run([("sized.zip", sized)])[0]
    tracemalloc.start()
    try:
        with pytest.raises((UploadTooLargeError, InvalidImageError)):
            source.save(tmp_path / "out.png")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20
    assert list(tmp_path.iterdir()) == []  # no partial file, no temp file


def test_an_entry_declaring_more_than_the_limit_is_not_read():
    limits = IngestLimits(max_file_bytes=10_000)
    data = zip_bytes({"big.png": PNG_SIGNATURE + os.urandom(20_000), "small.jpg": JPG})
    sources, skipped = run([("z.zip", data)], limits=limits)
    assert names(sources) == ["z/small.jpg"]
    assert skipped == [Skipped("z/big.png", "too large (20,008 bytes; the limit is 10,000)")]


def test_the_archive_total_is_counted_across_entries():
    blobs = [PNG_SIGNATURE + os.urandom(40_000) for _ in range(5)]
    data = zip_bytes([(f"{i}.png", b) for i, b in enumerate(blobs)])
    limits = IngestLimits(max_total_bytes=100_000)
    seen, failures = [], []
    for item in iter_sources([("big.zip", data)], limits=limits):
        if isinstance(item, Skipped):
            seen.append(item)
            continue
        try:
            assert item.read() == blobs[int(item.name[4])]
            seen.append(item.name)
        except UploadTooLargeError as exc:
            failures.append(str(exc))
    assert seen[:2] == ["big/0.png", "big/1.png"]
    assert failures == [
        "big/2.png: archive big.zip inflates to more than 100,000 bytes in all",
    ]
    assert seen[2:] == [
        Skipped("big.zip", "size limit (100,000 bytes inflated) reached; 2 more entries not read")
    ]


def test_twenty_thousand_entries_stop_at_the_entry_limit():
    data = many_entries_zip(20_000)
    sources, skipped = run([("many.zip", data)])
    assert sources == []
    assert len(skipped) == 10_001
    assert skipped[-1] == Skipped(
        "many.zip", "entry limit (10000) reached; 10000 more entries not read"
    )
    assert {s.reason for s in skipped[:-1]} == {"not an image"}


def test_the_file_limit_skips_the_rest_with_one_reason(tmp_path):
    inputs = [("a.jpg", JPG), ("z.zip", zip_bytes({"b.jpg": JPG, "c.jpg": JPG})), ("d.jpg", JPG)]
    sources, skipped = run(inputs, limits=IngestLimits(max_files=2))
    assert names(sources) == ["a.jpg", "z/b.jpg"]
    assert skipped == [
        Skipped("z/c.jpg", "file limit (2) reached; the rest of the input was not read")
    ]


def test_read_and_save_stop_at_the_file_limit(tmp_path):
    big = PNG_SIGNATURE + os.urandom(20_000)
    path = write(tmp_path / "in" / "big.png", big)
    limits = IngestLimits(max_file_bytes=10_000)
    sources, _ = run([path, ("up.png", big), ("fh.png", io.BytesIO(big))], limits=limits)
    assert len(sources) == 3
    dest = write(tmp_path / "out" / "kept.png", b"previous")
    for source in sources:
        with pytest.raises(UploadTooLargeError, match="larger than the limit of 10,000 bytes"):
            source.read()
        with pytest.raises(UploadTooLargeError):
            source.save(dest)
    assert dest.read_bytes() == b"previous"  # untouched, and no temp file left beside it
    assert list(dest.parent.iterdir()) == [dest]


def test_limits_are_validated():
    with pytest.raises(InvalidOptionsError, match="max_ratio"):
        IngestLimits(max_ratio=0)
    with pytest.raises(InvalidOptionsError, match="max_files"):
        IngestLimits(max_files=True)


# --- lifetime of archive handles ---------------------------------------------------------


def test_sources_outlive_the_walk_and_leak_no_file_handles(tmp_path):
    archive = write(tmp_path / "x.zip", zip_bytes({"a.jpg": JPG, "b.png": PNG}))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sources, _ = run([archive, ("s.zip", _Unseekable(zip_bytes({"c.jpg": JPG})))])
        assert [s.read() for s in sources] == [JPG, PNG, JPG]  # reopened after the walk
        partial = iter_sources([archive])
        next(partial)
        partial.close()  # stopped halfway: the archive is closed at once
        del sources, partial
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []


# --- unique_names --------------------------------------------------------------------------


def test_unique_names_is_stable_and_keeps_unique_names():
    assert unique_names(["a.png", "b.png", "a.png", "A.PNG", "a (2).png", "x", "x"]) == [
        "a.png",
        "b.png",
        "a (3).png",
        "A (4).PNG",
        "a (2).png",
        "x",
        "x (2)",
    ]
    assert unique_names(["d/a.tar.gz", "d/a.tar.gz"]) == ["d/a.tar.gz", "d/a.tar (2).gz"]
    assert unique_names([]) == []
