"""The package: build the sdist and wheel, check them, copy them into the image contexts."""

from __future__ import annotations

import gzip
import io
import shutil
import sys
import tarfile
from pathlib import Path

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

from .config import Config, Target
from .errors import BuildError
from .run import CommandError, log, run
from .version import pretend_env

__all__ = ["build", "check_context", "copy", "dist_files"]


def dist_files(directory: Path) -> list[Path]:
    """The sdists and wheels in ``directory``, sorted by name."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.name.endswith((".whl", ".tar.gz")))


def file_version(path: Path) -> tuple[str, Version]:
    """(canonical name, version) of a wheel or sdist, from its file name."""
    try:
        if path.name.endswith(".whl"):
            name, version, _, _ = parse_wheel_filename(path.name)
        else:
            name, version = parse_sdist_filename(path.name)
    except (InvalidWheelFilename, InvalidSdistFilename) as e:
        raise BuildError(f"{path}: not a wheel or sdist name ({e})") from e
    return name, version


def build(config: Config, version: str, *, source_date_epoch: int | None = None) -> list[Path]:
    """Empty the dist dir, build the sdist and wheel of ``version``, and `twine check` them.

    The build uses exactly ``version`` (through setuptools_scm's pretend variable) and, when
    given, ``SOURCE_DATE_EPOCH`` (the commit time), so that building the same commit twice
    gives the same wheel.
    """
    out = config.root / config.dist_dir
    if out.exists():
        shutil.rmtree(out)
    env = pretend_env(config.name, version)
    if source_date_epoch is not None:
        env["SOURCE_DATE_EPOCH"] = str(source_date_epoch)
    try:
        run([sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", out, config.root],
            cwd=config.root, env=env)
        files = dist_files(out)
        if not files:
            raise BuildError(f"the build wrote no sdist or wheel to {out}")
        if source_date_epoch is not None:
            for path in files:
                if path.name.endswith(".tar.gz"):
                    normalize_sdist(path, source_date_epoch)
        run([sys.executable, "-m", "twine", "check", "--strict", *files], cwd=config.root,
            env={"NO_COLOR": "1"})
    except CommandError as e:
        step = "twine check" if "twine" in e.result.argv else "python -m build"
        raise BuildError(f"building the package failed: {step} exited with "
                         f"{e.result.returncode} (its output is above); nothing was published"
                         ) from e
    for path in files:
        _, got = file_version(path)
        if got != Version(version):
            raise BuildError(f"{path.name} has version {got}, not {version}: does the build "
                             "backend take its version from setuptools_scm?")
    return files


def normalize_sdist(path: Path, mtime: int) -> None:
    """Rewrite an sdist so that its bytes depend on its contents only.

    setuptools stamps each member with the file's mtime (the time of the clone) and gzip adds
    the time of writing; a re-run of a failed release then builds a file that differs from the
    one already on the index. Sorted members, fixed owners and times make the sdist reproducible,
    like the wheel already is under ``SOURCE_DATE_EPOCH``.
    """
    with tarfile.open(path, "r:gz") as src:
        members = sorted(src.getmembers(), key=lambda m: m.name)
        payload = {m.name: src.extractfile(m).read() if m.isfile() else None  # type: ignore[union-attr]
                   for m in members}
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as dst:
        for member in members:
            member.mtime = min(int(member.mtime), mtime)
            member.uid = member.gid = 0
            member.uname = member.gname = ""
            member.pax_headers = {}
            data = payload[member.name]
            dst.addfile(member, io.BytesIO(data) if data is not None else None)
    path.write_bytes(buffer.getvalue())


def copy(config: Config, targets: tuple[Target, ...] | None = None) -> list[Path]:
    """Copy the dist dir's files into each target context's ``pkg/``, removing what was there."""
    files = dist_files(config.root / config.dist_dir)
    if not files:
        raise BuildError(f"{config.root / config.dist_dir} holds no sdist or wheel: "
                         "run `nox -s dist` first")
    written = []
    for target in targets or config.targets:
        pkg = config.root / target.context / "pkg"
        if pkg.exists():
            shutil.rmtree(pkg)
        pkg.mkdir(parents=True)
        for path in files:
            shutil.copy2(path, pkg / path.name)
            written.append(pkg / path.name)
        log(f"copied {', '.join(p.name for p in files)} to {pkg.relative_to(config.root)}/")
    return written


def check_context(config: Config, target: Target, version: str) -> Path:
    """The wheel in the target's ``pkg/``, after checking that it is this release's.

    An image must never install a stale package: ``pkg/`` must hold exactly one wheel of this
    distribution, with the version the plan publishes.
    """
    pkg = config.root / target.context / "pkg"
    where = f"{target.context}/pkg/"
    wheels = [p for p in dist_files(pkg) if p.name.endswith(".whl")]
    fix = "run `nox -s dist distcopy` (or the release session, which does both)"
    if not (config.root / target.context / "Dockerfile").is_file():
        raise BuildError(f"{target.context}/Dockerfile not found: target {target.name!r} needs a "
                         "build context with a Dockerfile (templates ship in brewblox_release/"
                         "templates)")
    if len(wheels) != 1:
        raise BuildError(f"{where} holds {len(wheels)} wheels, not one: {fix}")
    name, got = file_version(wheels[0])
    if name != canonicalize_name(config.name) or got != Version(version):
        raise BuildError(f"{where}{wheels[0].name} is not {config.name} {version}, the version "
                         f"this run releases: the image would install a stale package; {fix}")
    return wheels[0]
