"""The GitLab CI definition that `init` writes, run for real by gitlab-ci-local (a local GitLab
CI runner, npm ``gitlab-ci-local@4.60.0``) on a sample service: a branch pipeline publishes a
dev release, a tag pipeline a release, to a registry and a pypiserver on loopback.

How gitlab-ci-local stands in for GitLab here (read in its source, ``src/predefined-variables.ts``,
``src/git-data.ts`` and ``src/job.ts`` of 4.60.0):
- it runs the jobs in the working tree itself (no ``--shell-isolation``), so git, the tags and
  the history are the repository's own;
- it sets ``GITLAB_CI=false``, ``CI_PIPELINE_SOURCE=push`` and ``CI_COMMIT_BRANCH`` and
  ``CI_COMMIT_REF_NAME`` to ``git rev-parse --abbrev-ref HEAD``, and never ``CI_COMMIT_TAG``:
  a tag pipeline is ``--variable CI_COMMIT_TAG=...`` with ``--unset-variable
  CI_COMMIT_BRANCH``, as GitLab has it;
- ``--force-shell-executor`` runs the job on this host, ignoring its ``image``; but it still
  starts the job's ``services``, which would pull ``docker:27-dind``. The runner's engine is
  this host's, so a wrapper that includes the definition empties ``services``, and nothing else.
- CI/CD variables (the credentials, and the loopback destinations a fork would set) are
  ``--variable`` options.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from brewblox_release._init import init, render
from brewblox_release._servers import IndexServer, RegistryServer
from tests.conftest import require_or_skip
from tests.service import (
    SENTINELS,
    GitRepo,
    clean_env,
    destinations,
    index_files,
    leaked_secrets,
    registry_digest,
    registry_tags,
)
from tests.test_init import RIG_BASE_IMAGES, fresh_service

pytestmark = [pytest.mark.engine, pytest.mark.e2e, pytest.mark.slow]

REPO = "brewblox/demo-svc"
WRAPPER = """\
# The runner's engine is this host's: the definition as written, without the dind service.
include:
  - local: .gitlab-ci.yml
release:
  services: []
"""


def _gitlab_ci_local() -> str:
    exe = shutil.which("gitlab-ci-local")
    problem = None if exe and shutil.which("rsync") else (
        "gitlab-ci-local or rsync is missing: run `bash .ci/provision.sh` as root")
    require_or_skip(problem)
    assert exe is not None
    return exe


def _pipeline(repo: GitRepo, registry: RegistryServer, index: IndexServer, *args: str) -> str:
    variables = {"GITLAB_CI": "true", **SENTINELS, **destinations(registry.address, index.url)}
    argv = [_gitlab_ci_local(), "--file", ".gitlab-ci-local-wrapper.yml",
            "--force-shell-executor", "--no-color",
            *(f"--variable={k}={v}" for k, v in variables.items()), *args]
    docker_config = repo.path.parent / "docker-config"
    docker_config.mkdir(exist_ok=True)
    result = subprocess.run(argv, cwd=repo.path, env={**clean_env(),
                                                      "DOCKER_CONFIG": str(docker_config)},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            timeout=900, check=False)
    assert result.returncode == 0, result.stdout
    assert not leaked_secrets(result.stdout)
    return result.stdout


def test_gitlab_branch_and_tag_pipelines_release(tmp_path: Path, registry: RegistryServer,
                                                 index: IndexServer) -> None:
    repo = fresh_service(tmp_path / "demo-svc", remote="https://gitlab.com/brewblox/demo-svc.git")
    repo.tag("0.1.0")
    changes = init(repo.path, base_images=RIG_BASE_IMAGES)  # the provider from the remote
    assert ".gitlab-ci.yml: " not in render(changes)
    assert any(c.path == ".gitlab-ci.yml" and c.action == "created" for c in changes)
    repo.commit("adopt brewblox-release")
    repo.write(".gitlab-ci-local-wrapper.yml", WRAPPER)  # untracked, like the runner's config

    out = _pipeline(repo, registry, index)
    assert "GitLab CI: branch push develop" in out
    assert index_files(index.packages) == ["demo_svc-0.1.1.dev1-py3-none-any.whl",
                                           "demo_svc-0.1.1.dev1.tar.gz"]
    assert registry_tags(registry.address, REPO) == ["develop", "rpi-develop"]

    repo.tag("0.2.0")
    repo.checkout("0.2.0")  # GitLab checks the tag out: a detached HEAD
    out = _pipeline(repo, registry, index, "--variable=CI_COMMIT_TAG=0.2.0",
                    "--variable=CI_COMMIT_REF_NAME=0.2.0", "--unset-variable=CI_COMMIT_BRANCH")
    assert "GitLab CI: tag push 0.2.0" in out
    assert "demo_svc-0.2.0-py3-none-any.whl" in index_files(index.packages)
    assert "demo_svc-0.2.0.tar.gz" in index_files(index.packages)
    assert registry_tags(registry.address, REPO) == [
        "0.2.0", "develop", "latest", "rpi-0.2.0", "rpi-develop", "rpi-latest"]
    assert registry_digest(registry.address, REPO, "latest") == \
        registry_digest(registry.address, REPO, "0.2.0")
