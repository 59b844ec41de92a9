"""``--device cpu|cuda|auto``: CUDA or a loud failure naming the missing piece, never a
silent CPU run; ``auto`` falls back to the CPU.

This machine has the CPU onnxruntime and no GPU, so ``cuda`` must fail here with
"onnxruntime-gpu is not installed". The other missing pieces (a shadowed GPU
build, no GPU device, a CUDA library that does not load) are what the real
onnxruntime-gpu wheel reports on a host without a GPU: set
``PHOTOPROC_TEST_GPU_PYTHON`` to an interpreter that has onnxruntime-gpu to
check them for real (see ``test_real_gpu_wheel_without_a_gpu``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnxruntime as ort
import pytest

from photoproc.cli import main
from photoproc.errors import InvalidOptionsError
from photoproc.pipeline import providers, segment
from photoproc.pipeline.providers import (
    CUDA_OPTIONS,
    DEVICE_ENV,
    DeviceUnavailableError,
    Selection,
)

ROOT = Path(__file__).resolve().parents[2]
HAS_CUDA = "CUDAExecutionProvider" in ort.get_available_providers()


@pytest.fixture(autouse=True)
def _fresh_choice(monkeypatch):
    monkeypatch.delenv(DEVICE_ENV, raising=False)
    providers._forget()
    segment.set_providers(None)
    yield
    providers._forget()
    segment.clear_cache()


def test_probe_model_is_a_valid_onnx_identity():
    onnx = pytest.importorskip("onnx")
    model = onnx.load_from_string(providers._PROBE_MODEL)
    onnx.checker.check_model(model)
    session = ort.InferenceSession(providers._PROBE_MODEL, providers=["CPUExecutionProvider"])
    x = np.array([3.5], np.float32)
    assert session.run(None, {"x": x})[0].tolist() == [3.5]


def test_cpu_uses_only_the_cpu():
    selection = providers.select("cpu")
    assert selection.providers == ("CPUExecutionProvider",)
    assert selection.session_providers() == ["CPUExecutionProvider"]


@pytest.mark.skipif(HAS_CUDA, reason="this onnxruntime has CUDA")
def test_cuda_without_the_gpu_build_fails_naming_it():
    with pytest.raises(DeviceUnavailableError) as caught:
        providers.select("cuda")
    message = str(caught.value)
    assert "onnxruntime-gpu is not installed" in message
    assert "pip install 'photoproc[gpu]'" in message


@pytest.mark.skipif(HAS_CUDA, reason="this onnxruntime has CUDA")
def test_auto_falls_back_to_the_cpu_and_says_why():
    selection = providers.select("auto")
    assert selection.providers == ("CPUExecutionProvider",)
    assert "onnxruntime-gpu is not installed" in selection.reason
    assert providers.providers_in_use() == ["CPUExecutionProvider"]


def test_a_cuda_selection_passes_the_heuristic_cudnn_search():
    selection = Selection("cuda", ("CUDAExecutionProvider", "CPUExecutionProvider"),
                          options={"CUDAExecutionProvider": CUDA_OPTIONS})  # fmt: skip
    assert selection.session_providers() == [
        ("CUDAExecutionProvider", {"cudnn_conv_algo_search": "HEURISTIC"}),
        "CPUExecutionProvider",
    ]


def test_device_comes_from_the_environment_and_is_validated(monkeypatch):
    monkeypatch.setenv(DEVICE_ENV, "CPU")
    assert providers.requested_device() == "cpu"
    assert providers.select().device == "cpu"
    monkeypatch.setenv(DEVICE_ENV, "gpu")
    with pytest.raises(InvalidOptionsError, match=DEVICE_ENV):
        providers.select()


def test_sessions_get_the_selected_providers(monkeypatch, tmp_path):
    monkeypatch.setenv(DEVICE_ENV, "cpu")
    assert segment.get_providers() == ["CPUExecutionProvider"]
    # set_providers (tests, embedders) still wins over the device choice
    segment.set_providers(["CPUExecutionProvider"])
    assert segment.get_providers() == ["CPUExecutionProvider"]


# -- what a host with onnxruntime-gpu but no working CUDA reports ------------------------------


def _fake_ort(available, session_providers, package_dir):
    class Session:
        def __init__(self, *args, **kwargs):
            pass

        def get_providers(self):
            return list(session_providers)

    return SimpleNamespace(
        get_available_providers=lambda: list(available),
        InferenceSession=Session,
        SessionOptions=lambda: SimpleNamespace(log_severity_level=0),
        __file__=str(package_dir / "__init__.py"),
    )


def test_gpu_build_shadowed_by_the_cpu_build(monkeypatch, tmp_path):
    monkeypatch.setattr(providers, "_version", lambda dist: "1.31.1")
    fake = _fake_ort(["CPUExecutionProvider"], [], tmp_path)
    problem = providers.cuda_problem(fake)
    assert "onnxruntime-gpu 1.31.1 is installed but" in problem
    assert "Uninstall both, then install only onnxruntime-gpu" in problem


def test_session_falling_back_to_cpu_names_the_missing_device_and_library(monkeypatch, tmp_path):
    monkeypatch.setattr(providers, "_nvidia_devices", lambda: [])
    (tmp_path / "capi").mkdir()
    (tmp_path / "capi" / "libonnxruntime_providers_cuda.so").write_bytes(b"not an ELF file")
    fake = _fake_ort(["CUDAExecutionProvider", "CPUExecutionProvider"],
                     ["CPUExecutionProvider"], tmp_path)  # fmt: skip
    problem = providers.cuda_problem(fake)
    assert problem.startswith("CUDAExecutionProvider is not usable")
    if sys.platform.startswith("linux"):
        assert "no NVIDIA GPU is visible" in problem
    assert "the CUDA provider library does not load" in problem  # the real dlopen's complaint


def test_a_session_that_really_gets_cuda_is_accepted(monkeypatch, tmp_path):
    fake = _fake_ort(["CUDAExecutionProvider", "CPUExecutionProvider"],
                     ["CUDAExecutionProvider", "CPUExecutionProvider"], tmp_path)  # fmt: skip
    assert providers.cuda_problem(fake) is None


@pytest.mark.skipif(
    not os.environ.get("PHOTOPROC_TEST_GPU_PYTHON"),
    reason="set PHOTOPROC_TEST_GPU_PYTHON to a Python with onnxruntime-gpu to run",
)
def test_real_gpu_wheel_without_a_gpu():
    script = (
        "from photoproc.pipeline import providers as p\n"
        "try:\n    p.select('cuda')\nexcept p.DeviceUnavailableError as e:\n    print('E', e)\n"
        "print('A', p.select('auto').providers)\n"
    )
    result = subprocess.run(
        [os.environ["PHOTOPROC_TEST_GPU_PYTHON"], "-c", script],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "E --device cuda: CUDAExecutionProvider is not usable" in result.stdout, result.stderr
    assert "A ('CPUExecutionProvider',)" in result.stdout


# -- the CLI ---------------------------------------------------------------------------------


@pytest.mark.skipif(HAS_CUDA, reason="this onnxruntime has CUDA")
def test_cli_device_cuda_fails_at_start(tmp_path, capsys):
    code = main(["process", str(tmp_path), "--out", str(tmp_path / "out"), "--device", "cuda"])
    assert code == 2
    err = capsys.readouterr().err
    assert "--device cuda: onnxruntime-gpu is not installed" in err
    assert not (tmp_path / "out").exists()  # nothing ran


def test_cli_device_reaches_child_processes(monkeypatch):
    # The choice travels in the environment, which spawned children (the worker's pool,
    # Voilà kernels) inherit.
    monkeypatch.setenv(DEVICE_ENV, "auto")
    providers.use_device("cpu")
    assert os.environ[DEVICE_ENV] == "cpu"
    child = subprocess.run(
        [sys.executable, "-c",
         "from photoproc.pipeline import providers as p; print(p.select().providers)"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert child.stdout.strip() == "('CPUExecutionProvider',)"


def test_every_model_running_command_takes_device():
    from photoproc.cli import build_parser
    from photoproc.cli.device import DEVICE_COMMANDS

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    present = [name for name in DEVICE_COMMANDS if name in sub.choices]
    assert {"process", "serve", "app"} <= set(present)
    for name in present:
        option = next(a for a in sub.choices[name]._actions if a.dest == "device")
        assert option.choices == ("auto", "cpu", "cuda")


def test_models_list_shows_the_providers_in_use(monkeypatch, capsys):
    monkeypatch.setenv(DEVICE_ENV, "cpu")
    assert main(["models", "list"]) == 0
    assert "onnxruntime providers: CPUExecutionProvider  (PHOTOPROC_DEVICE=cpu)" in (
        capsys.readouterr().out
    )
