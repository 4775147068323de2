"""Real dependencies for the image tests and the benchmark (test support, not shipped).

Wheels of compiled packages for both rig platforms, fetched from PyPI on the host (the host
reaches PyPI, containers do not) once into a cache directory that later runs reuse, and served
by a pypiserver on loopback that logs each request, so a test can count the downloads.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import subprocess
import sys
import tarfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from brewblox_release._servers import IndexServer

#: The rig's platforms (.ci/provision.sh) and their machine names in wheel tags.
MACHINES = {"linux/amd64": "x86_64", "linux/arm/v7": "armv7l"}
#: The rig's Python (Debian bookworm's).
PYTHON = "3.11"
#: The rig's glibc (Debian bookworm's): the newest manylinux tag a wheel may carry.
GLIBC_MINOR = 36


def cache_dir() -> Path:
    """``$BREWBLOX_RELEASE_TEST_CACHE``, else ~/.cache/brewblox-release/test-wheels."""
    explicit = os.environ.get("BREWBLOX_RELEASE_TEST_CACHE")
    if explicit:
        return Path(explicit)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "brewblox-release" / "test-wheels"


def platform_options(machine: str) -> list[str]:
    """pip's options for CPython 3.11 wheels of ``machine`` on the rig's glibc."""
    options = ["--only-binary=:all:", "--python-version", PYTHON, "--implementation", "cp",
               "--abi", f"cp{PYTHON.replace('.', '')}", "--abi", "abi3", "--abi", "none"]
    floor = 5 if machine == "x86_64" else 17
    for minor in range(GLIBC_MINOR, floor - 1, -1):
        options += ["--platform", f"manylinux_2_{minor}_{machine}"]
    for legacy in ("manylinux2014", "manylinux2010", "manylinux1"):
        options += ["--platform", f"{legacy}_{machine}"]
    return [*options, "--platform", f"linux_{machine}"]


def fetch(requirements: list[str], machines: tuple[str, ...] = tuple(MACHINES.values()),
          *, pure: tuple[str, ...] = ()) -> list[Path]:
    """The wheels of ``requirements`` and their dependencies for each machine (and the pure
    wheels ``pure``, without dependencies), downloaded from PyPI once into `cache_dir`."""
    key = hashlib.sha256(repr((requirements, machines, pure)).encode()).hexdigest()[:12]
    directory = cache_dir() / key
    done = directory / ".complete"
    if not done.exists():
        directory.mkdir(parents=True, exist_ok=True)
        pip = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
               "--dest", str(directory)]
        for machine in machines:
            subprocess.run([*pip, *platform_options(machine), *requirements], check=True)
        if pure:
            subprocess.run([*pip, "--no-deps", "--only-binary=:all:", *pure], check=True)
        done.touch()
    return sorted(directory.glob("*.whl"))


def sdist_only(directory: Path, name: str, version: str) -> Path:
    """An sdist of a tiny pure package ``name`` (setuptools' backend), written by hand: a
    dependency that no index has a wheel of."""
    module = name.replace("-", "_")
    root = f"{module}-{version}"
    pyproject = (f'[build-system]\nrequires = ["setuptools>=61"]\n'
                 f'build-backend = "setuptools.build_meta"\n\n'
                 f'[project]\nname = "{name}"\nversion = "{version}"\n\n'
                 f'[tool.setuptools]\npackages = ["{module}"]\n')
    files = {
        "PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        "pyproject.toml": pyproject,
        f"{module}/__init__.py": f"VERSION = {version!r}\n",
    }
    path = directory / f"{root}.tar.gz"
    directory.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as archive:
        for relative, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{root}/{relative}")
            info.size = len(data)
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(data))
    return path


@dataclass
class LoggedIndex(IndexServer):
    """A pypiserver on loopback that logs every request (``-v``) and lets pip cache what it
    downloads (``--cache-control``, as PyPI does), read back with `fetched`."""

    def start(self) -> None:
        self.packages.mkdir(parents=True, exist_ok=True)
        self._spawn([sys.executable, "-m", "pypiserver", "run", "-v", "-i", "127.0.0.1",
                     "-p", str(self.port), "-P", ".", "-a", ".", "--disable-fallback",
                     "--cache-control", "3600", "--hash-algo", self.hash_algo,
                     "--backend", "simple-dir", str(self.packages)], self.simple_url)

    def fetched(self) -> Counter[str]:
        """How many times each file was downloaded since the server started."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return Counter(re.findall(r'"GET /packages/([^ ?#"]+)[^"]*" 200', text))
