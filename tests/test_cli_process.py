"""``photoproc process`` end to end in a subprocess: folders, ZIPs, failures, resume."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from photoproc.samples import sample_bytes


def _run(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "photoproc", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _heic_bytes() -> bytes:
    import pillow_heif

    pillow_heif.register_heif_opener()
    out = io.BytesIO()
    Image.open(io.BytesIO(sample_bytes("chelsea"))).convert("RGB").save(out, format="HEIF")
    return out.getvalue()


@pytest.fixture
def input_tree(tmp_path: Path) -> Path:
    root = tmp_path / "in"
    (root / "nested" / "deeper").mkdir(parents=True)
    (root / "astronaut.jpg").write_bytes(sample_bytes("astronaut"))
    (root / "nested" / "coffee.png").write_bytes(sample_bytes("coffee", fmt=".png"))
    (root / "nested" / "deeper" / "cat.heic").write_bytes(_heic_bytes())
    (root / "broken.jpg").write_bytes(sample_bytes("rocket")[:3000])
    with zipfile.ZipFile(root / "batch.zip", "w") as zf:
        zf.writestr("inside/rocket.jpg", sample_bytes("rocket", scale=0.5))
        zf.writestr("__MACOSX/._rocket.jpg", b"junk")
    return root


def test_folder_with_zip_nested_folder_heic_and_broken_file(input_tree: Path, tmp_path: Path):
    out = tmp_path / "out"
    proc = _run(
        "process",
        str(input_tree),
        "--out",
        str(out),
        "--model",
        "grabcut",
        "--crop-face",
        "--face-detector",
        "haar",
        "-q",
    )
    assert proc.returncode == 1, proc.stderr  # one file failed, the others went on
    expected = {
        "astronaut.png",
        "nested/coffee.png",
        "nested/deeper/cat.png",
        "batch/inside/rocket.png",
    }
    written = {str(p.relative_to(out)) for p in out.rglob("*.png")}
    assert written == expected
    for rel in expected:
        with Image.open(out / rel) as image:
            assert image.mode == "RGBA", rel
            alpha = np.asarray(image)[..., 3]
        assert alpha.min() == 0 and alpha.max() == 255, f"{rel}: background not removed"
    # the astronaut was cropped to a square around the face, the coffee cup kept whole
    with Image.open(out / "astronaut.png") as astro:
        assert astro.width == astro.height < 512
    with Image.open(out / "nested/coffee.png") as coffee:
        assert coffee.size == (600, 400)
    failures = json.loads((out / "failures.json").read_text())
    assert [f["name"] for f in failures] == ["broken.jpg"]
    assert "truncated" in failures[0]["error"].lower() or "invalid" in failures[0]["error"].lower()
    assert "broken.jpg" in proc.stderr
    assert "no face detected" in proc.stdout
    assert not list(out.rglob(".tmp-*")), "no half-written file is left behind"

    # A re-run resumes: nothing is redone, nothing overwritten.
    stamp = (out / "astronaut.png").stat().st_mtime_ns
    again = _run("process", str(input_tree), "--out", str(out), "--model", "grabcut", "-q")
    assert again.returncode == 1
    assert "4 already done" in again.stdout
    assert (out / "astronaut.png").stat().st_mtime_ns == stamp
    redo = _run(
        "process",
        str(input_tree / "astronaut.jpg"),
        "--out",
        str(out),
        "--model",
        "grabcut",
        "--overwrite",
        "-q",
    )
    assert redo.returncode == 0, redo.stderr
    assert (out / "astronaut.png").stat().st_mtime_ns != stamp


def test_missing_model_fails_fast_naming_the_fix(tmp_path: Path):
    (tmp_path / "a.jpg").write_bytes(sample_bytes("coffee"))
    proc = _run(
        "process",
        str(tmp_path / "a.jpg"),
        "--out",
        str(tmp_path / "out"),
        "--model",
        "u2net",
        timeout=60,
    )
    assert proc.returncode == 2
    assert "photoproc models pull u2net" in proc.stderr
    assert "photoproc models import" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out" / "a.png").exists()


def test_models_list_shows_offline_model_and_licences():
    proc = _run("models", "list", "--json", timeout=60)
    assert proc.returncode == 0, proc.stderr
    rows = {row["name"]: row for row in json.loads(proc.stdout)}
    assert rows["grabcut"]["installed"] is True
    assert rows["u2net"]["installed"] is False
    assert "non-commercial" in rows["bria-rmbg"]["licence"].lower()
    assert {"u2netp", "silueta", "isnet-general-use", "isnet-anime"} <= set(rows)


def test_bad_option_is_a_clear_error(tmp_path: Path):
    proc = _run(
        "process", str(tmp_path), "--out", str(tmp_path / "o"), "--bgcolor", "nope", timeout=60
    )
    assert proc.returncode == 2
    assert "bgcolor" in proc.stderr and "Traceback" not in proc.stderr


# A job started in the background (nohup, `cmd &` in a script, some CI runners) inherits
# SIGINT ignored, and Python then never raises KeyboardInterrupt. What a user's Ctrl-C
# reaches is a foreground process: the child restores that disposition itself. (Not with
# preexec_fn: Python code between fork and exec can deadlock once this process has threads,
# e.g. onnxruntime's from an earlier test.)
_FOREGROUND_PHOTOPROC = (
    "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "from photoproc.cli import main; sys.exit(main(sys.argv[1:]))"
)


@pytest.mark.timeout(600)
def test_ctrl_c_stops_cleanly_without_half_written_files(tmp_path: Path):
    # Far more work than can finish between the first result and the signal, however
    # slowly this process is scheduled next to the batch's own workers.
    src = tmp_path / "many"
    src.mkdir()
    photo = sample_bytes("chelsea", scale=2.0)
    for i in range(300):
        (src / f"p{i:03d}.jpg").write_bytes(photo)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _FOREGROUND_PHOTOPROC,
            "process",
            str(src),
            "--out",
            str(out),
            "--model",
            "grabcut",
            "-q",
            "--workers",
            "2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Generous: a machine under a load of 15 on 2 cores takes minutes here.
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not list(out.glob("*.png")):
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:  # never leave the batch (or its pipes) behind
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    written = sorted(out.glob("*.png"))
    assert 0 < len(written) < 300, "stopped part-way"
    assert not list(out.glob(".tmp-*")), "no temporary file is left behind"
    for png in written:  # every file that exists is whole
        with Image.open(png) as image:
            image.load()
            assert image.size == (902, 600)


def test_without_model_the_best_installed_one_is_used_and_named(tmp_path: Path):
    (tmp_path / "a.jpg").write_bytes(sample_bytes("coffee"))
    proc = _run("process", str(tmp_path / "a.jpg"), "--out", str(tmp_path / "out"), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "photoproc: model grabcut (the best installed)" in proc.stderr
    assert (tmp_path / "out" / "a.png").is_file()
