"""Whole releases, end to end: `nox -s release` as a subprocess, as CI runs it, against a real
pypiserver and a real registry on loopback."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from brewblox_release._servers import IndexServer, RegistryServer
from tests.service import (
    RIG_TARGETS,
    SENTINELS,
    GitRepo,
    azure_pr_env,
    destinations,
    github_env,
    gitlab_env,
    htpasswd,
    index_files,
    make_service,
    nox,
    push_started,
    registry_digest,
    registry_tags,
    travis_env,
    when,
)

pytestmark = [pytest.mark.engine, pytest.mark.e2e]
REPO = "brewblox/demo-svc"


def _release(service: GitRepo, env: dict[str, str], *args: str) -> str:
    result = nox(service, "-s", "release", "--", *args, env=env)
    assert result.returncode == 0, result.stdout
    return result.stdout


def _pip_version(index: IndexServer, tmp: Path, *, pre: bool = False) -> str:
    dest = tmp / ("pre" if pre else "final")
    argv = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir", "--quiet",
            "--index-url", index.simple_url, "--dest", str(dest), "demo-svc"]
    subprocess.run(argv + (["--pre"] if pre else []), check=True, capture_output=True,
                   env={"PATH": "/usr/bin:/bin", "HOME": str(tmp)})
    wheel = next(dest.glob("*.whl"))
    return wheel.name.split("-")[1]


def test_github_branch_push_is_a_dev_release(service: GitRepo, registry: RegistryServer,
                                             index: IndexServer, tmp_path: Path) -> None:
    service.checkout("-b", "feature/Add_Doodad")
    env = {**github_env(tmp_path, "refs/heads/feature/Add_Doodad"),
           **destinations(registry.address, index.url)}
    out = _release(service, env)
    assert index_files(index.packages) == ["demo_svc-1.2.4.dev2-py3-none-any.whl",
                                           "demo_svc-1.2.4.dev2.tar.gz"]
    assert registry_tags(registry.address, REPO) == ["feature-add_doodad",
                                                     "rpi-feature-add_doodad"]
    assert "holds demo-svc 1.2.4.dev2  ok" in out


def _tag_release(repo: GitRepo, tag: str, registry: RegistryServer, index: IndexServer) -> str:
    repo.checkout(tag)  # CI checks the tag out: a detached HEAD
    env = {**travis_env(tag=tag), **destinations(registry.address, index.url)}
    return _release(repo, env)


def test_travis_tag_is_a_release_and_pip_prefers_it(service: GitRepo, registry: RegistryServer,
                                                    index: IndexServer, tmp_path: Path) -> None:
    # A newer dev version is on the index already: a branch's dev release.
    service.checkout("-b", "feature/next")
    env = {**github_env(tmp_path, "refs/heads/feature/next"),
           **destinations(registry.address, index.url)}
    _release(service, env)
    service.checkout("main")
    service.git("checkout", "-q", "1.2.3")

    _tag_release(service, "1.2.3", registry, index)
    files = index_files(index.packages)
    assert "demo_svc-1.2.3-py3-none-any.whl" in files
    assert "demo_svc-1.2.3.tar.gz" in files
    assert registry_tags(registry.address, REPO) == [
        "1.2.3", "feature-next", "latest", "rpi-1.2.3", "rpi-feature-next", "rpi-latest"]
    assert registry_digest(registry.address, REPO, "latest") == \
        registry_digest(registry.address, REPO, "1.2.3")
    assert registry_digest(registry.address, REPO, "rpi-latest") == \
        registry_digest(registry.address, REPO, "rpi-1.2.3")
    assert _pip_version(index, tmp_path) == "1.2.3"
    assert _pip_version(index, tmp_path, pre=True) == "1.2.4.dev2"


def test_quiet_branch_and_pull_request_publish_nothing(
        service: GitRepo, registry: RegistryServer, index: IndexServer) -> None:
    service.git("branch", "-f", "master", "HEAD")
    service.checkout("master")
    out = _release(service, {**gitlab_env(branch="master"),
                             **destinations(registry.address, index.url)})
    assert "push to master, a quiet branch: builds only, publishes nothing" in out
    service.checkout("-b", "feature/pr")
    out = _release(service, {**azure_pr_env(source="feature/pr"),
                             **destinations(registry.address, index.url)})
    assert "pull request: builds only, publishes nothing" in out
    assert "built and loaded" in out
    assert index_files(index.packages) == []
    assert registry_tags(registry.address, REPO) == []


def test_maintenance_release_keeps_latest(service: GitRepo, registry: RegistryServer,
                                          index: IndexServer) -> None:
    # 1.1.1 is a fix of the 1.1 line, tagged on a branch off an older commit, after 1.2.3.
    service.checkout("1.2.3")
    service.checkout("-b", "maint-1.1")
    service.commit("backport")
    service.tag("1.1.1")
    _tag_release(service, "1.2.3", registry, index)
    latest = registry_digest(registry.address, REPO, "latest")
    rpi_latest = registry_digest(registry.address, REPO, "rpi-latest")

    out = _tag_release(service, "1.1.1", registry, index)
    assert "older than the highest release 1.2.3: latest stays there" in out
    assert "1.1.1" in registry_tags(registry.address, REPO)
    assert registry_digest(registry.address, REPO, "latest") == latest
    assert registry_digest(registry.address, REPO, "rpi-latest") == rpi_latest
    assert registry_digest(registry.address, REPO, "1.1.1") != latest


def test_race_guard_then_tag_build_publishes_once(service: GitRepo, registry: RegistryServer,
                                                  index: IndexServer, tmp_path: Path) -> None:
    service.checkout("-b", "develop")
    service.tag("1.3.0")  # pushed while the branch build of this commit runs
    env = {**github_env(tmp_path, "refs/heads/develop"),
           **destinations(registry.address, index.url)}
    out = _release(service, env)
    assert "the tag's own build publishes it" in out
    assert index_files(index.packages) == []
    assert registry_tags(registry.address, REPO) == ["develop", "rpi-develop"]

    service.checkout("1.3.0")
    env = {**github_env(tmp_path, "refs/tags/1.3.0"),
           **destinations(registry.address, index.url)}
    _release(service, env)
    assert index_files(index.packages) == ["demo_svc-1.3.0-py3-none-any.whl",
                                           "demo_svc-1.3.0.tar.gz"]
    assert set(registry_tags(registry.address, REPO)) == {
        "develop", "rpi-develop", "1.3.0", "rpi-1.3.0", "latest", "rpi-latest"}


def test_rerun_of_a_release_changes_nothing(service: GitRepo, registry: RegistryServer,
                                            index: IndexServer) -> None:
    _tag_release(service, "1.2.3", registry, index)
    files = {p.name: p.read_bytes() for p in index.packages.iterdir()}
    digests = {t: registry_digest(registry.address, REPO, t)
               for t in registry_tags(registry.address, REPO)}
    # The rerun builds in a fresh clone, as a CI retry does: the files must be byte-identical.
    clone = GitRepo(service.path.parent / "retry")
    subprocess.run(["git", "clone", "-q", str(service.path), str(clone.path)], check=True)
    out = _tag_release(clone, "1.2.3", registry, index)
    assert "already on the index with the same sha256, skipped" in out
    assert {p.name: p.read_bytes() for p in index.packages.iterdir()} == files
    assert {t: registry_digest(registry.address, REPO, t)
            for t in registry_tags(registry.address, REPO)} == digests


def test_push_failure_midway_then_rerun_completes(service: GitRepo, registry: RegistryServer,
                                                  index: IndexServer) -> None:
    service.checkout("1.2.3")
    env = {**travis_env(tag="1.2.3"), **destinations(registry.address, index.url)}
    # The registry stops as soon as the first layer upload begins: the pushes fail midway.
    watcher = when(lambda: push_started(registry.workdir), registry.stop)
    failed = nox(service, "-s", "release", env=env)
    watcher.join()
    assert failed.returncode != 0, failed.stdout
    assert "re-run the release to complete it" in failed.stdout
    assert "attempt 1 of 4 failed" in failed.stdout, "the push was retried"
    assert index_files(index.packages) == [], "the index upload comes after the image pushes"

    registry.start()
    assert "latest" not in registry_tags(registry.address, REPO)
    _release(service, env)
    assert set(registry_tags(registry.address, REPO)) == {"1.2.3", "latest", "rpi-1.2.3",
                                                          "rpi-latest"}
    assert len(index_files(index.packages)) == 2


def test_rehearse_in_a_fresh_clone(tmp_path: Path) -> None:
    # Rehearsal releases the checked-out ref: develop, whose pushes are dev releases.
    origin = make_service(tmp_path / "origin", extra=RIG_TARGETS, branch="develop")
    origin.tag("0.1.0")
    origin.commit("work")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(origin.path), str(clone)], check=True)
    result = nox(clone, "-s", "release", "--", "--rehearse")
    assert result.returncode == 0, result.stdout
    assert "rehearsal: registry at 127.0.0.1:" in result.stdout
    assert "0.1.1.dev1.tar.gz" in result.stdout
    assert "holds demo-svc 0.1.1.dev1  ok" in result.stdout
    assert "rehearsal: stopping the registry and the index" in result.stdout


def test_a_docker_session_rehearses_on_loopback_too(tmp_path: Path) -> None:
    # Found in review: --rehearse on docker-amd64 used to publish to the real registry, and to
    # move `latest` back to an older release (HEAD is tagged 0.9.1; 1.0.0 exists).
    repo = make_service(tmp_path / "svc", image="registry.invalid/org/svc", extra=RIG_TARGETS)
    repo.tag("1.0.0")
    repo.commit("a fix for the old series")
    repo.tag("0.9.1")
    assert nox(repo, "-s", "dist", "distcopy").returncode == 0
    result = nox(repo, "-s", "docker-amd64", "--", "--rehearse")
    assert result.returncode == 0, result.stdout
    assert "rehearsal: registry at 127.0.0.1:" in result.stdout
    assert "registry.invalid" not in result.stdout.replace("image = ", "")
    assert re.search(r"/org/svc:0\.9\.1 holds demo-svc 0\.9\.1 +ok", result.stdout)
    assert "rehearsal: stopping the registry and the index" in result.stdout


def test_a_release_to_a_registry_that_wants_basic_auth(service: GitRepo, index: IndexServer,
                                                       tmp_path: Path) -> None:
    # Found in review: ECR, Nexus and htpasswd registries answer with a Basic challenge, which
    # the registry reads before pushing (and verification after) could not answer.
    users = htpasswd(tmp_path / "htpasswd", SENTINELS["DOCKER_USERNAME"],
                     SENTINELS["DOCKER_PASSWORD"])
    with RegistryServer(tmp_path / "locked", htpasswd=users) as registry:
        assert isinstance(registry, RegistryServer)
        service.checkout("1.2.3")
        env = {**travis_env(tag="1.2.3"), **destinations(registry.address, index.url)}
        out = _release(service, env)
        assert f"logged in to {registry.address}" in out
        assert re.search(r"holds demo-svc 1\.2\.3 +ok", out)
        assert "latest -> 1.2.3" in out
        auth = (SENTINELS["DOCKER_USERNAME"], SENTINELS["DOCKER_PASSWORD"])
        assert set(registry_tags(registry.address, REPO, auth=auth)) == {
            "1.2.3", "latest", "rpi-1.2.3", "rpi-latest"}
