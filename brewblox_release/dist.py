"""The package: build the sdist and wheel, check them, copy them into the image contexts."""

from __future__ import annotations

import gzip
import io
import json
import re
import shutil
import sys
import tarfile
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

from . import imagebuild
from .config import Config, Target
from .errors import BuildError
from .hookworker import FALL_BACK
from .run import CommandError, Started, child_env, log, run, start
from .version import pretend_env

__all__ = ["HookProcesses", "build", "check", "check_context", "copy", "dist_files"]


def dist_files(directory: Path) -> list[Path]:
    """The sdists and wheels in ``directory``, sorted by name."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.name.endswith((".whl", ".tar.gz")))


def own_files(directory: Path, name: str) -> list[Path]:
    """The sdists and wheels of distribution ``name`` in ``directory``: the only files that
    `build` and `copy` ever remove (a directory a user named is never removed)."""
    own = canonicalize_name(name)
    found = []
    for path in dist_files(directory):
        try:
            # A link under one of its names is removed too (the link, never what it points
            # at): the next write there would go through it.
            if file_version(path)[0] == own and (path.is_symlink() or path.is_file()):
                found.append(path)
        except BuildError:
            continue
    return found


def _remove(paths: Sequence[Path]) -> None:
    for path in paths:
        path.unlink()


def describe_build(config: Config, version: str) -> str:
    """What `build` would do, for ``nox -s dist -- --dry-run``."""
    out = config.root / config.dist_dir
    stale = [p.name for p in own_files(out, config.name)]
    lines = [f"dist: would build the sdist and wheel of {config.name} {version} into "
             f"{config.dist_dir}/ and run twine check ({config.check})"]
    if stale:
        lines.append(f"dist: would remove {', '.join(stale)} from {config.dist_dir}/")
    return "\n".join(lines)


def describe_copy(config: Config) -> str:
    """What `copy` would do, for ``nox -s distcopy -- --dry-run``."""
    files = own_files(config.root / config.dist_dir, config.name)
    if not files:
        return f"distcopy: {config.dist_dir}/ holds no sdist or wheel of {config.name}: " \
               "`nox -s dist` first"
    lines = []
    for target in config.targets:
        pkg = config.root / target.context / "pkg"
        stale = [p.name for p in own_files(pkg, config.name)]
        lines.append(f"distcopy: would copy {', '.join(p.name for p in files)} to "
                     f"{target.context}/pkg/" + (f", removing {', '.join(stale)}" if stale
                                                 else ""))
    return "\n".join(lines)


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


def build(config: Config, version: str, *, source_date_epoch: int | None = None,
          twine: bool = True, hooks: HookProcesses | None = None) -> list[Path]:
    """Empty the dist dir, build the sdist and wheel of ``version``, and `twine check` them
    (with ``twine=False`` not: the release runs `check` while the images build). The backend's
    hooks run in the processes of ``hooks`` where given (`HookProcesses`).

    The build uses exactly ``version`` (through setuptools_scm's pretend variable) and, when
    given, ``SOURCE_DATE_EPOCH`` (the commit time), so that building the same commit twice
    gives the same wheel.
    """
    out = config.root / config.dist_dir
    _remove(own_files(out, config.name))
    out.mkdir(parents=True, exist_ok=True)
    env = pretend_env(config.name, version)
    if source_date_epoch is not None:
        env["SOURCE_DATE_EPOCH"] = str(source_date_epoch)
    try:
        if not _build_kept(config, out, env, hooks):
            run([sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", out,
                 config.root], cwd=config.root, env=env)
        files = [p for p in own_files(out, config.name) if file_version(p)[1] == Version(version)]
        if not files:
            raise BuildError(f"the build wrote no sdist or wheel of {config.name} {version} to "
                             f"{out}")
        if source_date_epoch is not None:
            for path in files:
                if path.name.endswith(".tar.gz"):
                    normalize_sdist(path, source_date_epoch)
        if twine:
            check(config, files)
    except CommandError as e:
        raise BuildError(f"building the package failed: python -m build exited with "
                         f"{e.result.returncode} (its output is above); nothing was published"
                         ) from e
    for path in files:
        _, got = file_version(path)
        if got != Version(version):
            raise BuildError(f"{path.name} has version {got}, not {version}: does the build "
                             "backend take its version from setuptools_scm?")
    return files


def check(config: Config, files: Sequence[Path]) -> None:
    """`twine check` the built files (`build` does it unless told not to).

    ``check = "errors"`` (the default) fails on what an index would refuse (a description that
    does not render, malformed metadata) and shows the warnings (no ``long_description``, no
    content type), which PyPI accepts; ``check = "strict"`` fails on the warnings too.
    """
    strict = ["--strict"] if config.check == "strict" else []
    try:
        run([sys.executable, "-m", "twine", "--no-color", "check", *strict, *files],
            cwd=config.root, env={"NO_COLOR": "1"})
    except CommandError as e:
        fix = ("" if strict else
               ": an index would refuse these files; fix what twine names (a README that does "
               "not render in its content type, metadata)")
        raise BuildError(f"building the package failed: twine check{' --strict' if strict else ''}"
                         f" exited with {e.result.returncode} (its output is above){fix}; "
                         "nothing was published") from e


#: A kept build environment is made afresh after this long (seconds), like build isolation
#: would pick up new releases of the build requirements.
BUILD_ENV_MAX_AGE = 24 * 3600


def _build_env_dir() -> Path:
    from .project import cache_dir

    return cache_dir() / "build-env"


@dataclass(frozen=True)
class KeptEnv:
    """Where the kept build environment of a Python and a ``[build-system] requires`` lives."""

    path: Path
    requires: tuple[str, ...] = ()  #: ``[build-system] requires``, sorted

    @classmethod
    def of(cls, root: Path) -> KeptEnv:
        """The environment of the project at ``root`` (made or not)."""
        import hashlib

        from build import ProjectBuilder

        requires = sorted(ProjectBuilder(root).build_system_requires)
        key = hashlib.sha256(json.dumps([sys.version, sys.executable, requires]).encode())
        return cls(_build_env_dir() / key.hexdigest()[:16], tuple(requires))

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    @property
    def _ready(self) -> Path:
        return self.path / "brewblox-release-ready"

    @property
    def _projects(self) -> Path:
        return self.path / "brewblox-release-projects"

    def made_at(self) -> float | None:
        """When it was made, or None while it is not ready."""
        try:
            return self._ready.stat().st_mtime
        except FileNotFoundError:
            return None

    def make(self, pip: Sequence[str]) -> None:
        """Make it afresh with its requirements (pip's command line ``pip`` installs them)."""
        import venv

        log(f"making the build environment {self.path} ({', '.join(self.requires)})")
        self._ready.unlink(missing_ok=True)
        venv.EnvBuilder(clear=True, symlinks=True, with_pip=False).create(self.path)
        run([*pip, *self.requires], echo=False)
        self._ready.touch()

    def mark_satisfied(self, root: Path) -> None:
        """Record that the project's dynamic build requirements are installed."""
        from .project import files_key

        with self._projects.open("a") as f:
            f.write(files_key(root) + "\n")

    def is_fresh(self) -> bool:
        """Made, and younger than `BUILD_ENV_MAX_AGE`."""
        import time

        made = self.made_at()
        return made is not None and self.python.exists() and \
            time.time() - made < BUILD_ENV_MAX_AGE

    def satisfies(self, root: Path) -> bool:
        """Whether the project's dynamic build requirements were installed (for the present
        state of its deciding files)."""
        from .project import files_key

        try:
            return files_key(root) in self._projects.read_text().split()
        except FileNotFoundError:
            return False


def kept_build_env(root: Path, runner: Callable[..., None]) -> Path:
    """The Python of the kept build environment for the project at ``root``, made when missing
    or older than a day, with the project's dynamic build requirements installed.

    One environment per Python and ``[build-system] requires`` (in
    ~/.cache/brewblox-release/build-env; ``BREWBLOX_RELEASE_CACHE`` moves it). Two projects
    with the same static requirements (every setup.py without ``[build-system]``) can differ in
    what the backend asks for besides (a setup.py's ``setup_requires``): those are installed
    for each state of the project's deciding files (`project.files_key`), once.

    Raises:
        BuildException, CommandError, OSError: there can be none here (no pip, no fcntl, a
            broken environment): the caller falls back to pypa/build's fresh one.
    """
    from build import ProjectBuilder

    try:
        import fcntl
    except ImportError as e:  # not a POSIX system: no lock, no kept environment
        raise OSError("no fcntl to lock a kept build environment") from e

    kept = KeptEnv.of(root)
    path, python = kept.path, kept.python
    path.parent.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install",
           "--quiet", "--disable-pip-version-check"]
    with (path.parent / f"{path.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not kept.is_fresh():
            kept.make(pip)
        if not kept.satisfies(root):
            builder = ProjectBuilder(root, python_executable=str(python), runner=runner)
            dynamic = (builder.get_requires_for_build("sdist")
                       | builder.get_requires_for_build("wheel"))
            if dynamic:
                run([*pip, *sorted(dynamic)], echo=False)
            kept.mark_satisfied(root)
    return python


class HookProcesses:
    """The build hooks' processes, each started one hook ahead (`hookworker`).

    pypa/build runs each hook (``build_sdist``, then ``build_wheel`` from the unpacked sdist) in
    a new process of the build environment's Python, which first imports the backend: a tenth
    of a second for setuptools, twice per `build`, on the critical path of every release. Here
    the first process starts while the version and the plan are made, and each one taken starts
    the next, so that every hook finds its backend imported. A process gets the hook's command
    line, directory and whole environment only when it is taken, and runs pyproject_hooks' own
    script for it, as pypa/build's process would have.

    Used only where that changes nothing: the kept build environment is ready and has the
    project's dynamic requirements (nothing will be installed into it, and a process is not
    taken once it was made again), the backend is not in the project's tree (``backend-path``,
    which pyproject_hooks imports from that tree), ``PYTHONPATH`` holds no relative entry (the
    interpreter resolves it against the directory it starts in), the hook's environment sets
    nothing the interpreter reads when it starts (``PYTHON*``, the locale), and the backend
    imports without a warning (which pyproject_hooks records inside the hook); elsewhere the
    hook runs in a process of its own, as pypa/build runs it.
    """

    def __init__(self, kept: KeptEnv, backend: str, hooks: int) -> None:
        self.kept, self.backend, self.left = kept, backend, hooks
        self.made_at = kept.made_at()
        self.started_env = child_env()
        self.ahead: Started | None = None
        self._spawn()

    @classmethod
    def start(cls, root: Path, hooks: int = 2) -> HookProcesses | None:
        """The processes for ``hooks`` hooks of the project at ``root``, or None where they
        would not be the same as pypa/build's (see the class)."""
        from build import BuildException

        from .project import build_backend, read_pyproject

        data = read_pyproject(root)
        system = data.get("build-system")
        if isinstance(system, Mapping) and "backend-path" in system:
            return None
        pythonpath = child_env().get("PYTHONPATH", "")
        if any(entry and not Path(entry).is_absolute() for entry in pythonpath.split(":")):
            return None
        try:
            kept = KeptEnv.of(root)
        except (BuildException, OSError):
            return None
        if not (kept.is_fresh() and kept.satisfies(root)):
            return None
        return cls(kept, build_backend(data), hooks)

    def _spawn(self) -> None:
        if self.left > 0:
            self.left -= 1
            script = Path(__file__).with_name("hookworker.py")
            try:
                self.ahead = start([self.kept.python, script, self.backend], echo=False)
            except (CommandError, OSError):  # the hooks run in processes of their own
                self.ahead, self.left = None, 0

    def take(self, cmd: Sequence[str], cwd: str | None, env: Mapping[str, str]) -> bool:
        """Run the hook ``cmd`` in the process started for it, where it can (see the class);
        False where the caller must run it itself."""
        worker, self.ahead = self.ahead, None
        if worker is None:
            return False
        hook_env = child_env(env)
        if cmd[0] != str(self.kept.python) or self.kept.made_at() != self.made_at or \
                not worker.running() or _starts_otherwise(self.started_env, hook_env):
            worker.abandon()
            return False
        self._spawn()  # the next hook's, while this one runs
        request = {"argv": list(cmd[1:]), "cwd": cwd or str(Path.cwd()), "env": hook_env}
        result = worker.finish(json.dumps(request) + "\n", check=False)
        if result.returncode == FALL_BACK:  # it ran nothing, and printed nothing
            return False
        if result.returncode != 0:  # in the hook's own words, as its own process would fail
            raise CommandError(replace(result, argv=tuple(cmd)))
        return True

    def close(self) -> None:
        """End the process not taken (it has only imported the backend)."""
        worker, self.ahead, self.left = self.ahead, None, 0
        if worker is not None:
            worker.abandon()


def _starts_otherwise(started: Mapping[str, str], hook: Mapping[str, str]) -> bool:
    """Whether an interpreter started with ``hook`` would differ from one started with
    ``started``: a variable it reads when it starts (``PYTHON*``, the locale) differs."""
    def read_at_start(name: str) -> bool:
        return name.startswith(("PYTHON", "LC_")) or name in {"LANG", "LANGUAGE"}

    names = {name for name in {*started, *hook} if read_at_start(name)}
    return any(started.get(name) != hook.get(name) for name in names)


def _build_kept(config: Config, out: Path, env: Mapping[str, str],
                hooks: HookProcesses | None = None) -> bool:
    """Build the sdist and the wheel in a kept build environment; False when there is none.

    ``python -m build`` makes a fresh virtualenv for each of the two and pip-installs the build
    requirements into it, about 4 s each, on every run. This builds in `kept_build_env` and
    calls the backend's hooks in it, each in a subprocess, as ``build`` does (in the processes
    of ``hooks`` where given): the same isolation from the nox environment, in a second.
    Anything unusual (no pip, a broken environment) falls back to ``python -m build``.
    """
    from build import BuildBackendException, BuildException, ProjectBuilder

    def runner(cmd: Sequence[str], cwd: str | None = None,
               extra_environ: Mapping[str, str] | None = None) -> None:
        hook_env = {**(extra_environ or {}), **env}
        if hooks is None or not hooks.take(cmd, cwd, hook_env):
            run(list(cmd), cwd=cwd, env=hook_env, echo=False)

    try:
        python = kept_build_env(config.root, runner)
        builder = ProjectBuilder(config.root, python_executable=str(python), runner=runner)
        path = python.parent.parent
        log(f"$ build --sdist --wheel --outdir {out} (build environment {path})")
        # As `python -m build` does: the wheel is built from the unpacked sdist, so a file the
        # sdist leaves out is missing from the wheel too, and the build says so.
        sdist = Path(builder.build("sdist", out))
        with tempfile.TemporaryDirectory() as tmp:
            with tarfile.open(sdist) as archive:
                if hasattr(tarfile, "data_filter"):  # Python 3.10.12+, 3.11.4+
                    archive.extractall(tmp, filter="data")
                else:  # an older Python; the sdist is the one just built here
                    archive.extractall(tmp)  # noqa: S202
            source = next(Path(tmp).iterdir())
            ProjectBuilder(source, python_executable=str(python), runner=runner).build(
                "wheel", out)
    except BuildBackendException as e:
        if isinstance(e.exception, CommandError):
            raise e.exception from None
        raise BuildError(f"building the package failed: {e}; nothing was published") from e
    except (BuildException, CommandError, OSError) as e:
        why = (str(e).splitlines() or [type(e).__name__])[0]
        log(f"no kept build environment ({why}): python -m build makes one")
        return False
    return True


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
    """Copy the dist dir's sdist and wheel into each target context's ``pkg/``, removing the
    distribution's files that were there (and nothing else)."""
    files = own_files(config.root / config.dist_dir, config.name)
    if not files:
        raise BuildError(f"{config.root / config.dist_dir} holds no sdist or wheel of "
                         f"{config.name}: run `nox -s dist` first")
    written = []
    for target in targets or config.targets:
        pkg = config.root / target.context / "pkg"
        if pkg.is_symlink() or (pkg.exists() and not pkg.is_dir()):
            raise BuildError(f"{target.context}/pkg is not a directory of the service (a "
                             "symlink or a file): distcopy writes there; remove it")
        _remove(own_files(pkg, config.name))
        pkg.mkdir(parents=True, exist_ok=True)
        copied = for_context(files, config.root / target.context)
        for path in copied:
            shutil.copy2(path, pkg / path.name)
            written.append(pkg / path.name)
        if imagebuild.uses_template(config.root / target.context):
            imagebuild.ship(pkg)  # the template's build-stage code, pkg/requirements.txt
        log(f"copied {', '.join(p.name for p in copied)} to {pkg.relative_to(config.root)}/")
    return written


#: A Dockerfile of the seed's kind installs whatever ``pkg/`` holds: ``pip3 install /pkg/*``.
_INSTALLS_ALL_OF_PKG = re.compile(r"pip3?\s+install\b[^\n]*pkg/\*(?![\w.*])")


def for_context(files: Sequence[Path], context: Path) -> list[Path]:
    """The files to copy into ``context``'s ``pkg/``: the sdist and the wheel, but the wheel
    alone for a Dockerfile of the seed's kind (``pip3 install /pkg/* || true && pip3 install
    NAME``). Given both, pip builds the sdist inside the image, which needs the build
    requirements from an index (and fails the seed's ``|| true`` over to the index's copy of
    the package, or to none); given the wheel, it installs exactly the package just built."""
    try:
        dockerfile = (context / "Dockerfile").read_text(errors="replace")
    except OSError:
        return list(files)
    if not _INSTALLS_ALL_OF_PKG.search(dockerfile):
        return list(files)
    return [path for path in files if path.name.endswith(".whl")]


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
