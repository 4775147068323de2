"""The kept build environment: one virtualenv per Python and ``[build-system] requires``, made
afresh after a day (as isolation would pick up new releases) instead of ``python -m build``'s two
per build (docs/how-it-works.md, docs/image.md)."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
import venv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ._errors import BuildError
from ._run import CommandError, environ, log, run


def cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """brewblox-release's cache: ``BREWBLOX_RELEASE_CACHE`` (relative to the working directory),
    else ~/.cache/brewblox-release."""
    env = environ() if env is None else env
    cache = env.get("BREWBLOX_RELEASE_CACHE") or str(
        Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "brewblox-release")
    return Path(cache).absolute()


def files_key(root: Path) -> str:
    """A hash of the files that decide the name, the version source and the build requirements:
    the same key means the same answers."""
    digest = hashlib.sha256()
    for name in ("pyproject.toml", "setup.py", "setup.cfg"):
        digest.update(name.encode() + b"\0")
        try:
            digest.update(hashlib.sha256((root / name).read_bytes()).digest())
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            digest.update(b"-")
    return digest.hexdigest()[:32]


def builder(source: Path, *, env: Mapping[str, str] | None = None,
            requirements_of: Path | None = None) -> Any:
    """A ``build.ProjectBuilder`` for ``source`` in its kept build environment, with the dynamic
    requirements of ``requirements_of`` (a stamped copy's are its checkout's) installed once per
    `files_key`; ``env`` is added to every hook's environment (the version override).

    Raises:
        BuildError: the environment cannot be made (pip's output is above).
        build.BuildBackendException: the backend failed to say its dynamic requirements.
    """
    import fcntl

    from build import BuildException, ProjectBuilder

    def runner(cmd: Sequence[str], cwd: str | None = None,
               extra_environ: Mapping[str, str] | None = None) -> None:
        # The environment's programs first on PATH, as build's own environments have them
        # (uv_build runs the uv-build it installed).
        scripts = os.pathsep.join((str(path / "bin"), environ().get("PATH", os.defpath)))
        run(list(cmd), cwd=cwd, env={"PATH": scripts, **(extra_environ or {}), **(env or {})},
            echo=False)

    key_root = requirements_of or source
    try:
        requires = sorted(ProjectBuilder(key_root).build_system_requires)
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
        pip = [sys.executable, "-m", "pip", "--python", str(python), "install",
               "--quiet", "--disable-pip-version-check"]
        made = ProjectBuilder(source, python_executable=str(python), runner=runner)
        with lock_file.open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # only a holder of the lock writes ready and projects
            if not (ready.is_file() and time.time() - ready.stat().st_mtime < 24 * 3600
                    and python.exists()):
                log(f"making the build environment {path} ({', '.join(requires)})")
                ready.unlink(missing_ok=True)
                venv.EnvBuilder(clear=True, symlinks=True, with_pip=False).create(path)
                run([*pip, *requires], echo=False)
                ready.touch()
            key = files_key(key_root)
            if not (projects.is_file() and key in projects.read_text().split()):
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
