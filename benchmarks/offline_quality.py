"""Quality and speed of the offline ``grabcut`` model against u2net's reference cutouts.

    python benchmarks/offline_quality.py [--shared DIR] [--runs 3] [--no-baseline]

For each photo with a reference in ``DIR/testdata/reference/*.u2net.png`` (rembg's published
u2net output; alpha > 127 is foreground) it prints the IoU and the median time of ``--runs``
calls to ``predict`` (decoding excluded; OpenCV limited to one thread), for photoproc's ``grabcut`` and for
the naive baseline it replaced: GrabCut seeded with a rectangle 5 % inside the frame, at 640 px,
5 iterations. Exits 1 when ``grabcut`` misses the bar: mean IoU >= 0.8 and every image's
median time <= 0.5 s.

When rembg's real u2netp weights are here (``DIR/models/u2netp.onnx`` or the installed copy),
``grabcut`` is also scored against u2netp's masks on *all* the shared photos — the five
references it was tuned on and the two it was not — with u2netp's own time per image.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED, machine, real_u2netp

from photoproc.pipeline.grabcut import GrabCutSegmenter

MIN_IOU = 0.8
MAX_SECONDS = 0.5


def naive_rectangle(bgr: np.ndarray, side: int = 640, inset: float = 0.05) -> np.ndarray:
    """The baseline: OpenCV GrabCut seeded with a rectangle, as most tutorials do it."""
    h, w = bgr.shape[:2]
    scale = side / max(h, w)
    small = cv2.resize(bgr, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    sh, sw = small.shape[:2]
    dx, dy = round(sw * inset), round(sh * inset)
    mask = np.zeros((sh, sw), np.uint8)
    bg_model, fg_model = np.zeros((1, 65)), np.zeros((1, 65))
    cv2.setRNGSeed(0)
    rect = (dx, dy, sw - 2 * dx, sh - 2 * dy)
    cv2.grabCut(small, mask, rect, bg_model, fg_model, 5, cv2.GC_INIT_WITH_RECT)
    fg = np.where((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD), 255, 0).astype(np.uint8)
    return cv2.resize(fg, (w, h), interpolation=cv2.INTER_NEAREST)


def iou(mask: np.ndarray, truth: np.ndarray) -> float:
    found = mask > 127
    return float((found & truth).sum() / max(1, (found | truth).sum()))


def measure(
    predict: Callable[[np.ndarray], np.ndarray],
    cases: list[tuple[str, np.ndarray, np.ndarray]],
    runs: int,
) -> list[tuple[str, float, float]]:
    """(name, IoU, median seconds) per photo; the mask must not change between runs."""
    rows = []
    for name, photo, truth in cases:
        seconds, masks = [], []
        for _ in range(runs):
            started = time.perf_counter()
            masks.append(predict(photo))
            seconds.append(time.perf_counter() - started)
        if any(not np.array_equal(m, masks[0]) for m in masks):
            sys.exit(f"{name}: the mask changed between runs")
        rows.append((name, iou(masks[0], truth), statistics.median(seconds)))
        print(f"  {name:<16} IoU {rows[-1][1]:.3f}  {rows[-1][2] * 1000:7.0f} ms", flush=True)
    mean_iou = statistics.mean(r[1] for r in rows)
    mean_ms = statistics.mean(r[2] for r in rows) * 1000
    max_ms = max(r[2] for r in rows) * 1000
    print(f"  {'mean':<16} IoU {mean_iou:.3f}  {mean_ms:7.0f} ms (slowest {max_ms:.0f} ms)")
    return rows


def load(shared: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    cases = []
    for ref_path in sorted((shared / "testdata" / "reference").glob("*.u2net.png")):
        name = ref_path.name.removesuffix(".u2net.png")
        photo = cv2.imread(str(shared / "testdata" / "photos" / f"{name}.jpg"), cv2.IMREAD_COLOR)
        ref = cv2.imread(str(ref_path), cv2.IMREAD_UNCHANGED)
        if photo is None or ref is None or ref.ndim != 3 or ref.shape[2] != 4:
            sys.exit(f"{name}: photo or RGBA reference missing or unreadable")
        if ref.shape[:2] != photo.shape[:2]:
            sys.exit(f"{name}: reference {ref.shape[:2]} differs from photo {photo.shape[:2]}")
        cases.append((name, photo, ref[..., 3] > 127))
    if not cases:
        sys.exit(f"no reference cutouts under {shared / 'testdata' / 'reference'}")
    return cases


def against_u2netp(grabcut: GrabCutSegmenter, shared: Path, runs: int) -> None:
    """grabcut's IoU against the real u2netp's masks on every shared photo."""
    weights = real_u2netp()
    if weights is None:
        print("real u2netp weights not found: the comparison with u2netp is skipped")
        return
    from photoproc.pipeline.segment import _U2NET, OnnxSegmenter

    u2netp = OnnxSegmenter("u2netp", weights, _U2NET, threads=1)
    photos = sorted((shared / "testdata" / "photos").glob("*.jpg"))
    print(f"grabcut vs the real u2netp's masks ({weights}), all {len(photos)} photos:")
    scores = []
    for path in photos:
        photo = cv2.imread(str(path), cv2.IMREAD_COLOR)
        seconds = []
        for _ in range(runs):
            started = time.perf_counter()
            truth = u2netp.predict(photo) > 127
            seconds.append(time.perf_counter() - started)
        score = iou(grabcut.predict(photo), truth)
        scores.append(score)
        tuned = (
            "tuned on"
            if (shared / "testdata" / "reference" / f"{path.stem}.u2net.png").exists()
            else "NOT tuned on"
        )
        print(
            f"  {path.stem:<16} IoU {score:.3f}  (u2netp {statistics.median(seconds) * 1000:5.0f} ms"
            f", 1 thread; {tuned})"
        )
    print(f"  {'mean':<16} IoU {statistics.mean(scores):.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=SHARED, help="the shared data folder")
    parser.add_argument("--runs", type=int, default=3, help="timed calls per image (median)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the slow baseline")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be >= 1")
    cv2.setNumThreads(1)
    cases = load(args.shared)
    print(machine())
    print(f"OpenCV {cv2.__version__}, {len(cases)} photos, median of {args.runs} runs, 1 thread")

    model = GrabCutSegmenter()
    model.predict(cases[0][1])  # first call loads scikit-image's lazy modules
    print(f"grabcut ({model!r}):")
    rows = measure(model.predict, cases, args.runs)
    if not args.no_baseline:
        print("naive rectangle GrabCut (640 px, 5 iterations):")
        measure(naive_rectangle, cases, args.runs)

    against_u2netp(model, args.shared, args.runs)

    mean_iou = statistics.mean(r[1] for r in rows)
    slow = [f"{name} {s:.2f} s" for name, _, s in rows if s > MAX_SECONDS]
    if mean_iou < MIN_IOU or slow:
        print(
            f"BAR MISSED: mean IoU {mean_iou:.3f} (needs >= {MIN_IOU}); "
            f"over {MAX_SECONDS} s: {', '.join(slow) or 'none'}"
        )
        return 1
    print(f"bar met: mean IoU {mean_iou:.3f} >= {MIN_IOU}, every image <= {MAX_SECONDS} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
