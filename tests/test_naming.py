"""The one naming rule (photoproc.naming), rule by rule, and the places that must follow it:
ingest's display names, ``photoproc process`` output paths, the service's download names."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from support.images import object_on_background
from support.worker_proc import make_png

from photoproc import ProcessOptions
from photoproc.batch import run_batch
from photoproc.ingest import iter_sources
from photoproc.naming import (
    MAX_COMPONENT_BYTES,
    MAX_PATH_BYTES,
    UniqueStems,
    ascii_name,
    clean_component,
    clean_path,
    face_number,
    output_names,
    output_stem,
)

pytestmark = pytest.mark.timeout(120)


def utf8(name: str) -> int:
    return len(name.encode())


# -- rule by rule ---------------------------------------------------------------------------


def test_names_are_nfc_normalised():
    assert clean_component("Cafe\u0301.jpg") == "Caf\u00e9.jpg"  # macOS sends NFD


@pytest.mark.parametrize(
    "control", ["\x00", "\x1f", "\x7f", "\x85", "\u202a", "\u202e", "\u2066", "\u2069", "\u200e"]
)
def test_controls_and_bidi_controls_are_removed(control):
    assert clean_component(f"pic{control}gpj.exe") == "picgpj.exe"
    assert clean_component(f"a{control}\u200f\u061cb") == "ab"


def test_characters_windows_refuses_are_replaced():
    assert clean_component('a<b>c:d"e|f?g*h\\i.png') == "a_b_c_d_e_f_g_h_i.png"
    assert clean_path("a\\b/c.png") == "a/b/c.png"  # a backslash separates


@pytest.mark.parametrize(
    ("name", "clean"),
    [
        ("CON.png", "_CON.png"),
        ("con", "_con"),
        ("nul.png", "_nul.png"),
        ("Aux.tar.gz", "_Aux.tar.gz"),
        ("COM1.png", "_COM1.png"),
        ("lpt9.jpeg", "_lpt9.jpeg"),
        ("PRN .png", "_PRN .png"),
        ("COM10.png", "COM10.png"),
        ("CONSOLE.png", "CONSOLE.png"),
        ("icon.png", "icon.png"),
    ],
)
def test_windows_device_names_are_prefixed(name, clean):
    assert clean_component(name) == clean
    if " " not in name:  # the storage names' ASCII rule prefixes them too
        assert ascii_name(name) == clean


def test_trailing_dots_spaces_and_leading_dots():
    assert clean_component("a.png. . ") == "a.png"
    assert clean_component(".hidden.png") == "_hidden.png"
    assert clean_component("...") == "_"
    assert clean_path("a/../b/./c.png") == "a/b/c.png"
    assert clean_path("..") == "image"


def test_components_are_at_most_255_bytes_keeping_the_extension():
    long = "é" * 200 + ".jpeg"  # 405 bytes
    clean = clean_component(long)
    assert utf8(clean) <= MAX_COMPONENT_BYTES
    assert clean.endswith(".jpeg") and clean.startswith("é" * 100)
    clean.encode().decode()  # cut on a character boundary
    assert clean_component("x" * 300) == "x" * 255


def test_the_whole_path_is_bounded_dropping_top_folders():
    deep = "/".join(f"folder{i:03d}" for i in range(400)) + "/photo.jpg"
    clean = clean_path(deep)
    assert utf8(clean) <= MAX_PATH_BYTES
    assert clean.endswith("folder399/photo.jpg")


def test_output_stems_leave_room_for_every_suffix():
    stem = output_stem("sub/" + "ü" * 200 + ".jpg")
    stems = UniqueStems()
    stems.claim(stem)
    twice = stems.claim(stem)
    for name in output_names(twice, [".webp"] * 120):
        assert utf8(name.rsplit("/", 1)[1]) <= MAX_COMPONENT_BYTES


def test_clean_names_are_fixed_points():
    for raw in ["CON.png", ".x", "a\u202eb", "é" * 300, "a<b>.png. ", "Cafe\u0301"]:
        once = clean_component(raw)
        assert clean_component(once) == once


# -- _faceN: built and read in one place -------------------------------------------------------


def test_face_names_are_built_and_read_back():
    assert output_names("sub/cat", [".png"]) == ["sub/cat.png"]
    names = output_names("sub/cat", [".png", ".png"])
    assert names == ["sub/cat_face1.png", "sub/cat_face2.png"]
    assert [face_number(n) for n in names] == [("sub/cat", 1), ("sub/cat", 2)]
    assert face_number("sub/cat.png") == ("sub/cat", None)
    assert face_number("my_face.png") == ("my_face", None)


# -- uniqueness ----------------------------------------------------------------------------------


def test_uniqueness_is_case_insensitive_and_stable():
    stems = UniqueStems(reserved=["a", "b", "a", "A", "a (2)", "x", "x"])
    claimed = [stems.claim(s) for s in ["a", "b", "a", "A", "a (2)", "x", "x"]]
    assert claimed == ["a", "b", "a (3)", "A (4)", "a (2)", "x", "x (2)"]
    stems = UniqueStems()
    assert [stems.claim(s) for s in ["d/Été", "d/e\u0301te\u0301", "D/ÉTÉ"]] == [
        "d/Été",
        "d/e\u0301te\u0301 (2)",
        "D/ÉTÉ (3)",
    ]


def test_face_outputs_count_as_taken_by_their_stem():
    # cat.jpg may come out as cat_face1.png: a photo called cat_face1.jpg must not take it.
    stems = UniqueStems()
    assert [stems.claim(s) for s in ["cat", "Cat_face1", "CAT_FACE2", "cat_face"]] == [
        "cat",
        "Cat_face1 (2)",
        "CAT_FACE2 (3)",
        "cat_face",
    ]


# -- every place that writes or serves a name ----------------------------------------------------


def test_ingest_names_follow_the_rule():
    jpg, _ = object_on_background(32, 24, fmt="jpeg")
    sent = ["dir\\CON.jpg", "a\u202egpj.exe.jpg", "x" * 400 + ".jpg", "Cafe\u0301.jpg"]
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("in/nul.jpg", jpg)
        zf.writestr("in/" + "y" * 300 + ".jpg", jpg)
    inputs = [(name, jpg) for name in sent] + [("pack.zip", archive.getvalue())]
    names = [s.name for s in iter_sources(inputs)]
    assert names == [
        "dir/_CON.jpg",
        "agpj.exe.jpg",
        "x" * 251 + ".jpg",
        "Caf\u00e9.jpg",
        "pack/in/_nul.jpg",
        "pack/in/" + "y" * 251 + ".jpg",
    ]


def test_batch_outputs_are_unique_case_insensitively(tmp_path: Path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("A.jpg", "a.png", "con.png", "b\u202ec.png"):
        (folder / name).write_bytes(make_png(len(name)))
    out = tmp_path / "out"
    report = run_batch([folder], out, ProcessOptions(model="grabcut"), workers=1)
    assert report.failures == []
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".png") == [
        "A.png",
        "_con.png",
        "a (2).png",
        "bc.png",
    ]


def test_download_names_follow_the_rule(tmp_path: Path):
    from photoproc.service import PhotoService

    png = make_png(1, size=8)
    inputs = [("A.png", png), ("a.png", png), ("CON.png", png), ("p\u202egnp.exe.png", png)]
    inputs.append(("z" * 300 + ".png", png))
    with PhotoService(tmp_path / "data", workers=1) as service:
        job = service.submit(inputs, ProcessOptions(model="grabcut"))
        for state in service.watch(job.id, timeout=90):
            final = state
        assert final.status.value == "completed", final
        names = [r.name for r in service.results(job.id)]
        zipped = b"".join(service.results_zip(job.id))
    # Output stems keep 32 bytes free for " (2)", "_face1" and the extension.
    assert names == ["A.png", "a (2).png", "_CON.png", "pgnp.exe.png", "z" * 223 + ".png"]
    assert zipfile.ZipFile(io.BytesIO(zipped)).namelist() == names
