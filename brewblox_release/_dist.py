"""The package: build the sdist and wheel, check them, copy them into the image contexts."""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import re
import shutil
import sys
import tarfile
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from packaging import utils
from packaging.version import Version

from . import _buildenv as buildenv, _stages as stages
from ._config import Config, Target
from ._errors import BuildError
from ._project import VersionSource, version_source
from ._run import CommandError, log, run


def dist_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.name.endswith((".whl", ".tar.gz")))


def own_files(directory: Path, name: str) -> list[Path]:
    """The sdists and wheels of distribution ``name`` in ``directory`` (a link under one of their
    names too): the only files that `build` and `copy` ever remove."""
    found = []
    for path in dist_files(directory):
        with contextlib.suppress(BuildError):
            if file_version(path)[0] == utils.canonicalize_name(name) and (
                    path.is_symlink() or path.is_file()):
                found.append(path)
    return found


def _refuse_others(directory: Path, where: str, name: str) -> None:
    """Stop where ``directory`` holds a wheel that is not distribution ``name``'s: the image
    would install it, and nothing of the tool's removes a file it did not make."""
    own = set(own_files(directory, name))
    if others := [p.name for p in dist_files(directory) if p.name.endswith(".whl")
                  and p not in own]:
        raise BuildError(f"{where} holds {', '.join(others)}, not {name}'s: the image would "
                         "install it; remove it")


def _remove(paths: Sequence[Path]) -> None:
    for path in paths:
        path.unlink()


def describe_build(config: Config, version: str) -> str:
    """What `build` would do, for ``nox -s dist -- --dry-run``."""
    stale = ", ".join(p.name for p in own_files(config.root / config.dist_dir, config.name))
    return (f"dist: would build the sdist and wheel of {config.name} {version} into "
            f"{config.dist_dir}/ and run twine check ({config.check})"
            + (f"\ndist: would remove {stale} from {config.dist_dir}/" if stale else ""))


def describe_copy(config: Config) -> str:
    """What `copy` would do, for ``nox -s distcopy -- --dry-run``: the same decisions."""
    try:
        copies = _copies(config)
    except BuildError:
        return f"distcopy: {config.dist_dir}/ holds no sdist or wheel of {config.name}: " \
               "`nox -s dist` first"
    lines = []
    for target, files in copies:
        if files is None:
            lines.append(f"distcopy: {target.name}: its context {target.context}/ holds "
                         f"{config.dist_dir}/, which its Dockerfile builds from: nothing to copy")
            continue
        stale = ", ".join(p.name for p in own_files(config.root / target.context / "pkg",
                                                     config.name))
        lines.append(f"distcopy: would copy {', '.join(p.name for p in files)} to "
                     f"{target.context}/pkg/" + (f", removing {stale}" if stale else ""))
    return "\n".join(lines)


def _copies(config: Config) -> list[tuple[Target, list[Path] | None]]:
    """Each target and the files `copy` puts in its ``pkg/``; None where its context holds the
    dist dir."""
    files = own_files(config.root / config.dist_dir, config.name)
    if not files:
        raise BuildError(f"{config.root / config.dist_dir} holds no sdist or wheel of "
                         f"{config.name}: run `nox -s dist` first")
    return [(target, None if reads_dist_dir(config, target)
             else for_context(files, config.root / target.context))
            for target in config.targets]


def file_version(path: Path) -> tuple[str, Version]:
    """(canonical name, version) of a wheel or sdist, from its file name."""
    try:
        if path.name.endswith(".whl"):
            return utils.parse_wheel_filename(path.name)[:2]
        return utils.parse_sdist_filename(path.name)
    except (utils.InvalidWheelFilename, utils.InvalidSdistFilename) as e:
        raise BuildError(f"{path}: not a wheel or sdist name ({e})") from e


def build(config: Config, version: str, *, source_date_epoch: int | None = None,
          twine: bool = True) -> list[Path]:
    """Empty the dist dir, build the sdist and wheel of exactly ``version`` (docs/versions.md),
    and `twine check` them (with ``twine=False`` not: the release runs `check` while the images
    build). ``source_date_epoch`` (the commit time) makes the files reproducible."""
    out = config.root / config.dist_dir
    _remove(own_files(out, config.name))
    out.mkdir(parents=True, exist_ok=True)
    source = version_source(config.root, stamp=config.stamp_version)
    env = source.build_env(config.name, version)
    if source_date_epoch is not None:
        env["SOURCE_DATE_EPOCH"] = str(source_date_epoch)
    with tempfile.TemporaryDirectory(prefix="brewblox-release-") as tmp, \
            _as_found(config.root):
        root = (stamped_copy(config.root, source, version, Path(tmp) / "stamped")
                if source.stamps else config.root)
        _build(root, out, env, requirements_of=config.root, mtime=source_date_epoch)
    built = {path: file_version(path)[1] for path in own_files(out, config.name)}
    for path, got in built.items():
        if got != Version(version):
            _remove(list(built))
            raise BuildError(f"{path.name} has version {got}, not {version}: the build did not "
                             f"take the version from {source.declared_in} (see "
                             "docs/versions.md); nothing was published")
    if not built:
        raise BuildError(f"the build wrote no sdist or wheel of {config.name} {version} to {out}")
    if twine:
        check(config, list(built))
    return list(built)


