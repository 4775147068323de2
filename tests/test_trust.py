"""The review's and the real repositories' defects (docs/how-it-works.md): ``latest`` decided
only from this project's releases, the registry's tag list read through every page, a
one-target tag job verifying its own target only, and a noxfile whose default backend is uv
where uv is not installed."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from brewblox_release._prepared import Options
from brewblox_release._registry import Registry
from brewblox_release._release import prepare
from brewblox_release._servers import IndexServer, RegistryServer
from tests.service import (
    RIG_TARGETS,
    SENTINELS,
    clean_env,
    destinations,
    make_service,
    nox,
    registry_digest,
    travis_env,
)
from tests.test_registry import bare_registry, push_image

__all__ = ["bare_registry"]  # the fixture, from test_registry

REPO = "brewblox/demo-svc"


def test_every_page_of_the_tag_list_is_read(bare_registry: RegistryServer) -> None:
    registry = Registry(f"{bare_registry.address}/{REPO}")
    push_image(bare_registry.address, REPO, "1.0.0", {})
    for i in range(1, 251):
        registry.tag("1.0.0", f"tag-{i:03d}")
    assert len(registry.tags(page=100)) == 251  # three pages
    assert registry.tags(page=100) == registry.tags() == sorted(registry.tags(page=7))


def _service_at(tmp_path: Path, *, pypi: bool) -> Path:
    repo = make_service(tmp_path / "demo-svc", extra=("pypi = false\n" if not pypi else "")
                        + RIG_TARGETS)
    repo.tag("1.3.1")
    return repo.path


@pytest.mark.parametrize("pypi", [True, False], ids=["on the index", "images only"])
def test_a_stray_version_like_tag_does_not_freeze_latest(
        bare_registry: RegistryServer, index: IndexServer, tmp_path: Path, pypi: bool) -> None:
    # Releases 1.2.3 and 1.3.0 (in the registry, and on the index when pypi = true) and a tag
    # 20240101 that some other job pushed: a tag build of 1.3.1 moves latest.
    for version in ("1.2.3", "1.3.0"):
        push_image(bare_registry.address, REPO, version,
              {"org.opencontainers.image.title": "demo-svc"})
        (index.packages / f"demo_svc-{version}.tar.gz").write_bytes(b"x")
    push_image(bare_registry.address, REPO, "20240101", {"org.opencontainers.image.title": "other"})
    root = _service_at(tmp_path, pypi=pypi)
    env = {**clean_env(), **travis_env(tag="1.3.1"),
           **destinations(bare_registry.address, index.url, image=REPO)}
    run = prepare(root, Options(dry_run=True), env)
    assert run.plan.latest, run.plan.reasons
    assert "latest" in run.plan.image("amd64").tags
    # The check can fail: a real release above this one keeps latest where it is.
    push_image(bare_registry.address, REPO, "1.4.0", {"org.opencontainers.image.title": "demo-svc"})
    (index.packages / "demo_svc-1.4.0.tar.gz").write_bytes(b"x")
    assert not prepare(root, Options(dry_run=True), env).plan.latest


def test_a_dry_run_notes_a_registry_it_cannot_read(tmp_path: Path) -> None:
    root = _service_at(tmp_path, pypi=False)
    env = {**clean_env(), **travis_env(tag="1.3.1"), "BREWBLOX_RELEASE_IMAGE":
           f"127.0.0.1:9/{REPO}"}
    run = prepare(root, Options(dry_run=True), env)
    assert any("what is published could not be read" in r for r in run.plan.reasons)


@pytest.mark.engine
@pytest.mark.e2e
def test_two_one_target_tag_jobs_at_once(registry: RegistryServer, index: IndexServer,
                                         tmp_path: Path) -> None:
    # The seed's layout: docker-amd64 and docker-arm as two jobs of the same tag, in parallel.
    repo = make_service(tmp_path / "demo-svc", extra=RIG_TARGETS)
    repo.tag("2.0.0")
    env = {**travis_env(tag="2.0.0"), **destinations(registry.address, index.url)}
    assert nox(repo, "-s", "dist", "distcopy", env=env).returncode == 0
    results: dict[str, subprocess.CompletedProcess[str]] = {}

    def job(session: str) -> None:
        results[session] = nox(repo, "-s", session, env=env)

    jobs = [threading.Thread(target=job, args=(s,)) for s in ("docker-amd64", "docker-arm")]
    for thread in jobs:
        thread.start()
    for thread in jobs:
        thread.join()
    for session, result in results.items():
        assert result.returncode == 0, f"{session}:\n{result.stdout[-3000:]}"
    assert registry_digest(registry.address, REPO, "latest") == \
        registry_digest(registry.address, REPO, "2.0.0")
    assert registry_digest(registry.address, REPO, "rpi-latest") == \
        registry_digest(registry.address, REPO, "rpi-2.0.0")


@pytest.mark.parametrize("session", [("version",), ("dist",), ("release", "--", "--dry-run")])
@pytest.mark.process
def test_a_noxfile_whose_default_backend_is_uv_without_uv(tmp_path: Path,
                                                          session: tuple[str, ...]) -> None:
    # urllib3's noxfile sets the default backend to uv; here no uv is installed.
    repo = make_service(tmp_path / "demo-svc")
    repo.commit("uv by default", files={"noxfile.py": "import nox\n\n"
                                        "from brewblox_release.sessions import *  # noqa\n\n"
                                        'nox.options.default_venv_backend = "uv"\n'})
    path = clean_env()
    path["PATH"] = ":".join(p for p in path.get("PATH", "").split(":")
                            if not (Path(p) / "uv").exists())
    result = subprocess.run([sys.executable, "-m", "nox", "-s", *session], cwd=repo.path,
                            env={**path, **SENTINELS}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "Traceback" not in result.stdout
