"""Three front-ends, one pipeline (docs/how-it-works.md): the same dev release through nox, the
command line and invoke, each against a fresh registry and index on loopback, with the same
result."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from brewblox_release._servers import IndexServer, RegistryServer
from tests.service import (
    AMD64_TARGETS,
    CAPTURED,
    SENTINELS,
    clean_env,
    destinations,
    github_env,
    index_files,
    leaked_secrets,
    make_service,
    nox,
    registry_tags,
)

pytestmark = [pytest.mark.engine, pytest.mark.e2e]

FRONT_ENDS = {
    "nox": ["-m", "nox", "-s", "release"],
    "cli": ["-m", "brewblox_release", "release"],
    "invoke": ["-m", "invoke", "release"],
}


def _summary(output: str) -> list[str]:
    """The summary's rows, without the servers' addresses."""
    rows = [line for line in output.splitlines()
            if line.startswith(("registry ", "index ", "verify "))]
    return [" ".join(w for w in row.split() if "127.0.0.1" not in w) for row in rows]


def test_nox_cli_and_invoke_release_the_same(tmp_path: Path, engine: None) -> None:
    repo = make_service(tmp_path / "demo-svc", extra=AMD64_TARGETS)
    repo.commit("invoke tasks", files={"tasks.py": "from brewblox_release.invoke import "
                                                    "namespace  # noqa: F401\n"})
    repo.tag("1.2.3")
    repo.commit("fix")
    repo.checkout("-b", "feature/x")
    results = {}
    for name, argv in FRONT_ENDS.items():
        with RegistryServer(tmp_path / f"registry-{name}") as registry, \
                IndexServer(tmp_path / f"index-{name}") as index:
            assert isinstance(registry, RegistryServer)
            assert isinstance(index, IndexServer)
            env = {**github_env(tmp_path, "refs/heads/feature/x"),
                   **destinations(registry.address, index.url)}
            if name == "nox":
                result = nox(repo, *argv[2:], env=env)
            else:
                result = subprocess.run([sys.executable, *argv], cwd=repo.path,
                                        env={**clean_env(), **SENTINELS, **env},
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True, timeout=600, check=False)
                CAPTURED.append((f"{name} release", result.stdout))
                assert not leaked_secrets(result.stdout)
            assert result.returncode == 0, result.stdout
            results[name] = (index_files(index.packages),
                             registry_tags(registry.address, "brewblox/demo-svc"),
                             _summary(result.stdout))
    assert results["nox"][0] == ["demo_svc-1.2.4.dev1-py3-none-any.whl",
                                 "demo_svc-1.2.4.dev1.tar.gz"]
    assert results["nox"][1] == ["feature-x"]
    assert results["cli"] == results["nox"]
    assert results["invoke"] == results["nox"]
