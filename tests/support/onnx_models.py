"""Tiny ONNX models that follow rembg's I/O contracts, for tests without downloads.

Real weights are 4 MB–1 GB and cannot be fetched here, so these stand in for them:
they have the same input (float32 ``[1, 3, S, S]``, named like rembg's U²-Net
``input.1``) and outputs (seven ``[1, 1, S, S]`` maps, the fused mask first), and
a mask that tests can predict pixel by pixel:

- ``"center"``: the centre square (the middle half of each side) is foreground;
- ``"left"``: the left half is foreground;
- ``"bright"``: foreground where the normalised pixel is above the mean — with
  ImageNet normalisation, light pixels on a dark image;
- ``"flat"``: the same value everywhere (no foreground can be told apart).

Usage::

    from support.onnx_models import make_u2net_like
    path = make_u2net_like(tmp_path / "u2netp.onnx", kind="center")
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["KINDS", "install_rembg_model", "make_cloth_like", "make_u2net_like"]

KINDS = ("center", "left", "bright", "flat")
INPUT_NAME = "input.1"
_OPSET = 18
_IR_VERSION = 8  # readable by every onnxruntime we support


def _pattern(kind: str, size: int) -> np.ndarray:
    mask = np.zeros((1, 1, size, size), np.float32)
    if kind == "center":
        lo, hi = size // 4, size - size // 4
        mask[..., lo:hi, lo:hi] = 1.0
    elif kind == "left":
        mask[..., : size // 2] = 1.0
    elif kind == "flat":
        mask[:] = 0.5
    return mask


def make_u2net_like(
    path: str | Path,
    kind: str = "center",
    *,
    size: int = 320,
    n_outputs: int = 7,
    logits: bool = False,
    dynamic: bool = False,
) -> Path:
    """Write a U²-Net-contract model to ``path`` and return the path.

    ``logits=True`` emits values around ±4 instead of 0…1 (what BiRefNet gives
    before its sigmoid). ``dynamic=True`` leaves the input's height and width
    symbolic, as some exported models do, so the caller must pick the size; the
    fixed masks then need inputs of exactly ``size``.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    path = Path(path)
    spatial: list[int | str] = ["height", "width"] if dynamic else [size, size]
    x = helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [1, 3, *spatial])
    nodes = [
        # Every model reads its input, as real ones do: mean over channels, per pixel.
        helper.make_node("ReduceMean", [INPUT_NAME, "axes1"], ["gray"], keepdims=1),
    ]
    inits = [numpy_helper.from_array(np.array([1], np.int64), "axes1")]
    if kind == "bright":
        nodes.append(helper.make_node("Identity", ["gray"], ["score"]))
    else:
        # 0 * input + fixed pattern: depends on the input, yields the pattern exactly.
        inits += [
            numpy_helper.from_array(np.zeros((1,), np.float32), "zero"),
            numpy_helper.from_array(_pattern(kind, size), "pattern"),
        ]
        nodes += [
            helper.make_node("Mul", ["gray", "zero"], ["nothing"]),
            helper.make_node("Add", ["nothing", "pattern"], ["score"]),
        ]
    if logits:
        inits += [
            numpy_helper.from_array(np.array([8.0], np.float32), "gain"),
            numpy_helper.from_array(np.array([-4.0], np.float32), "bias"),
        ]
        if kind == "bright":
            nodes.append(helper.make_node("Mul", ["score", "gain"], ["fused"]))
        else:
            nodes += [
                helper.make_node("Mul", ["score", "gain"], ["scaled"]),
                helper.make_node("Add", ["scaled", "bias"], ["fused"]),
            ]
    elif kind == "bright":
        # U²-Net ends in a sigmoid: steep, so light and dark pixels land near 1 and 0.
        inits.append(numpy_helper.from_array(np.array([6.0], np.float32), "gain"))
        nodes += [
            helper.make_node("Mul", ["score", "gain"], ["steep"]),
            helper.make_node("Sigmoid", ["steep"], ["fused"]),
        ]
    else:
        nodes.append(helper.make_node("Identity", ["score"], ["fused"]))
    names = ["d0", *[f"d{i}" for i in range(1, n_outputs)]]
    nodes += [helper.make_node("Identity", ["fused"], [name]) for name in names]
    outputs = [
        helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, 1, *spatial]) for name in names
    ]
    graph = helper.make_graph(nodes, f"tiny_{kind}", [x], outputs, initializer=inits)
    _save(graph, path)
    return path


def make_cloth_like(path: str | Path, *, size: int = 768) -> Path:
    """A u2net_cloth_seg stand-in: 4 class logits ``[1, 4, S, S]``; bright pixels are class 1.

    Class 1 is "upper body" clothing in rembg; classes 2 and 3 never win.
    """
    path = Path(path)
    x = helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [1, 3, size, size])
    out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 4, size, size])
    inits = [
        numpy_helper.from_array(np.array([1], np.int64), "axes1"),
        numpy_helper.from_array(np.array([-100.0], np.float32), "low"),
        numpy_helper.from_array(np.zeros((1,), np.float32), "zero"),
    ]
    nodes = [
        helper.make_node("ReduceMean", [INPUT_NAME, "axes1"], ["gray"], keepdims=1),
        helper.make_node("Neg", ["gray"], ["background"]),
        helper.make_node("Mul", ["gray", "zero"], ["nothing"]),
        helper.make_node("Add", ["nothing", "low"], ["never"]),
        helper.make_node("Concat", ["background", "gray", "never", "never"], ["logits"], axis=1),
    ]
    _save(helper.make_graph(nodes, "tiny_cloth", [x], [out], initializer=inits), path)
    return path


def install_rembg_model(home: str | Path, name: str, **kwargs) -> Path:
    """Write a tiny model where rembg looks for ``name``: ``<home>/models/<name>/<name>.onnx``.

    ``name="u2net_cloth_seg"`` gets :func:`make_cloth_like`; others
    :func:`make_u2net_like` with ``kwargs``.
    """
    target = Path(home) / "models" / name / f"{name}.onnx"
    target.parent.mkdir(parents=True, exist_ok=True)
    if name == "u2net_cloth_seg":
        return make_cloth_like(target, **kwargs)
    return make_u2net_like(target, **kwargs)


def _save(graph: onnx.GraphProto, path: Path) -> None:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", _OPSET)])
    model.ir_version = _IR_VERSION
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
