"""photoproc process vs rembg p: images/s, peak RSS and pure inference, in one run.

    python benchmarks/bench_process.py [--repeats 3] [--models u2netp u2net] [--rss-scaling]

Both tools process the same 24 JPEGs (8 each at ~2, 6 and 12 MP) with the same
model file. ``u2netp`` is rembg's real u2netp when its weights are here
(../shared/models/u2netp.onnx or the installed copy; both tools then load it as
``u2netp`` from one model folder), else the random-weight U²-Net-architecture file;
``u2net`` is always the random-weight u2net-size file (built by
../shared/tools/make_u2net_onnx.py). Runs alternate between the tools and the
medians are compared. Also printed: photoproc's time against the pure-inference
floor, 24 images x 1-thread inference / cores — what no pipeline around this model
can beat on this machine; the rest of the gap is ours. rembg's CLI comes from the
separate benchmark environment (``.bench-venv``, see benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    ROOT,
    WORK,
    machine,
    make_images,
    median,
    model_files,
    real_u2netp,
    real_u2netp_home,
    run_measured,
)


def check_outputs(images: list[Path], out: Path) -> str:
    """All outputs present, same size as their input, with an alpha channel."""
    pngs = sorted(out.rglob("*.png"))
    if len(pngs) != len(images):
        return f"{len(pngs)}/{len(images)} PNGs"
    for src in images:
        png = out / (src.stem + ".png")
        with Image.open(src) as a, Image.open(png) as b:
            if a.size != b.size or b.mode != "RGBA":
                return f"{png.name}: {b.size} {b.mode} vs input {a.size}"
    return "ok"


def pure_inference(model: Path, threads: int, runs: int = 8) -> float:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
    feed = {
        session.get_inputs()[0].name: np.random.default_rng(0).random((1, 3, 320, 320), np.float32)
    }
    session.run(None, feed)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - t)
    return median(times)


def photoproc_cmd(src: Path, out: Path, model: Path | str, workers: int | None = None) -> list[str]:
    """``model``: a file (``--model custom``) or an installed model's name."""
    cmd = [sys.executable, "-m", "photoproc", "process", str(src), "--out", str(out), "-q"]
    if isinstance(model, str):
        cmd += ["--model", model]
    else:
        cmd += ["--model", "custom", "--model-path", str(model)]
    return cmd + (["--workers", str(workers)] if workers else [])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--models", nargs="+", default=["u2netp", "u2net"])
    ap.add_argument("--rembg", default=str(ROOT / ".bench-venv" / "bin" / "rembg"))
    ap.add_argument(
        "--rss-scaling",
        action="store_true",
        help="also compare photoproc's peak RSS on 20 and 200 images",
    )
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args()

    if not Path(args.rembg).exists():
        sys.exit(f"rembg CLI not found at {args.rembg}; see benchmarks/README.md")
    images_dir = WORK / "images24"
    images = make_images(images_dir, 24)
    real = real_u2netp() if "u2netp" in args.models else None
    random_weights = tuple(n for n in args.models if not (n == "u2netp" and real))
    models = {**({"u2netp": real} if real else {}), **model_files(random_weights)}
    home = WORK / "rembg-home"
    home.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.2f}")
    print(f"images: {len(images)} JPEGs (2/6/12 MP) in {images_dir}; repeats: {args.repeats}")
    print(f"u2netp: {'REAL weights ' + str(real) if real else 'random-weight stand-in'}\n")

    figures: dict[str, dict] = {}
    for name, model in models.items():
        if name == "u2netp" and real:
            # The real file as rembg's own u2netp, for both tools.
            real_home = real_u2netp_home(model)
            rembg_cmd_base = [args.rembg, "p", "-m", "u2netp"]
            rembg_env = {"REMBG_HOME": str(real_home)}
            ours: Path | str = "u2netp"
        else:
            # rembg's u2net_custom refuses a model_path outside its home folder.
            inside = home / model.name
            if not inside.exists():
                shutil.copyfile(model, inside)
            rembg_cmd_base = [
                args.rembg,
                "p",
                "-m",
                "u2net_custom",
                "-x",
                json.dumps({"model_path": str(inside)}),
            ]
            rembg_env = {"REMBG_HOME": str(home)}
            ours = model
        runs: dict[str, list] = {"rembg": [], "photoproc": []}
        checks = {}
        inference_1t: list[float] = []  # measured between the runs: the load moves
        for r in range(args.repeats):
            for tool in ("rembg", "photoproc"):
                out = WORK / f"out-{tool}-{name}-{r}"
                shutil.rmtree(out, ignore_errors=True)  # rembg p skips existing outputs
                out.mkdir(parents=True)
                cmd = (
                    [*rembg_cmd_base, str(images_dir), str(out)]
                    if tool == "rembg"
                    else photoproc_cmd(images_dir, out, ours)
                )
                run = run_measured(cmd, env=rembg_env)
                if run.returncode != 0:
                    print(run.stderr[-2000:], file=sys.stderr)
                    sys.exit(f"{tool} failed with status {run.returncode}")
                checks[tool] = check_outputs(images, out)
                runs[tool].append(run)
                print(
                    f"  {name:7s} {tool:9s} run {r + 1}: {run.seconds:6.2f} s, "
                    f"peak RSS {run.peak_rss_mb:5.0f} MB, outputs {checks[tool]}",
                    flush=True,
                )
                shutil.rmtree(out, ignore_errors=True)
            inference_1t.append(pure_inference(model, 1, runs=4))
        fig = {}
        for tool, tool_runs in runs.items():
            secs = median([r.seconds for r in tool_runs])
            fig[tool] = {
                "median_s": secs,
                "images_per_s": len(images) / secs,
                "peak_rss_mb": max(r.peak_rss_mb for r in tool_runs),
                "outputs": checks[tool],
            }
        fig["ratio"] = fig["photoproc"]["images_per_s"] / fig["rembg"]["images_per_s"]
        fig["inference_ms"] = {t: pure_inference(model, t) * 1000 for t in (1, 2)}
        fig["inference_1t_between_runs_ms"] = [round(x * 1000) for x in inference_1t]
        cores = os.cpu_count() or 1
        fig["floor_s"] = len(images) * median(inference_1t) / cores
        fig["floor_ratio"] = fig["photoproc"]["median_s"] / fig["floor_s"]
        fig["load_after"] = os.getloadavg()[0]
        figures[name] = fig

    print("\nmodel    tool       median s  images/s  peak RSS MB  outputs")
    for name, fig in figures.items():
        for tool in ("rembg", "photoproc"):
            f = fig[tool]
            print(
                f"{name:8s} {tool:9s} {f['median_s']:9.2f} {f['images_per_s']:9.2f} "
                f"{f['peak_rss_mb']:12.0f}  {f['outputs']}"
            )
        inf = fig["inference_ms"]
        print(
            f"{name:8s} ratio photoproc/rembg images/s: {fig['ratio']:.2f}x   "
            f"(pure onnxruntime inference {inf[1]:.0f} ms @1 thread, {inf[2]:.0f} ms @2 threads)"
        )
        between = fig["inference_1t_between_runs_ms"]
        print(
            f"{name:8s} inference floor {len(images)} x {median(between):.0f} ms (1 thread, "
            f"median of {between} between the runs) / {os.cpu_count()} cores"
            f" = {fig['floor_s']:.2f} s; photoproc {fig['photoproc']['median_s']:.2f} s = "
            f"{fig['floor_ratio']:.2f}x the floor; load average after {fig['load_after']:.2f}"
        )

    if args.rss_scaling:
        model = models[args.models[0]]
        rss = {}
        for count in (20, 200):
            folder = WORK / f"images{count}"
            make_images(folder, count)
            out = WORK / f"out-rss-{count}"
            shutil.rmtree(out, ignore_errors=True)
            run = run_measured(photoproc_cmd(folder, out, model))
            shutil.rmtree(out, ignore_errors=True)
            rss[count] = run.peak_rss_mb
            print(
                f"peak RSS, photoproc process on {count:3d} images: {run.peak_rss_mb:.0f} MB "
                f"({run.seconds:.1f} s)"
            )
        growth = rss[200] / rss[20] - 1
        print(f"peak RSS growth 20 → 200 images: {growth * 100:+.1f}% (target ≤ +10%)")
        figures["rss_scaling"] = {"20": rss[20], "200": rss[200], "growth": growth}

    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "figures": figures}, indent=2))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    sys.exit(main())
