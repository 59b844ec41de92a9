"""photoproc's masks vs rembg's on the real u2netp, per photo: agreement, accuracy, cost.

    python benchmarks/bench_parity.py [--model FILE] [--shared DIR] [--megapixels 12]

For each shared photo, photoproc's mask (``process_image``, ``only_mask``) and rembg's
(``remove(only_mask=True)`` with ``new_session("u2netp")``, the same weights file) are
compared: IoU of ``alpha > 127`` and the mean |alpha difference|. The same is shown for
the model input photoproc used before issue 10 (OpenCV ``INTER_AREA`` instead of rembg's
Pillow ``LANCZOS``) to show where the difference came from, and, on the photos with a
u2net reference cutout, each mask's IoU against it (is either less accurate?). With
``--megapixels N`` the photos are also upscaled to N MP and compared again, and the
model-input resize is timed at that size (median of 5, one thread). Exits 1 when a
photo's IoU against rembg is below 0.99.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED, machine

MIN_IOU = 0.99


def iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 127, b > 127
    return float((a & b).sum() / max(1, (a | b).sum()))


def mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def area_input(bgr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The model input before issue 10: INTER_AREA (two steps when large)."""
    height, width = bgr.shape[:2]
    factor = -(-max(width / size[0], height / size[1]) // 2)
    if factor < 2:
        return cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
    between = (int(size[0] * factor), int(size[1] * factor))
    return cv2.resize(cv2.resize(bgr, between, interpolation=cv2.INTER_LINEAR), size,
                      interpolation=cv2.INTER_AREA)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=SHARED / "models" / "u2netp.onnx")
    ap.add_argument("--shared", type=Path, default=SHARED)
    ap.add_argument("--megapixels", type=float, default=12.0, help="0: skip the large pass")
    args = ap.parse_args(argv)
    if not args.model.is_file():
        sys.exit(f"{args.model} not found: pass --model or `photoproc models pull u2netp`")
    home = Path(tempfile.mkdtemp(prefix="parity-home-"))
    (home / "models" / "u2netp").mkdir(parents=True)
    os.symlink(args.model.resolve(), home / "models" / "u2netp" / "u2netp.onnx")
    os.environ["REMBG_HOME"] = str(home)
    os.environ.pop("U2NET_HOME", None)
    cv2.setNumThreads(1)

    from rembg import new_session, remove

    from photoproc.options import ProcessOptions
    from photoproc.pipeline import segment
    from photoproc.pipeline.decode import decode
    from photoproc.pipeline.process import process_image

    session = new_session("u2netp")
    options = ProcessOptions(model="u2netp", only_mask=True)
    ours_seg = segment.get_segmenter("u2netp")

    def photoproc_mask(data: bytes) -> np.ndarray:
        (out,) = process_image(data, options).outputs
        return cv2.imdecode(np.frombuffer(out.data, np.uint8), cv2.IMREAD_GRAYSCALE)

    def area_mask(bgr: np.ndarray) -> np.ndarray:
        saved = segment._downscale
        segment._downscale = area_input
        try:
            return ours_seg.predict(bgr)
        finally:
            segment._downscale = saved

    def rembg_mask(data: bytes) -> np.ndarray:
        return np.asarray(remove(Image.open(io.BytesIO(data)), session=session, only_mask=True))

    photos = sorted((args.shared / "testdata" / "photos").glob("*.jpg"))
    refs = args.shared / "testdata" / "reference"
    print(machine())
    print(f"model {args.model} ({args.model.stat().st_size} B); {len(photos)} photos\n")
    header = (
        f"{'photo':<14} {'size':>10}  {'IoU vs rembg':>12} {'|Δα|':>5}   {'INTER_AREA IoU':>14} "
        f"{'|Δα|':>5}   {'vs u2net ref: photoproc / rembg / INTER_AREA'}"
    )
    print(header)
    worst = 1.0
    rows = []
    for photo in photos:
        data = photo.read_bytes()
        bgr = decode(data).pixels
        ours, theirs, old = photoproc_mask(data), rembg_mask(data), area_mask(bgr)
        ref_line = "-"
        ref_path = refs / f"{photo.stem}.u2net.png"
        if ref_path.is_file():
            ref = cv2.imread(str(ref_path), cv2.IMREAD_UNCHANGED)[..., 3]
            ref_line = f"{iou(ours, ref):.3f} / {iou(theirs, ref):.3f} / {iou(old, ref):.3f}"
            rows.append((iou(ours, ref), iou(theirs, ref), iou(old, ref)))
        agreement = iou(ours, theirs)
        worst = min(worst, agreement)
        size = f"{bgr.shape[1]}x{bgr.shape[0]}"
        print(
            f"{photo.stem:<14} {size:>10}  {agreement:12.4f} {mad(ours, theirs):5.2f}   "
            f"{iou(old, theirs):14.4f} {mad(old, theirs):5.2f}   {ref_line}",
            flush=True,
        )
    if rows:
        means = [statistics.mean(r[i] for r in rows) for i in range(3)]
        print(f"{'mean vs u2net references':<60} " + " / ".join(f"{m:.3f}" for m in means))

    if args.megapixels > 0:
        print(f"\nupscaled to {args.megapixels:g} MP (INTER_CUBIC, JPEG q90):")
        for photo in photos:
            src = decode(photo.read_bytes()).pixels[..., :3]
            h, w = src.shape[:2]
            scale = (args.megapixels * 1e6 / (w * h)) ** 0.5
            big = cv2.resize(
                src, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_CUBIC
            )
            data = cv2.imencode(".jpg", big, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
            ours, theirs = photoproc_mask(data), rembg_mask(data)
            agreement = iou(ours, theirs)
            worst = min(worst, agreement)
            print(f"  {photo.stem:<14} IoU vs rembg {agreement:.4f}  |Δα| {mad(ours, theirs):.2f}")
        for name, resize in (("LANCZOS (now)", segment._downscale), ("INTER_AREA", area_input)):
            resize(big, (320, 320))
            times = []
            for _ in range(5):
                started = time.perf_counter()
                resize(big, (320, 320))
                times.append(time.perf_counter() - started)
            print(f"  model input at {args.megapixels:g} MP, {name}: "
                  f"{statistics.median(times) * 1000:.1f} ms")  # fmt: skip

    verdict = "met" if worst >= MIN_IOU else "MISSED"
    print(f"\nworst IoU vs rembg: {worst:.4f} (target >= {MIN_IOU}: {verdict})")
    return 0 if worst >= MIN_IOU else 1


if __name__ == "__main__":
    sys.exit(main())
