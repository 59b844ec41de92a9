"""The offline model ``grabcut``: a salient-object cutout that needs no downloaded weights.

A fresh install without network must still remove backgrounds, so this model uses only
OpenCV, NumPy, SciPy and scikit-image. GrabCut seeded with a rectangle learns its foreground
colours from everything inside the rectangle and leaks into the background (mean IoU 0.54
against u2net on the reference photos, at 1-13 s each). Here GrabCut is seeded from a prior
built in four steps, all on small copies of the photo (mean IoU 0.92, 0.1-0.3 s each):

1. **Letterbox bars** (matching pairs of uniform bands at opposite edges, with varied photo
   content starting right after them across the whole width) are cut off: their flat colour
   would pose as the background. A product on a plain white ground is not a letterbox.
2. **Saliency by boundary connectivity** (Zhu et al., CVPR 2014, "Saliency optimization from
   robust background detection") on SLIC superpixels: a region that touches the top, left or
   right edge much for its size is background. The bottom edge counts half, because people
   and things in photos are often cut by it.
3. **Depth of field**: where a sharp subject stands before a blurred background, blur is
   estimated at edges by re-blurring (Zhuo & Sim 2011) and the prior is weighted by
   sharpness. The weight grows with the spread of blur, so all-sharp images (graphics, most
   product shots) are left to the saliency alone.
4. **Seeds**: the most salient few per cent (eroded, the strongest component) are sure
   foreground, the salient region connected to them is likely foreground; the least salient
   pixels and a rim along the edges are background. GrabCut's colour models are learnt from
   those samples only (OpenCV would learn them from every pixel, unsure ones included), then
   GrabCut labels the whole image. The bottom edge under the foreground seed is left open,
   for the same reason as in 2.

The mask is then cleaned (small specks dropped, small holes filled) and upsampled with a
guided filter so its edge follows the photo's. ``benchmarks/offline_quality.py`` measures it
against the reference cutouts.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy.sparse import coo_matrix, csr_matrix, diags
from scipy.sparse.csgraph import dijkstra
from scipy.sparse.linalg import spsolve
from skimage.segmentation import slic

from ..errors import InvalidImageError, InvalidOptionsError

__all__ = ["GrabCutSegmenter"]

#: longest side of the copy that letterbox and depth-of-field analysis read.
_ANALYSIS_SIDE = 512
#: neither side of a working copy is smaller than this (thin panoramas, 4x4 test images).
_MIN_SIDE = 32
#: how much touching the bottom edge counts as being background, against top, left, right.
_BOTTOM_WEIGHT = 0.5
#: share of pixels that are sure foreground seeds, and the erosion applied to them.
_CORE_SHARE = 0.07
_CORE_ERODE = 5
#: the least salient share of pixels, and a rim of this share of the longer side, feed the
#: background colour model.
_BACKGROUND_SHARE, _RING = 0.6, 0.08
#: blur-spread range (in re-blur sigma units) over which the sharpness weight fades in,
#: and the sharpness exponent at full weight.
_DOF_START, _DOF_RANGE, _DOF_POWER = 0.9, 0.6, 1.5
#: components smaller than this share of the largest are dropped; holes smaller than this
#: share of the foreground are filled (bigger ones, e.g. between an arm and a body, stay).
_KEEP_COMPONENT, _FILL_HOLE = 0.2, 0.02
#: width in work pixels of the image edge taken as sure background.
_EDGE = 2


class GrabCutSegmenter:
    """Classical salient-object segmentation: saliency + depth-of-field prior → GrabCut.

    Holds only its settings, so one instance may serve many threads at once; every call
    seeds OpenCV's (thread-local) RNG, so a given image always gets the same mask.
    """

    name = "grabcut"

    def __init__(self, *, work_side: int = 256, iterations: int = 2, saliency_side: int = 200):
        """``work_side``: longest side GrabCut runs at; ``iterations``: GrabCut rounds after
        the first cut (0 keeps the colour models learnt from the seeds); ``saliency_side``:
        longest side the saliency prior is computed at."""
        for field, value, low in (
            ("work_side", work_side, 64),
            ("iterations", iterations, 0),
            ("saliency_side", saliency_side, 64),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise InvalidOptionsError(field, f"{value!r} is not a whole number >= {low}")
        self.work_side = work_side
        self.iterations = iterations
        self.saliency_side = saliency_side

    def __repr__(self) -> str:
        return (
            f"GrabCutSegmenter(work_side={self.work_side}, iterations={self.iterations}, "
            f"saliency_side={self.saliency_side})"
        )

    def predict(self, bgr: np.ndarray) -> np.ndarray:
        """A uint8 mask of ``bgr``'s size, 255 = foreground, soft at the edges."""
        bgr = _as_bgr(bgr)
        height, width = bgr.shape[:2]
        small = _fit(bgr, _ANALYSIS_SIDE, up=False)
        top, bottom, left, right = _letterbox(small)
        sy, sx = height / small.shape[0], width / small.shape[1]
        y0, y1 = round(top * sy), height - round(bottom * sy)
        x0, x1 = round(left * sx), width - round(right * sx)
        photo = bgr[y0:y1, x0:x1]
        small = small[top : small.shape[0] - bottom, left : small.shape[1] - right]

        work = _fit(small, self.work_side)
        prior = _prior(_fit(small, self.saliency_side), small)
        prior = cv2.resize(prior, (work.shape[1], work.shape[0]), interpolation=cv2.INTER_LINEAR)
        foreground = _cut(work, prior, self.iterations)

        alpha = _guided_upsample(work, foreground, photo)
        out = np.zeros((height, width), np.uint8)
        out[y0:y1, x0:x1] = alpha
        return out


