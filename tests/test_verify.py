"""Verification can fail (docs/how-it-works.md): after a real release to a registry and an
index on loopback, the registry is tampered with as a fault or an attacker would, and the
release's own verification, run again, fails with the line that names what is wrong; untouched,
it passes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from brewblox_release.errors import ReleaseError
from brewblox_release.registry import Registry
from brewblox_release.release import Options, Run, Summary, prepare, verify
from brewblox_release.servers import IndexServer, RegistryServer
from tests.service import (
    RIG_TARGETS,
    GitRepo,
    clean_env,
    destinations,
    make_service,
    nox,
    travis_env,
)
from tests.test_registry import _layer, push_image

pytestmark = [pytest.mark.engine, pytest.mark.e2e]
REPO = "brewblox/demo-svc"


@dataclass(frozen=True)
class Released:
    repo: GitRepo
    registry: RegistryServer
    env: dict[str, str]

    def run(self) -> Run:
        """The release of 1.1.0 as its verification sees it."""
        return prepare(self.repo.path, Options(), self.env)

    @property
    def client(self) -> Registry:
        return Registry(f"{self.registry.address}/{REPO}")


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory, engine: None) -> Iterator[Released]:
    """Releases 1.0.0 and 1.1.0 of a template service (amd64 and arm/v7) by tag pushes."""
    top = tmp_path_factory.mktemp("verify")
    with RegistryServer(top / "registry") as registry, IndexServer(top / "index") as index:
        assert isinstance(registry, RegistryServer)
        assert isinstance(index, IndexServer)
        repo = make_service(top / "demo-svc", extra=RIG_TARGETS)
        repo.tag("1.0.0")
        repo.commit("a feature")
        repo.tag("1.1.0")
        dest = destinations(registry.address, index.url)
        for tag in ("1.0.0", "1.1.0"):
            repo.checkout(tag)
            result = nox(repo, "-s", "release", env={**travis_env(tag=tag), **dest})
            assert result.returncode == 0, result.stdout[-3000:]
        yield Released(repo, registry, {**clean_env(), **travis_env(tag="1.1.0"), **dest})


def _fails(released: Released, line: str) -> None:
    summary = Summary()
    with pytest.raises(ReleaseError, match="verification failed") as failed:
        verify(released.run(), summary)
    assert line in str(failed.value), str(failed.value)
    assert any("WRONG" in row[2] for row in summary.rows)


def test_an_untouched_release_verifies(released: Released) -> None:
    summary = Summary()
    verify(released.run(), summary)
    assert summary.rows
    assert all("WRONG" not in row[2] for row in summary.rows)


def test_latest_moved_back_to_an_older_release(released: Released) -> None:
    client = released.client
    client.tag("1.0.0", "latest")
    try:
        _fails(released, "latest does not point at 1.1.0")
    finally:
        client.tag("1.1.0", "latest")


def test_an_image_holding_another_version(released: Released) -> None:
    client = released.client
    pushed = client.digest("1.1.0")
    assert pushed is not None
    push_image(released.registry.address, REPO, "1.1.0",
               {"org.opencontainers.image.title": "demo-svc"},
               layers=(_layer("demo-svc", "0.9.0"),))
    try:
        _fails(released, "holds demo-svc 0.9.0, not 1.1.0")
    finally:
        client.tag(pushed, "1.1.0")
        client.tag(pushed, "latest")


def test_the_arm_latest_on_another_image(released: Released) -> None:
    # rpi-latest moved to the amd64 image of the older release: the arm target's is wrong.
    client = released.client
    arm = client.digest("rpi-1.1.0")
    assert arm is not None
    client.tag("1.0.0", "rpi-latest")
    try:
        _fails(released, "rpi-latest does not point at rpi-1.1.0")
    finally:
        client.tag(arm, "rpi-latest")
