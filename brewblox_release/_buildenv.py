"""The kept build environment: pypa/build's isolation, made once a day instead of every build.

One virtualenv per Python and ``[build-system] requires`` in the cache, made afresh after a day
as build isolation would pick up new releases of the requirements, instead of ``python -m
build``'s two fresh ones with seconds of pip each (docs/how-it-works.md, docs/image.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sys
import time
import venv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ._errors import BuildError
from ._run import CommandError, environ, log, run

#: The files whose contents decide the name, the version source and the build requirements.
DECIDING_FILES = ("pyproject.toml", "setup.py", "setup.cfg")

#: A kept build environment is made afresh after this long (seconds).
MAX_AGE = 24 * 3600


def cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """brewblox-release's cache: ``BREWBLOX_RELEASE_CACHE`` (relative to the working directory),
    else ~/.cache/brewblox-release."""
    env = environ() if env is None else env
    cache = env.get("BREWBLOX_RELEASE_CACHE") or str(
        Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "brewblox-release")
    return Path(cache).absolute()


def files_key(root: Path) -> str:
    """A hash of the `DECIDING_FILES`: the same key means the same answers."""
    digest = hashlib.sha256()
    for name in DECIDING_FILES:
        path = root / name
        digest.update(name.encode() + b"\0")
        try:
            digest.update(hashlib.sha256(path.read_bytes()).digest())
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            digest.update(b"-")
    return digest.hexdigest()[:32]


def builder(source: Path, *, env: Mapping[str, str] | None = None,
            requirements_of: Path | None = None) -> Any:
    """A ``build.ProjectBuilder`` for the project at ``source`` in its kept build environment,
    with the dynamic build requirements of ``requirements_of`` (default ``source``: a stamped
    copy asks for those of its checkout) installed once per `files_key`; ``env`` is added to
    every hook's environment (the version override).

    Raises:
        BuildError: the environment cannot be made (pip's output is above).
        build.BuildBackendException: the backend failed to say its dynamic requirements.
    """
    import fcntl

    from build import BuildException, ProjectBuilder

    def runner(cmd: Sequence[str], cwd: str | None = None,
               extra_environ: Mapping[str, str] | None = None) -> None:
        run(list(cmd), cwd=cwd, env={**(extra_environ or {}), **(env or {})}, echo=False)

    key_root = requirements_of or source
    try:
        requires = sorted(ProjectBuilder(key_root).build_system_requires)
    except BuildException as e:
        raise BuildError(f"{source}: {e}") from e
    digest = hashlib.sha256(json.dumps([sys.version, sys.executable, requires]).encode())
    path = cache_dir() / "build-env" / digest.hexdigest()[:16]
    lock_file = path.parent / f"{path.name}.lock"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock_file.touch()
    except OSError as e:
        raise BuildError(f"{path.parent} cannot hold the build environment "
                         f"({e.strerror}): set BREWBLOX_RELEASE_CACHE to a directory you can "
                         "write") from None
    python, ready = path / "bin" / "python", path / "brewblox-release-ready"
    projects = path / "brewblox-release-projects"  # the files_keys whose requirements it has
    try:
        pip = [sys.executable, "-m", "pip", "--python", str(python), "install",
               "--quiet", "--disable-pip-version-check"]
        made = ProjectBuilder(source, python_executable=str(python), runner=runner)
        with lock_file.open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            fresh = False
            with contextlib.suppress(FileNotFoundError):
                fresh = time.time() - ready.stat().st_mtime < MAX_AGE and python.exists()
            if not fresh:
                log(f"making the build environment {path} ({', '.join(requires)})")
                ready.unlink(missing_ok=True)
                venv.EnvBuilder(clear=True, symlinks=True, with_pip=False).create(path)
                run([*pip, *requires], echo=False)
                ready.touch()
            key = files_key(key_root)
            satisfied = False
            with contextlib.suppress(FileNotFoundError):
                satisfied = key in projects.read_text().split()
            if not satisfied:
                dynamic = (made.get_requires_for_build("sdist")
                           | made.get_requires_for_build("wheel"))
                if dynamic:
                    run([*pip, *sorted(dynamic)], echo=False)
                with projects.open("a") as f:
                    f.write(key + "\n")
    except CommandError as e:
        raise BuildError(f"making the build environment failed: pip exited with "
                         f"{e.result.returncode} (its output is above)") from e
    except BuildException as e:
        raise BuildError(f"{source}: {e}") from e
    return made
