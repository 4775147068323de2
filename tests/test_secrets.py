"""No secret reaches any output, end to end: a real publishing run whose build
backend prints its whole environment, with python-on-whales' debug switch on, carrying the
sentinel credentials (tests/service.py; the suite-wide scan is in tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from brewblox_release._servers import IndexServer, RegistryServer
from tests.service import (
    AMD64_TARGETS,
    SENTINELS,
    destinations,
    github_env,
    index_files,
    make_service,
    nox,
    registry_tags,
)

pytestmark = [pytest.mark.engine, pytest.mark.e2e]

SETUP_PY = """\
import os

from setuptools import setup

# A build backend that shows everything it was given: what a careless setup.py does.
print("ENV-DUMP", sorted(os.environ))
for name, value in sorted(os.environ.items()):
    print("ENV-VALUE", name, value)
setup()
"""


def test_a_backend_that_prints_its_environment_sees_no_credential(
        tmp_path: Path, registry: RegistryServer, index: IndexServer) -> None:
    repo = make_service(tmp_path / "demo-svc", extra=AMD64_TARGETS)
    repo.commit("a setup.py that prints its environment", files={"setup.py": SETUP_PY})
    repo.tag("1.2.3")
    repo.commit("fix")
    repo.checkout("-b", "feature/x")
    env = {**github_env(tmp_path, "refs/heads/feature/x"),
           **destinations(registry.address, index.url), "PYTHON_ON_WHALES_DEBUG": "1"}
    # --verbose: the backend's output is shown. nox() fails on any sentinel in the output.
    result = nox(repo, "-s", "release", "--", "--verbose", env=env)
    assert result.returncode == 0, result.stdout
    dumps = [line for line in result.stdout.splitlines() if "ENV-DUMP" in line]
    assert dumps, "the backend ran and printed its environment"
    for name in (*SENTINELS, "PYTHON_ON_WHALES_DEBUG"):
        assert all(f"'{name}'" not in line for line in dumps), f"the backend was given {name}"
    # The run published for real, with those credentials.
    assert index_files(index.packages) == ["demo_svc-1.2.4.dev1-py3-none-any.whl",
                                           "demo_svc-1.2.4.dev1.tar.gz"]
    assert registry_tags(registry.address, "brewblox/demo-svc") == ["feature-x"]
    # python-on-whales' debug switch (it prints "command: ..." and "Env: {...}") was off.
    assert "Env: {" not in result.stdout
    assert "command: docker" not in result.stdout


def test_a_setup_py_asked_for_its_name_sees_no_secret_var(tmp_path: Path) -> None:
    """A service with no [project] name: its setup.py runs (PEP 517 metadata) while the
    configuration is read, before anything else, and must already miss the service's own
    ``secret-vars`` (the name cache starts cold)."""
    from tests.samples import setup_py_service

    repo = setup_py_service(tmp_path / "legacy-svc")
    setup = repo.path / "setup.py"
    setup.write_text("import os\nprint('SETUP-SEES', os.environ.get('SERVICE_SIGNING_KEY', "
                     "'<none>').splitlines()[0])\n" + setup.read_text())
    pyproject = repo.path / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace(
        "[tool.brewblox-release]\n",
        '[tool.brewblox-release]\nsecret-vars = ["SERVICE_SIGNING_KEY"]\n'))
    repo.commit("a setup.py that shows a secret")
    cache = tmp_path / "cache"
    result = nox(repo, "-s", "version", "--", "--verbose",
                 env={"BREWBLOX_RELEASE_CACHE": str(cache)})
    assert result.returncode == 0, result.stdout
    assert "SETUP-SEES <none>" in result.stdout, result.stdout
