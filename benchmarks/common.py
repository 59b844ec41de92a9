"""Shared benchmark helpers: test images, model files, timed child processes.

Benchmarks print ratios against a peer measured in the same run on the same
images and model; they are not tests and assert nothing about wall time.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "benchmarks" / ".work"
SHARED = Path(os.environ.get("PHOTOPROC_SHARED_DIR", ROOT.parent / "shared"))
MEGAPIXELS = (2, 6, 12)


@dataclass
class Run:
    seconds: float
    peak_rss_mb: float
    returncode: int
    stderr: str


def run_measured(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> Run:
    """Run ``cmd``; wall time and the peak RSS of the child itself (``wait4``'s rusage)."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    stderr = proc.stderr.read() if proc.stderr else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Run(seconds, usage.ru_maxrss / 1024.0, proc.returncode, stderr)


def source_photos() -> list[np.ndarray]:
    """Real photos: ../shared/testdata/photos when present, else scikit-image's samples."""
    photos = sorted((SHARED / "testdata" / "photos").glob("*.jpg"))
    if photos:
        return [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in photos]
    import skimage.data

    return [
        cv2.cvtColor(getattr(skimage.data, n)(), cv2.COLOR_RGB2BGR)
        for n in ("astronaut", "chelsea", "coffee", "rocket")
    ]


def make_images(folder: Path, count: int = 24) -> list[Path]:
    """``count`` JPEGs, a third each at about 2, 6 and 12 MP, upscaled from real photos."""
    folder.mkdir(parents=True, exist_ok=True)
    existing = sorted(folder.glob("*.jpg"))
    if len(existing) == count:
        return existing
    for p in existing:
        p.unlink()
    photos = source_photos()
    paths = []
    for i in range(count):
        mp = MEGAPIXELS[i % 3]
        img = photos[i % len(photos)]
        h, w = img.shape[:2]
        scale = (mp * 1e6 / (w * h)) ** 0.5
        big = cv2.resize(img, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_CUBIC)
        path = folder / f"img{i:03d}_{mp}mp.jpg"
        cv2.imwrite(str(path), big, [cv2.IMWRITE_JPEG_QUALITY, 90])
        paths.append(path)
    return paths


def model_files(names: tuple[str, ...] = ("u2netp", "u2net")) -> dict[str, Path]:
    """Random-weight U²-Net-architecture ONNX files built by ../shared/tools/make_u2net_onnx.py."""
    folder = WORK / "models"

    def path(name: str) -> Path:  # the generator names them NAME-arch.onnx
        return next(
            (p for p in (folder / f"{name}-arch.onnx", folder / f"{name}.onnx") if p.exists()),
            folder / f"{name}-arch.onnx",
        )

    missing = [n for n in names if not path(n).exists()]
    if missing:
        sys.exit(
            f"missing {', '.join(missing)} in {folder}: build them with\n"
            f"  .bench-venv/bin/python {SHARED}/tools/make_u2net_onnx.py --out-dir {folder}\n"
            "(see benchmarks/README.md for the benchmark environment)"
        )
    return {n: path(n) for n in names}


def median(values: list[float]) -> float:
    return statistics.median(values)


def machine() -> str:
    return (
        f"{platform.node() or 'host'}: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


U2NETP_MD5 = "8e83ca70e441ab06c318d82300c84806"


def _md5(path: Path) -> str:
    import hashlib

    return hashlib.md5(path.read_bytes()).hexdigest()


def real_u2netp() -> Path | None:
    """rembg's real u2netp weights: ../shared's copy, else the one installed for this user."""
    from photoproc.pipeline.models import installed_path

    for path in (SHARED / "models" / "u2netp.onnx", installed_path("u2netp")):
        if path is not None and path.is_file() and _md5(path) == U2NETP_MD5:
            return path
    return None


def real_u2netp_home(model: Path) -> Path:
    """A model folder (for ``REMBG_HOME``) holding ``model`` as u2netp, for both tools."""
    home = WORK / "real-u2netp-home"
    target = home / "models" / "u2netp" / "u2netp.onnx"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(model.resolve(), target)
    return home
