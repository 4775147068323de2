"""The kept build environment: pypa/build's isolation, made once a day instead of every build.

``python -m build`` makes a fresh virtualenv for the sdist and another for the wheel and
pip-installs the build requirements into each, seconds on every run. The same isolation from
the nox environment comes from one virtualenv per Python and ``[build-system] requires``, kept in
``~/.cache/brewblox-release/build-env`` (``BREWBLOX_RELEASE_CACHE`` moves it) and made afresh
after a day, like build isolation would pick up new releases of the build requirements. The
backend's hooks still run each in a process of their own, through pypa/build's
``ProjectBuilder`` (see docs/how-it-works.md).

This module knows nothing of the configuration or the version: `project` asks it for the
backend's metadata, `dist` for the builds.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
import venv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import BuildError
from .run import CommandError, environ, log, run

__all__ = ["DECIDING_FILES", "KeptEnv", "builder", "cache_dir", "files_key"]

#: The files whose contents decide the name, the version source and the build requirements.
DECIDING_FILES = ("pyproject.toml", "setup.py", "setup.cfg")

#: A kept build environment is made afresh after this long (seconds).
MAX_AGE = 24 * 3600


def cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """brewblox-release's cache: ``BREWBLOX_RELEASE_CACHE``, else ~/.cache/brewblox-release.

    A relative ``BREWBLOX_RELEASE_CACHE`` is taken from the directory the tool runs in."""
    env = environ() if env is None else env
    cache = env.get("BREWBLOX_RELEASE_CACHE") or str(
        Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "brewblox-release")
    return Path(cache).absolute()


def files_key(root: Path) -> str:
    """A hash of the files that decide the name, the version source and the build
    requirements: the same key means the same answers."""
    digest = hashlib.sha256()
    for name in DECIDING_FILES:
        path = root / name
        digest.update(name.encode() + b"\0")
        try:
            digest.update(hashlib.sha256(path.read_bytes()).digest())
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            digest.update(b"-")
    return digest.hexdigest()[:32]


@dataclass(frozen=True)
class KeptEnv:
    """Where the kept build environment of a Python and a ``[build-system] requires`` lives."""

    path: Path
    requires: tuple[str, ...] = ()  #: ``[build-system] requires``, sorted

    @classmethod
    def of(cls, root: Path) -> KeptEnv:
        """The environment of the project at ``root`` (made or not)."""
        from build import ProjectBuilder

        requires = sorted(ProjectBuilder(root).build_system_requires)
        key = hashlib.sha256(json.dumps([sys.version, sys.executable, requires]).encode())
        return cls(cache_dir() / "build-env" / key.hexdigest()[:16], tuple(requires))

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    @property
    def _ready(self) -> Path:
        return self.path / "brewblox-release-ready"

    @property
    def _projects(self) -> Path:
        return self.path / "brewblox-release-projects"

    def is_fresh(self) -> bool:
        """Made, and younger than `MAX_AGE`."""
        try:
            made = self._ready.stat().st_mtime
        except FileNotFoundError:
            return False
        return self.python.exists() and time.time() - made < MAX_AGE

    def make(self, pip: Sequence[str]) -> None:
        """Make it afresh with its requirements (pip's command line ``pip`` installs them)."""
        log(f"making the build environment {self.path} ({', '.join(self.requires)})")
        self._ready.unlink(missing_ok=True)
        venv.EnvBuilder(clear=True, symlinks=True, with_pip=False).create(self.path)
        run([*pip, *self.requires], echo=False)
        self._ready.touch()

    def satisfies(self, key: str) -> bool:
        """Whether the dynamic build requirements of a project whose `files_key` is ``key``
        were installed."""
        try:
            return key in self._projects.read_text().split()
        except FileNotFoundError:
            return False

    def mark_satisfied(self, key: str) -> None:
        with self._projects.open("a") as f:
            f.write(key + "\n")


def _runner(extra: Mapping[str, str]) -> Any:
    """pypa/build's runner: each hook in its own process, through the one subprocess path."""
    def runner(cmd: Sequence[str], cwd: str | None = None,
               extra_environ: Mapping[str, str] | None = None) -> None:
        run(list(cmd), cwd=cwd, env={**(extra_environ or {}), **extra}, echo=False)

    return runner


def builder(source: Path, *, env: Mapping[str, str] | None = None,
            requirements_of: Path | None = None) -> Any:
    """A ``build.ProjectBuilder`` for the project at ``source`` in its kept build environment,
    made when missing or older than a day, with the project's dynamic build requirements
    installed (once for each state of the deciding files of ``requirements_of``, default
    ``source``: a stamped copy asks for the requirements of the checkout it was made from).
    ``env`` is added to every hook's environment (the version override).

    Raises:
        BuildError: the environment cannot be made (pip's output is above).
        build.BuildBackendException: the backend failed to say its dynamic requirements.
    """
    import fcntl

    from build import BuildException, ProjectBuilder

    key_root = requirements_of or source
    try:
        kept = KeptEnv.of(key_root)
    except BuildException as e:
        raise BuildError(f"{source}: {e}") from e
    try:
        kept.path.parent.mkdir(parents=True, exist_ok=True)
        (kept.path.parent / f"{kept.path.name}.lock").touch()
    except OSError as e:
        raise BuildError(f"{kept.path.parent} cannot hold the build environment "
                         f"({e.strerror}): set BREWBLOX_RELEASE_CACHE to a directory you can "
                         "write") from None
    try:
        pip = [sys.executable, "-m", "pip", "--python", str(kept.python), "install",
               "--quiet", "--disable-pip-version-check"]
        made = ProjectBuilder(source, python_executable=str(kept.python),
                              runner=_runner(env or {}))
        with (kept.path.parent / f"{kept.path.name}.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not kept.is_fresh():
                kept.make(pip)
            key = files_key(key_root)
            if not kept.satisfies(key):
                dynamic = (made.get_requires_for_build("sdist")
                           | made.get_requires_for_build("wheel"))
                if dynamic:
                    run([*pip, *sorted(dynamic)], echo=False)
                kept.mark_satisfied(key)
    except CommandError as e:
        raise BuildError(f"making the build environment failed: pip exited with "
                         f"{e.result.returncode} (its output is above)") from e
    except BuildException as e:
        raise BuildError(f"{source}: {e}") from e
    return made