@contextlib.contextmanager
def _as_found(root: Path) -> Iterator[None]:
    """Leave the tracked files of ``root`` as the build found them: a backend that writes a
    version file into the checkout (setuptools_scm's ``version_file``, hatch-vcs's) would leave
    the tree changed, and the next version computed from it another (docs/versions.md)."""
    def changed() -> set[str]:
        found = run(["git", "diff", "--name-only", "--relative", "-z", "HEAD", "--"], cwd=root,
                    echo=False, stream=False, check=False)
        return set(found.output.split("\0")) - {""} if found.returncode == 0 else set()

    before = changed()
    try:
        yield
    finally:
        if wrote := sorted(changed() - before):  # what the build changed, and only that
            run(["git", "restore", "--source=HEAD", "--worktree", "--", *wrote], cwd=root,
                echo=False, stream=False, check=False)
            log(f"{', '.join(wrote)}: written by the build, put back as committed (a version "
                "file is best left untracked)")


def stamped_copy(root: Path, source: VersionSource, version: str, into: Path) -> Path:
    """A copy of the files git tracks in ``root`` whose static version (``source.static``) is
    ``version`` (docs/versions.md). Nothing in the checkout is written."""
    import tomlkit

    listed = run(["git", "ls-files", "-z", "--cached", "--", "."], cwd=root, echo=False,
                 stream=False).output
    for name in (n for n in listed.split("\0") if n):
        path = root / name
        if path.is_file() or path.is_symlink():  # a deleted file is not copied
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, into / name, follow_symlinks=False)
    pyproject = into / "pyproject.toml"
    document = tomlkit.parse(pyproject.read_text())
    table: Any = document
    for key in (source.static or "project").split("."):
        table = table[key]
    table["version"] = version
    pyproject.write_text(tomlkit.dumps(document))
    # The copy is a repository of its files, so that a file finder that asks git (setuptools-scm
    # finds package data so) sees what it sees in the checkout: made with none of the user's git
    # configuration (hooks, signing, line-end conversion, LFS filters).
    env = {"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
           **{f"GIT_{who}_{what}": value for who in ("AUTHOR", "COMMITTER")
              for what, value in (("NAME", "brewblox-release"), ("EMAIL", "release@localhost"))}}
    try:
        for args in (["init", "-q", "--template="], ["add", "-A", "-f"],
                     ["commit", "-q", "--no-verify", "-m", "stamped copy"]):
            run(["git", *args], cwd=into, env=env, echo=False, stream=False)
    except CommandError as e:
        raise BuildError(f"the stamped copy of the checkout could not be made a git repository "
                         f"(for the build's file finder): {e}") from None
    log(f"stamped {version} into [{source.static}] version of a copy of the checkout")
    return into


def _build(source: Path, out: Path, env: Mapping[str, str], *, requirements_of: Path,
           mtime: int | None) -> None:
    """Build the sdist, then the wheel from the unpacked sdist, as ``python -m build`` does;
    with ``mtime``, the sdist is normalised first, so that the wheel's files are the same too."""
    from build import BuildBackendException

    log(f"$ build --sdist --wheel --outdir {out} {source}")
    hook = "build_sdist"
    try:
        sdist = Path(buildenv.builder(source, env=env, requirements_of=requirements_of)
                     .build("sdist", out))
        if mtime is not None:
            normalize_sdist(sdist, mtime)
        hook = "build_wheel"
        with tempfile.TemporaryDirectory() as tmp, tarfile.open(sdist) as archive:
            if hasattr(tarfile, "data_filter"):  # Python 3.10.12+, 3.11.4+
                archive.extractall(tmp, filter="data")
            else:  # an older Python; the sdist is the one just built here
                archive.extractall(tmp)  # noqa: S202
            unpacked = next(Path(tmp).iterdir())
            buildenv.builder(unpacked, env=env, requirements_of=requirements_of).build("wheel", out)
    except BuildBackendException as e:
        code = e.exception.result.returncode if isinstance(e.exception, CommandError) else "?"
        raise BuildError(f"building the package failed: the backend's {hook} exited with "
                         f"{code} (its output is above); nothing was published") from None


