"""Fixtures: the real engine, a registry and a package index on loopback, sample services.

Tests that need the engine skip with the reason on a workstation without one, but fail under
CI (``CI=true``): a skip must never hide a broken pipeline.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from brewblox_release.servers import IndexServer, RegistryServer
from tests.service import BASE_REPO, RIG_TARGETS, GitRepo, make_service

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _engine_problem() -> str | None:
    if shutil.which("docker") is None:
        return "no docker client on PATH"
    checks = [
        (["docker", "info", "--format", "{{.ServerVersion}}"], "the Docker engine is not running"),
        (["docker", "buildx", "version"], "docker buildx is not installed"),
        (["docker", "image", "inspect", f"{BASE_REPO}:bookworm-amd64",
          f"{BASE_REPO}:bookworm-armv7"], "the rig's base images are missing"),
    ]
    for argv, problem in checks:
        if subprocess.run(argv, capture_output=True, check=False).returncode != 0:
            return f"{problem}: run `bash .ci/provision.sh` as root"
    if shutil.which("docker-registry") is None and shutil.which("registry") is None:
        return "no registry program: run `bash .ci/provision.sh` as root"
    return None


def require_or_skip(problem: str | None) -> None:
    if problem is None:
        return
    if IN_CI:
        pytest.fail(f"CI=true and {problem}", pytrace=False)
    pytest.skip(problem)


@pytest.fixture(scope="session")
def engine() -> None:
    """The real engine with buildx, arm emulation and the rig's base images."""
    require_or_skip(_engine_problem())


@pytest.fixture
def registry(tmp_path_factory: pytest.TempPathFactory, engine: None) -> Iterator[RegistryServer]:
    """A fresh registry on a free loopback port."""
    with RegistryServer(tmp_path_factory.mktemp("registry")) as server:
        assert isinstance(server, RegistryServer)
        yield server


@pytest.fixture
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IndexServer]:
    """A fresh pypiserver on a free loopback port, accepting uploads."""
    with IndexServer(tmp_path_factory.mktemp("index")) as server:
        assert isinstance(server, IndexServer)
        yield server


@pytest.fixture
def service(tmp_path: Path) -> GitRepo:
    """A sample service building on the rig's base images, tagged 1.2.3 with two commits after."""
    repo = make_service(tmp_path / "demo-svc", extra=RIG_TARGETS)
    repo.tag("1.2.3")
    repo.commit("fix one")
    repo.commit("fix two")
    return repo