def _as_bgr(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.size == 0:
        raise InvalidImageError("grabcut needs a non-empty uint8 numpy array")
    if image.ndim == 2:
        return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] in (3, 4):
        return np.ascontiguousarray(image[..., :3])
    raise InvalidImageError(
        f"grabcut needs (H, W), (H, W, 3) or (H, W, 4) pixels, not {image.shape}"
    )


def _fit(image: np.ndarray, side: int, *, up: bool = True) -> np.ndarray:
    """``image`` scaled so its longer side is ``side`` (each side at least ``_MIN_SIDE``)."""
    h, w = image.shape[:2]
    scale = side / max(h, w)
    if scale >= 1 and not up:
        return image
    size = (max(_MIN_SIDE, round(w * scale)), max(_MIN_SIDE, round(h * scale)))
    if size == (w, h):
        return image
    shrink = size[0] <= w and size[1] <= h
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def _letterbox(small: np.ndarray, tol: int = 24, flat: float = 6.0) -> tuple[int, int, int, int]:
    """Bar widths (top, bottom, left, right) in ``small``'s pixels; 0 where there is none."""
    if min(small.shape[:2]) < 3 * _MIN_SIDE:
        return (0, 0, 0, 0)

    def bar(lines: np.ndarray) -> int:
        # lines: (n, length, 3), the first one at the edge
        colour = lines[0].astype(np.int16).mean(0)
        n = 0
        for line in lines[: len(lines) // 3]:
            diff = np.abs(line.astype(np.int16) - colour).max()
            if diff > tol or line.std() > flat:
                break
            n += 1
        if n == 0:
            return 0
        # A letterbox ends where varied photo content starts across the whole line (after
        # a few lines of JPEG ringing); a plain backdrop ends where the subject is, so most
        # of that line still matches it, or the line is the subject's flat colour.
        for k in range(n, min(n + 8, len(lines) // 3)):
            line = lines[k].astype(np.int16)
            content = np.abs(line - colour).max(1) > tol
            if content.mean() > 0.8:
                return k if line[content].std(0).max() > 3 * flat else 0
        return 0

    rows, cols = small, small.transpose(1, 0, 2)
    top, bottom, left, right = bar(rows), bar(rows[::-1]), bar(cols), bar(cols[::-1])
    # Letterboxes come in matching pairs; a lone flat band is more likely sky or a backdrop.
    if not (top and bottom and abs(top - bottom) <= 2 + 0.05 * len(rows)):
        top = bottom = 0
    if not (left and right and abs(left - right) <= 2 + 0.05 * len(cols)):
        left = right = 0
    return top, bottom, left, right


def _prior(sal_img: np.ndarray, small: np.ndarray) -> np.ndarray:
    """Foreground prior in [0, 1] at ``sal_img``'s size."""
    prior = _boundary_saliency(sal_img)
    sharp, spread = _sharpness(small, sal_img.shape[:2])
    power = _DOF_POWER * float(np.clip((spread - _DOF_START) / _DOF_RANGE, 0.0, 1.0))
    if power > 0:
        prior = prior * sharp**power
    return _unit(prior)


def _boundary_saliency(image: np.ndarray, segments: int = 250) -> np.ndarray:
    """Robust-background-detection saliency (Zhu et al. 2014); the bottom edge counts half."""
    h, w = image.shape[:2]
    rgb = image[..., ::-1]
    labels = slic(rgb, n_segments=segments, compactness=10, start_label=0, channel_axis=-1)
    _, labels = np.unique(labels, return_inverse=True)
    labels = labels.reshape(h, w)
    n = int(labels.max()) + 1
    flat = labels.ravel()
    count = np.bincount(flat, minlength=n).astype(np.float64)
    lab = cv2.cvtColor(image.astype(np.float32) / 255, cv2.COLOR_BGR2Lab).reshape(-1, 3)
    colour: np.ndarray = np.stack([np.bincount(flat, lab[:, c], minlength=n) for c in range(3)], 1)
    colour = colour / count[:, None]
    yy, xx = np.mgrid[0:h, 0:w]
    cy = np.bincount(flat, yy.ravel() / h, minlength=n) / count
    cx = np.bincount(flat, xx.ravel() / w, minlength=n) / count

    a = np.concatenate([labels[:, :-1].ravel(), labels[:-1, :].ravel()])
    b = np.concatenate([labels[:, 1:].ravel(), labels[1:, :].ravel()])
    keep = a != b
    a, b = a[keep], b[keep]
    adjacent = np.unique(np.stack([np.minimum(a, b), np.maximum(a, b)], 1), axis=0)
    edge = np.unique(np.concatenate([labels[0], labels[:, 0], labels[:, -1]]))
    bottom = np.setdiff1d(labels[-1], edge)
    # Edge regions are linked to each other, as in the paper: background is one thing.
    ea, eb = np.meshgrid(edge, edge)
    upper = (ea < eb).ravel()
    pairs = np.concatenate([adjacent, np.stack([ea.ravel()[upper], eb.ravel()[upper]], 1)])
    dist = np.linalg.norm(colour[pairs[:, 0]] - colour[pairs[:, 1]], axis=1) + 1e-6
    graph = csr_matrix((dist, (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    geodesic = dijkstra(graph, directed=False)

    sigma = 10.0  # Lab units
    near = np.exp(-(geodesic**2) / (2 * sigma**2))
    touch = near[:, edge].sum(1) + _BOTTOM_WEIGHT * near[:, bottom].sum(1)
    connectivity = touch / np.sqrt(near.sum(1))
    w_bg = 1 - np.exp(-(connectivity**2) / 2)
    contrast = np.linalg.norm(colour[:, None] - colour[None], axis=2)
    spatial = np.exp(
        -((cy[:, None] - cy[None]) ** 2 + (cx[:, None] - cx[None]) ** 2) / (2 * 0.25**2)
    )
    w_fg = (contrast * spatial * w_bg[None]).sum(1)
    w_fg /= w_fg.max() + 1e-9

    # min  sum w_bg s^2 + w_fg (s-1)^2 + sum w_ij (s_i - s_j)^2  → a sparse linear system
    d = np.linalg.norm(colour[adjacent[:, 0]] - colour[adjacent[:, 1]], axis=1)
    w_ij = np.exp(-(d**2) / (2 * sigma**2)) + 0.1
    rows = np.concatenate([adjacent[:, 0], adjacent[:, 1]])
    cols = np.concatenate([adjacent[:, 1], adjacent[:, 0]])
    weights = coo_matrix((np.concatenate([w_ij, w_ij]), (rows, cols)), shape=(n, n)).tocsr()
    laplacian = diags(np.asarray(weights.sum(1)).ravel()) - weights
    system = (diags(w_bg + w_fg) + laplacian).tocsc()
    score = np.clip(np.atleast_1d(spsolve(system, w_fg)), 0, 1)
    return _unit(score[labels])


def _sharpness(image: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, float]:
    """Per-pixel sharpness in [0, 1] at ``shape``, and the spread of blur at edges.

    Re-blurring an edge by sigma0 lowers its gradient by a ratio R that tells the edge's own
    blur: sigma = sigma0 / sqrt(R^2 - 1). Sharp edges are spread to their neighbourhood.
    """
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)
    edges = cv2.Canny(image, 40, 100) > 0
    if edges.sum() < 50:
        return np.ones(shape, np.float32), 0.0

    def gradient(x: np.ndarray) -> np.ndarray:
        return cv2.magnitude(cv2.Sobel(x, cv2.CV_32F, 1, 0), cv2.Sobel(x, cv2.CV_32F, 0, 1))

    ratio = gradient(grey)[edges] / (gradient(cv2.GaussianBlur(grey, (0, 0), 1.0))[edges] + 1e-3)
    blur = np.where(ratio > 1.01, 1.0 / np.sqrt(np.maximum(ratio**2 - 1, 1e-4)), 5.0)
    p10, p90 = np.percentile(blur, [10, 90])
    sharp = np.zeros(grey.shape, np.float32)
    sharp[edges] = np.exp(-blur)
    sigma = max(grey.shape) / 60
    density = cv2.GaussianBlur(edges.astype(np.float32), (0, 0), sigma)
    spread = cv2.GaussianBlur(sharp, (0, 0), sigma) / (density + 1e-3) * np.minimum(1, density * 10)
    spread = cv2.resize(spread, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
    return _unit(spread), float(p90 - p10)


def _cut(image: np.ndarray, prior: np.ndarray, iterations: int) -> np.ndarray:
    """Boolean foreground of ``image`` from GrabCut seeded by ``prior``."""
    h, w = prior.shape
    nothing = np.zeros((h, w), bool)
    core = (prior >= np.quantile(prior, 1 - _CORE_SHARE)).astype(np.uint8)
    core = cv2.erode(core, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (_CORE_ERODE,) * 2))
    n, labels = cv2.connectedComponents(core)
    if n < 2:
        return nothing
    mass = np.bincount(labels.ravel(), prior.ravel(), minlength=n)
    mass[0] = -1
    core = labels == int(np.argmax(mass))

    salient = (prior >= _otsu(prior)).astype(np.uint8)
    _, regions = cv2.connectedComponents(salient)
    linked = np.unique(regions[core])
    likely = np.isin(regions, linked[linked > 0]) | core

    low = prior <= np.quantile(prior, _BACKGROUND_SHARE)
    edge = np.zeros((h, w), bool)
    edge[:_EDGE] = edge[:, :_EDGE] = edge[:, -_EDGE:] = True
    columns = np.nonzero(core.any(0))[0]
    open_bottom = np.zeros(w, bool)
    open_bottom[columns.min() : columns.max() + 1] = True
    edge[-_EDGE:] |= low[-_EDGE:] & ~open_bottom

    # The image's rim feeds the background model whatever the prior says there: the least
    # salient pixels alone can miss a kind of background (mid-tone ground, lit foliage).
    ring = np.zeros((h, w), bool)
    r = max(_EDGE, round(_RING * max(h, w)))
    ring[:r] = ring[:, :r] = ring[:, -r:] = True
    ring[-r:] |= ~open_bottom
    fg_samples, bg_samples = image[likely], image[(low | edge | ring) & ~likely]
    if len(fg_samples) < 10 or len(bg_samples) < 10:
        return nothing
    bg_model, fg_model = _learn_models(fg_samples, bg_samples)
    mask = np.full((h, w), cv2.GC_PR_BGD, np.uint8)  # the first cut relabels all unsure ones
    mask[edge] = cv2.GC_BGD
    mask[core] = cv2.GC_FGD
    # OpenCV takes None for the rect in the mask modes; its stubs do not say so.
    cv2.grabCut(image, mask, None, bg_model, fg_model, 1, cv2.GC_EVAL_FREEZE_MODEL)  # type: ignore[call-overload]
    if iterations:
        cv2.grabCut(image, mask, None, bg_model, fg_model, iterations, cv2.GC_EVAL)  # type: ignore[call-overload]
    return _clean((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD))


def _learn_models(fg: np.ndarray, bg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GrabCut's colour GMMs learnt from the given samples only.

    OpenCV learns them from every pixel of a mask; laying the samples out as a 1xN strip
    lets the unsure pixels stay out of both models.
    """
    strip = np.concatenate([fg, bg])[None]
    labels = np.concatenate([np.full(len(fg), cv2.GC_FGD), np.full(len(bg), cv2.GC_BGD)])
    labels = labels.astype(np.uint8)[None]
    bg_model = np.zeros((1, 65), np.float64)
    fg_model = np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)  # GMM initialisation runs k-means; the RNG is per thread
    cv2.grabCut(strip, labels, None, bg_model, fg_model, 0, cv2.GC_INIT_WITH_MASK)  # type: ignore[call-overload]
    return bg_model, fg_model


def _clean(fg: np.ndarray) -> np.ndarray:
    """Drop specks and fill small holes (GrabCut leaves both around highlights and texture)."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(fg.astype(np.uint8), connectivity=8)
    if n < 2:
        return fg
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.zeros(n, bool)
    keep[1:] = areas >= _KEEP_COMPONENT * areas.max()
    fg = keep[labels]
    n, labels, stats, _ = cv2.connectedComponentsWithStats((~fg).astype(np.uint8), connectivity=4)
    h, w = fg.shape
    x, y, bw, bh, area = stats.T
    inner = (x > 0) & (y > 0) & (x + bw < w) & (y + bh < h)
    hole = inner & (area <= _FILL_HOLE * fg.sum())
    hole[0] = False
    filled: np.ndarray = fg | hole[labels]
    return filled


def _guided_upsample(
    work: np.ndarray, fg: np.ndarray, photo: np.ndarray, radius: int = 2, eps: float = 1e-2
) -> np.ndarray:
    """``fg`` at ``photo``'s size, edges snapped to the photo's (fast guided filter, He 2015).

    The local linear model grey → mask is fitted on the small copy and applied to the
    full-size grey image.
    """
    guide = cv2.cvtColor(work, cv2.COLOR_BGR2GRAY).astype(np.float32) / 255
    p = fg.astype(np.float32)
    size = (2 * radius + 1, 2 * radius + 1)

    def box(x: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(x, -1, size)

    mean_i, mean_p = box(guide), box(p)
    a = (box(guide * p) - mean_i * mean_p) / (box(guide * guide) - mean_i * mean_i + eps)
    b = mean_p - a * mean_i
    # alpha = saturate(k (a I + b - 0.5) + 127.5): a narrow soft edge (1/k of the filter's
    # reach) rather than a staircase or a halo. The affine map is folded into a and b, so
    # the full-size work is two resizes, one multiply and one saturating add.
    k = 4 * 255
    h, w = photo.shape[:2]
    a = cv2.resize(box(a) * (k / 255), (w, h), interpolation=cv2.INTER_LINEAR)
    b = cv2.resize(box(b) * k + (127.5 - k / 2), (w, h), interpolation=cv2.INTER_LINEAR)
    grey = cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY)
    return cv2.add(cv2.multiply(grey, a, dtype=cv2.CV_32F), b, dtype=cv2.CV_8U)


def _otsu(values: np.ndarray) -> float:
    u8 = (np.clip(values, 0, 1) * 255).astype(np.uint8)
    threshold, _ = cv2.threshold(u8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return float(threshold) / 255


def _unit(x: np.ndarray) -> np.ndarray:
    """``x`` scaled to [0, 1] as float32 (all zeros when flat)."""
    x = x.astype(np.float32)
    lo, span = float(x.min()), float(np.ptp(x))
    return (x - lo) / span if span > 1e-9 else np.zeros_like(x)
