"""Sample service repositories in tmp_path, with real git histories (test support, not shipped)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import brewblox_release

TEMPLATE = Path(brewblox_release.__file__).parent / "templates" / "Dockerfile"

#: A fixed identity and clock, like setuptools_scm's WorkDir: commits are reproducible.
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "test@example.invalid",
    "GIT_AUTHOR_DATE": "2024-01-01T00:00:00+00:00",
    "GIT_COMMITTER_DATE": "2024-01-01T00:00:00+00:00",
    "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
}


class GitRepo:
    """A git work tree with helpers to commit and tag."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def git(self, *args: str) -> str:
        return subprocess.run(["git", *args], cwd=self.path, env={**os.environ, **GIT_ENV},
                              check=True, capture_output=True, text=True).stdout.strip()

    def init(self, branch: str = "main") -> GitRepo:
        self.path.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", branch)
        return self

    def write(self, name: str, text: str) -> Path:
        path = self.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def commit(self, message: str = "change", *, files: dict[str, str] | None = None) -> str:
        for name, text in (files or {}).items():
            self.write(name, text)
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD")

    def tag(self, name: str) -> None:
        self.git("tag", "-a", name, "-m", name)

    def checkout(self, *args: str) -> None:
        self.git("checkout", "-q", *args)

    @property
    def head(self) -> str:
        return self.git("rev-parse", "HEAD")


def pyproject(name: str = "demo-svc", *, image: str | None = "brewblox/demo-svc",
              dependencies: Sequence[str] = (), extra: str = "") -> str:
    deps = ", ".join(f'"{d}"' for d in dependencies)
    table = f'image = "{image}"\n' if image else ""
    return f"""\
[build-system]
requires = ["setuptools>=64", "setuptools-scm>=8"]
build-backend = "setuptools.build_meta"

[project]
name = "{name}"
description = "A sample service"
readme = "README.md"
requires-python = ">=3.10"
dependencies = [{deps}]
dynamic = ["version"]

[tool.setuptools]
packages = ["{name.replace("-", "_")}"]

[tool.setuptools_scm]

[tool.brewblox-release]
{table}{extra}"""


NOXFILE = "from brewblox_release.sessions import *  # noqa: F403\n"


def make_service(path: Path, name: str = "demo-svc", *, image: str | None = "brewblox/demo-svc",
                 dependencies: Sequence[str] = (), extra: str = "",
                 branch: str = "main") -> GitRepo:
    """A service repository as SPEC §2 describes it, with one commit on ``branch``."""
    repo = GitRepo(path).init(branch)
    module = name.replace("-", "_")
    repo.write("pyproject.toml", pyproject(name, image=image, dependencies=dependencies,
                                           extra=extra))
    repo.write("README.md", f"# {name}\n\nA sample service.\n")
    repo.write(f"{module}/__init__.py",
               "from importlib.metadata import version\n\n"
               f"__version__ = version({name!r})\n")
    repo.write("noxfile.py", NOXFILE)
    repo.write(".gitignore", "dist/\npkg/\n.nox/\n*.egg-info/\n")
    for context in ("docker", "rpi-docker"):
        (path / context).mkdir(exist_ok=True)
        shutil.copy(TEMPLATE, path / context / "Dockerfile")
    repo.commit("initial commit")
    return repo


BASE_REPO = "brewblox-release/python-base"

#: Targets that build on the rig's base images (.ci/provision.sh), which no registry holds.
RIG_TARGETS = f"""\
build-args = {{ BUILD_BASE_IMAGE = "{BASE_REPO}:bookworm-amd64" }}

[[tool.brewblox-release.targets]]
name = "amd64"
context = "docker"
platform = "linux/amd64"
build-args = {{ BASE_IMAGE = "{BASE_REPO}:bookworm-amd64" }}

[[tool.brewblox-release.targets]]
name = "arm"
context = "rpi-docker"
platform = "linux/arm/v7"
prefix = "rpi-"
build-args = {{ BASE_IMAGE = "{BASE_REPO}:bookworm-armv7" }}
"""
