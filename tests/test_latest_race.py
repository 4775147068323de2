"""`latest` decided twice (docs/how-it-works.md): two tag builds finishing out of order against
one registry
and one index, as `nox -s release` subprocesses, as CI runs them."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from pathlib import Path

import pytest

from brewblox_release._servers import IndexServer, RegistryServer
from tests.service import (
    RIG_TARGETS,
    SENTINELS,
    GitRepo,
    clean_env,
    destinations,
    index_files,
    leaked_secrets,
    make_service,
    nox,
    registry_digest,
    registry_tags,
    travis_env,
    when,
)

pytestmark = [pytest.mark.engine, pytest.mark.e2e]
REPO = "brewblox/demo-svc"
#: The rig's amd64 target alone: the race is about tags, and one image per build is enough.
_COMMON, _AMD64, *_ = RIG_TARGETS.split("[[tool.brewblox-release.targets]]")
AMD64_ONLY = f"{_COMMON}[[tool.brewblox-release.targets]]{_AMD64}"


def _checkout(origin: GitRepo, tag: str) -> GitRepo:
    """A CI job's own clone at ``tag`` (a detached HEAD)."""
    clone = GitRepo(origin.path.parent / f"build-{tag}")
    subprocess.run(["git", "clone", "-q", str(origin.path), str(clone.path)], check=True)
    clone.checkout(tag)
    return clone


def test_an_older_release_finishing_last_leaves_latest_on_the_newer(
        registry: RegistryServer, index: IndexServer, tmp_path: Path) -> None:
    origin = make_service(tmp_path / "demo-svc", extra=AMD64_ONLY)
    origin.tag("1.2.4")  # the maintenance release, tagged first
    origin.commit("the next feature")
    origin.tag("1.3.0")
    old, new = _checkout(origin, "1.2.4"), _checkout(origin, "1.3.0")
    targets = destinations(registry.address, index.url)

    # 1.2.4 starts first, and is stopped once its version tag is in the registry: it has
    # planned `latest` for itself (nothing was published) and is about to move it.
    log = tmp_path / "release-1.2.4.log"
    env = {**clean_env(), **SENTINELS, **travis_env(tag="1.2.4"), **targets,
           "DOCKER_CONFIG": str(tmp_path / "docker-config-1.2.4")}
    with log.open("w") as out:
        proc = subprocess.Popen(["python", "-m", "nox", "-s", "release"], cwd=old.path, env=env,
                                stdout=out, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
    stopped = threading.Event()

    def stop() -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGSTOP)
            stopped.set()

    watcher = when(lambda: proc.poll() is not None
                   or "1.2.4" in registry_tags(registry.address, REPO), stop)
    try:
        watcher.join(timeout=600)
        assert stopped.is_set(), log.read_text()
        assert "latest" not in registry_tags(registry.address, REPO), "stopped before latest"

        # 1.3.0 runs from start to finish meanwhile and moves latest to itself.
        result = nox(new, "-s", "release", env={**travis_env(tag="1.3.0"), **targets})
        assert result.returncode == 0, result.stdout
        newest = registry_digest(registry.address, REPO, "1.3.0")
        assert registry_digest(registry.address, REPO, "latest") == newest
        # (On this rig's one engine, the 1.3.0 build also re-tagged the engine's local
        # `latest`; `latest` moves in the registry, to the manifest of the run's own version
        # tag, so that does not decide the outcome.)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGCONT)
    assert proc.wait(timeout=600) == 0, log.read_text()
    output = log.read_text()
    assert not leaked_secrets(output)

    # 1.2.4 decided again right before moving latest, saw 1.3.0 and left latest there.
    assert "1.3.0 was published while this release ran: latest stays on it, not 1.2.4" in output
    assert "skipped: 1.3.0 was published" in output, "the summary says why"
    assert registry_digest(registry.address, REPO, "latest") == newest
    assert set(registry_tags(registry.address, REPO)) == {"1.2.4", "1.3.0", "latest"}
    assert "latest -> 1.3.0" in output, "its verification checked latest against 1.3.0"
    assert {f.split("-")[1].removesuffix(".tar.gz") for f in index_files(index.packages)} == {
        "1.2.4", "1.3.0"}
