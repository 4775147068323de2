"""Fixtures: the real engine, a registry and a package index on loopback, sample services.

Tests that need the engine skip with the reason on a workstation without one, but fail under
CI (``CI=true``): a skip must never hide a broken pipeline.

A test that needs nothing beyond this process (no marker of `NEEDS`) is in the fast tier,
``nox -s tests -- -m fast``; `_in_process` holds it to that, so the markers cannot drift from
what the tests do.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pluggy
import pytest

from brewblox_release._servers import IndexServer, RegistryServer
from tests.service import (
    BASE_REPO,
    CAPTURED,
    RIG_TARGETS,
    SECRET_VALUES,
    GitRepo,
    leaked_secrets,
    make_service,
)

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

#: The markers (pyproject.toml) of what a test needs beyond this process.
NEEDS = ("engine", "e2e", "serial", "slow", "process")
#: Programs a fast test does not start: the tool itself, an engine, a server, a build.
_NOT_IN_PROCESS = ("nox", "brewblox_release", "brewblox-release", "docker", "dockerd",
                   "pypiserver", "docker-registry", "pip", "build", "invoke", "gitlab-ci-local")


#: Fixtures that start a server as a process: a test that uses one needs ``process``.
_SERVERS = {"registry", "index", "bare_registry", "locked_registry", "aio_index", "arm_index"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _SERVERS & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.process)
        if not any(item.get_closest_marker(name) for name in NEEDS):
            item.add_marker(pytest.mark.fast)


#: Whether the test being set up, run or torn down is in the fast tier: a module's fixture
#: that starts a server does so in its first test's setup, which is held to it too.
_fast_now = False


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    global _fast_now  # noqa: PLW0603 (the one item pytest runs at a time)
    _fast_now = item.get_closest_marker("fast") is not None
    try:
        return (yield)
    finally:
        _fast_now = False


@pytest.fixture(autouse=True, scope="session")
def _in_process() -> Iterator[None]:
    """A fast test that starts one of `_NOT_IN_PROCESS` (itself or through a fixture of any
    scope) fails: mark it with what it needs."""
    start: Any = subprocess.Popen.__init__

    def checked(self: subprocess.Popen[bytes], args: object, *rest: object,
                **kwargs: object) -> None:
        argv = [str(a) for a in args] if isinstance(args, list | tuple) else str(args).split()
        words = [Path(a).name for a in argv[:4]]
        if _fast_now and words and (words[0] in _NOT_IN_PROCESS or (
                len(words) > 2 and words[1] == "-m" and words[2] in _NOT_IN_PROCESS)):
            pytest.fail(f"a fast test started {' '.join(argv[:4])}: mark the test with what "
                        f"it needs ({', '.join(NEEDS)})", pytrace=False)
        start(self, args, *rest, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(subprocess.Popen, "__init__", checked)
        yield


def _engine_problem() -> str | None:
    if shutil.which("docker") is None:
        return "no docker client on PATH"
    checks = [
        (["docker", "info", "--format", "{{.ServerVersion}}"], "the Docker engine is not running"),
        (["docker", "buildx", "version"], "docker buildx is not installed"),
        (["docker", "image", "inspect", f"{BASE_REPO}:bookworm-amd64",
          f"{BASE_REPO}:bookworm-armv7", f"{BASE_REPO}:bookworm-arm64"],
         "the rig's base images are missing"),
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


# --- the sentinel check over the whole suite -------------------------------------

#: Files a test writes with a credential on purpose: they hold it by design, not by a leak.
_HOLDERS = ("htpasswd", "github-event.json")
#: Stores whose files are compressed (a plain scan cannot read them) and large: image layers,
#: git objects, kept environments.
_COMPRESSED = ("blobs", "objects", "site-packages", ".nox")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
        item: pytest.Item, call: pytest.CallInfo[None],
) -> Generator[None, pluggy.Result[pytest.TestReport], None]:
    """Fail a test whose captured output or log (in-process runs) shows a sentinel."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call":
        return
    shown = "\n".join((report.capstdout, report.capstderr, report.caplog))
    leaks = leaked_secrets(shown)
    if leaks and report.passed:
        report.outcome = "failed"
        report.longrepr = f"sentinel credentials in the captured output or log: {leaks}"


@pytest.fixture(scope="session", autouse=True)
def no_sentinel_anywhere(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """After the whole suite: no sentinel in any output a subprocess printed, nor in any file
    left under the test services (tests/service.py SENTINELS)."""
    yield
    found = [f"output of {what}: {leaks}" for what, text in CAPTURED
             if (leaks := leaked_secrets(text))
             and "leak" not in what.split(" in ")[0]]  # the scan's own planted leak
    top = tmp_path_factory.getbasetemp()
    for path in top.rglob("*"):
        if not path.is_file() or path.is_symlink() or path.name in _HOLDERS or any(
                part in _COMPRESSED for part in path.parts) or path.stat().st_size > 4 << 20:
            continue
        try:
            text = path.read_bytes().decode("utf-8", errors="replace")
        except OSError:
            continue
        if leaks := leaked_secrets(text, SECRET_VALUES):
            found.append(f"file {path}: {leaks}")
    assert not found, "sentinel credentials reached outputs or files:\n" + "\n".join(found)