def check(config: Config, files: Sequence[Path]) -> None:
    """`twine check` the built files (``check = "strict"``: with ``--strict``)."""
    strict = ["--strict"] if config.check == "strict" else []
    # Shown whatever --verbose says: a warning matters.
    result = run([sys.executable, "-m", "twine", "--no-color", "check", *strict, *files],
                 cwd=config.root, env={"NO_COLOR": "1"}, check=False, stream=False)
    for line in result.lines:
        log(f"  {line}")
    if result.returncode != 0:
        _remove([path for path in files if path.is_file()])  # nothing may copy or upload them
        fix = ("" if strict else
               ": an index would refuse these files; fix what twine names (a README that does "
               "not render in its content type, metadata)")
        raise BuildError(f"building the package failed: twine check{' --strict' if strict else ''}"
                         f" exited with {result.returncode} (its output is above){fix}; "
                         "nothing was published")


def normalize_sdist(path: Path, mtime: int) -> None:
    """Rewrite an sdist so that its bytes depend on the commit only: setuptools stamps members
    with the times and modes of the checkout's files (a reused workspace keeps old times, a
    umask changes modes) and gzip adds its own time, so a re-run elsewhere would build another
    file. Every member gets the commit's time and git's modes (755 or 644)."""
    buffer = io.BytesIO()
    with tarfile.open(path, "r:gz") as src, \
            gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as dst:
        for member in sorted(src.getmembers(), key=lambda m: m.name):
            data = src.extractfile(member) if member.isfile() else None
            member.mtime = mtime
            member.mode = 0o755 if member.isdir() or member.mode & 0o111 else 0o644
            member.uid = member.gid = 0
            member.uname = member.gname = ""
            member.pax_headers = {}
            dst.addfile(member, data)
    path.write_bytes(buffer.getvalue())


def copy(config: Config) -> list[Path]:
    """Copy the dist dir's sdist and wheel into each target's ``pkg/``, replacing the old ones."""
    written = []
    for target, copied in _copies(config):
        if copied is None:
            log(f"{target.name}: its context {target.context}/ holds {config.dist_dir}/, which "
                "its Dockerfile builds from: nothing to copy")
            continue
        pkg = config.root / target.context / "pkg"
        if pkg.is_symlink() or (pkg.exists() and not pkg.is_dir()):
            raise BuildError(f"{target.context}/pkg is not a directory of the service (a "
                             "symlink or a file): distcopy writes there; remove it")
        _remove(own_files(pkg, config.name))
        _refuse_others(pkg, f"{target.context}/pkg/", config.name)
        pkg.mkdir(parents=True, exist_ok=True)
        for path in copied:
            shutil.copy2(path, pkg / path.name)
            written.append(pkg / path.name)
        if stages.uses_template(config.root / target.context):
            stages.ship(pkg)  # the template's build-stage code, pkg/requirements.txt
        log(f"copied {', '.join(p.name for p in copied)} to {pkg.relative_to(config.root)}/")
    return written


#: A Dockerfile of the seed's kind installs whatever ``pkg/`` holds: ``pip3 install /pkg/*``.
_INSTALLS_ALL_OF_PKG = re.compile(r"pip3?\s+install\b[^\n]*pkg/\*(?![\w.*])")


def for_context(files: Sequence[Path], context: Path) -> list[Path]:
    """The files to copy into ``context``'s ``pkg/``: the sdist and the wheel, but the wheel
    alone for a Dockerfile of the seed's kind (docs/adopting.md), where pip would build the
    sdist in the image."""
    with contextlib.suppress(OSError):
        if _INSTALLS_ALL_OF_PKG.search((context / "Dockerfile").read_text(errors="replace")):
            return [path for path in files if path.name.endswith(".whl")]
    return list(files)


def reads_dist_dir(config: Config, target: Target) -> bool:
    """Whether the target's context holds the dist dir (a root ``Dockerfile`` that builds from
    ``dist/``): `copy` has nothing to copy there."""
    dist = (config.root / config.dist_dir).resolve()
    return (config.root / target.context).resolve() in dist.parents


def check_context(config: Config, target: Target, version: str) -> Path:
    """The wheel in the target's ``pkg/`` (or the dist dir its context holds), after checking
    that it is the only one and this release's: an image must never install a stale package."""
    held_in = config.dist_dir if reads_dist_dir(config, target) else f"{target.context}/pkg"
    pkg, where = config.root / held_in, f"{held_in}/"
    wheels = [p for p in dist_files(pkg) if p.name.endswith(".whl")]
    fix = "run `nox -s dist distcopy` (or the release session, which does both)"
    if not (config.root / target.context / "Dockerfile").is_file():
        raise BuildError(f"{target.context}/Dockerfile not found: target {target.name!r} needs a "
                         "build context with a Dockerfile (templates ship in brewblox_release/"
                         "templates)")
    _refuse_others(pkg, where, config.name)
    if len(wheels) != 1:
        raise BuildError(f"{where} holds {len(wheels)} wheels, not one: {fix}")
    name, got = file_version(wheels[0])
    if name != utils.canonicalize_name(config.name) or got != Version(version):
        raise BuildError(f"{where}{wheels[0].name} is not {config.name} {version}, the version "
                         f"this run releases: the image would install a stale package; {fix}")
    return wheels[0]
