"""Faults on the real servers, secrets, and bad input.

Every session these tests run carries sentinel credentials and has its output scanned for them
(tests/service.py `nox`); `test_the_scan_catches_a_planted_secret` proves the scan can fail.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
from pathlib import Path
from urllib.parse import quote

import pytest

from brewblox_release._servers import IndexServer, RegistryServer
from tests.proxy import FaultProxy
from tests.service import (
    NOXFILE,
    RIG_TARGETS,
    SECRET_VALUES,
    SENTINELS,
    GitRepo,
    clean_env,
    destinations,
    github_env,
    index_files,
    leaked_secrets,
    make_service,
    nox,
    push_started,
    registry_tags,
    travis_env,
    when,
)

pytestmark = [pytest.mark.engine, pytest.mark.e2e]
REPO = "brewblox/demo-svc"


def _abort_message(output: str) -> str:
    """The message of nox's "Session X aborted: MESSAGE (took N seconds)." line(s)."""
    match = re.search(r"Session \S+ (?:aborted|failed): (.*?)(?: \(took [^)]*\)\.)?\s*"
                      r"(?:\nnox > |\Z)", output, re.S)
    assert match, f"no abort message in:\n{output[-2000:]}"
    return match.group(1).strip()


def _assert_clear_error(output: str, *needles: str) -> str:
    message = _abort_message(output)
    assert len(message.splitlines()) <= 2, f"a long error:\n{message}"
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"
    return message


def _assert_nothing_published(registry: RegistryServer, index: IndexServer) -> None:
    assert registry_tags(registry.address, REPO) == []
    assert index_files(index.packages) == []


# --- secrets ------------------------------------------------------------------------------------

def test_the_scan_catches_a_planted_secret(tmp_path: Path) -> None:
    repo = make_service(tmp_path / "leaky", extra=RIG_TARGETS)
    repo.commit("a session that leaks", files={"noxfile.py": NOXFILE + (
        "import os\nimport nox\n\n\n@nox.session(python=False)\n"
        "def leak(session: nox.Session) -> None:\n"
        "    print('the password is', os.environ['TWINE_PASSWORD'])\n")})
    with pytest.raises(AssertionError, match="secret values in the output"):
        nox(repo, "-s", "leak")
    result = nox(repo, "-s", "leak", env=SENTINELS, secrets=False)
    assert leaked_secrets(result.stdout) == [SENTINELS["TWINE_PASSWORD"]]


def test_secret_in_a_failing_command_is_masked(service: GitRepo, registry: RegistryServer,
                                               tmp_path: Path) -> None:
    # The password is part of the upload URL (percent-encoded, as a URL must carry it):
    # twine's error repeats the URL.
    secret = quote(SENTINELS["TWINE_PASSWORD"], safe="")
    service.checkout("-b", "feature/leak")
    env = {**github_env(tmp_path, "refs/heads/feature/leak"),
           **destinations(registry.address, f"http://user:{secret}@127.0.0.1:9/"),
           "BREWBLOX_RELEASE_INDEX_URL": f"http://user:{secret}@127.0.0.1:9/simple/"}
    result = nox(service, "-s", "release", env=env)  # the scan is in nox()
    assert result.returncode != 0
    message = _assert_clear_error(result.stdout, "http://****@127.0.0.1:9/simple/")
    assert "not reachable" in message or "cannot read" in message


# --- faults on the real servers -----------------------------------------------------------------

def test_registry_down_before_publishing_publishes_nothing(
        service: GitRepo, registry: RegistryServer, index: IndexServer, tmp_path: Path) -> None:
    # A tag release (latest is decided from the index's releases) builds, then finds the
    # registry down before anything is pushed or uploaded.
    service.checkout("1.2.3")
    registry.stop()
    result = nox(service, "-s", "release",
                 env={**travis_env(tag="1.2.3"), **destinations(registry.address, index.url)})
    assert result.returncode != 0
    _assert_clear_error(result.stdout, "not reachable")
    assert index_files(index.packages) == []
    # A dev release builds everything first, then finds the registry down: publishes nothing.
    service.checkout("main")
    service.checkout("-b", "feature/down")
    env = {**github_env(tmp_path, "refs/heads/feature/down"),
           **destinations(registry.address, index.url)}
    result = nox(service, "-s", "release", env=env)
    assert result.returncode != 0
    _assert_clear_error(result.stdout, "not reachable")
    assert "built amd64 image" in result.stdout
    assert "built arm image" in result.stdout
    assert index_files(index.packages) == []
    registry.start()
    assert registry_tags(registry.address, REPO) == []
    result = nox(service, "-s", "release", env=env)
    assert result.returncode == 0, result.stdout
    assert registry_tags(registry.address, REPO) == ["feature-down", "rpi-feature-down"]
    assert len(index_files(index.packages)) == 2


def test_index_503_twice_then_upload_succeeds(service: GitRepo, registry: RegistryServer,
                                              index: IndexServer, tmp_path: Path) -> None:
    service.checkout("-b", "feature/flaky")
    with FaultProxy(index.url, fail_posts=[503, 503]) as proxy:
        env = {**github_env(tmp_path, "refs/heads/feature/flaky"),
               **destinations(registry.address, proxy.url)}
        result = nox(service, "-s", "release", "--", "--verbose", env=env)  # twine's retries
    assert result.returncode == 0, result.stdout
    assert proxy.posts == [503, 503, 200, 200]
    # twine retries a 5xx answer itself (up to 5 times) and says so; each retry is logged.
    assert result.stdout.count('Received "503: Service Unavailable"') == 2, result.stdout
    assert "Retry 1 of 5" in result.stdout
    assert "Retry 2 of 5" in result.stdout
    assert index_files(index.packages) == ["demo_svc-1.2.4.dev2-py3-none-any.whl",
                                           "demo_svc-1.2.4.dev2.tar.gz"]


def test_index_down_longer_is_retried_with_backoff(service: GitRepo, registry: RegistryServer,
                                                   index: IndexServer, tmp_path: Path) -> None:
    # Six 503s outlast twine's own five retries: the library's backoff takes over.
    service.checkout("-b", "feature/outage")
    with FaultProxy(index.url, fail_posts=[503] * 6) as proxy:
        env = {**github_env(tmp_path, "refs/heads/feature/outage"),
               **destinations(registry.address, proxy.url)}
        result = nox(service, "-s", "release", env=env)
    assert result.returncode == 0, result.stdout
    assert proxy.posts == [503] * 6 + [200, 200]
    assert "attempt 1 of 4 failed (503); retrying in 1 s" in result.stdout
    assert len(index_files(index.packages)) == 2


def test_index_403_stops_and_names_the_credentials(service: GitRepo, registry: RegistryServer,
                                                   index: IndexServer, tmp_path: Path) -> None:
    service.checkout("-b", "feature/refused")
    with FaultProxy(index.url, fail_posts=[403] * 8) as proxy:
        env = {**github_env(tmp_path, "refs/heads/feature/refused"),
               **destinations(registry.address, proxy.url)}
        result = nox(service, "-s", "release", env=env)
    assert result.returncode != 0
    assert proxy.posts == [403], "a refusal is not retried"
    _assert_clear_error(result.stdout, "TWINE_PASSWORD")
    assert index_files(index.packages) == []
    assert not [t for t in registry_tags(registry.address, REPO) if "latest" in t]


def test_killed_during_publishing_then_rerun_completes(
        service: GitRepo, registry: RegistryServer, index: IndexServer) -> None:
    service.checkout("1.2.3")
    env = {**clean_env(), **SENTINELS, **travis_env(tag="1.2.3"),
           **destinations(registry.address, index.url),
           "DOCKER_CONFIG": str(service.path.parent / "docker-config")}
    proc = subprocess.Popen(["python", "-m", "nox", "-s", "release"], cwd=service.path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    killed = threading.Event()

    def kill() -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            killed.set()

    # Killed as soon as the registry begins to receive the first image: mid-publish.
    watcher = when(lambda: proc.poll() is not None or push_started(registry.workdir), kill)
    output, _ = proc.communicate(timeout=600)
    watcher.join()
    assert killed.is_set(), output
    assert not leaked_secrets(output)
    assert len(registry_tags(registry.address, REPO)) < 4

    result = nox(service, "-s", "release", env={**travis_env(tag="1.2.3"),
                                                **destinations(registry.address, index.url)})
    assert result.returncode == 0, result.stdout
    assert set(registry_tags(registry.address, REPO)) == {"1.2.3", "latest", "rpi-1.2.3",
                                                          "rpi-latest"}
    on_index = {p.name: p.read_bytes() for p in index.packages.iterdir()}
    built = {p.name: p.read_bytes() for p in (service.path / "dist").iterdir()}
    assert on_index == built, "no duplicates, and the index holds exactly the files built"


# --- bad input: one clear error, nothing published ----------------------------------------------

@pytest.fixture
def dev_env(service: GitRepo, registry: RegistryServer, index: IndexServer,
            tmp_path: Path) -> dict[str, str]:
    service.checkout("-b", "feature/bad")
    return {**github_env(tmp_path, "refs/heads/feature/bad"),
            **destinations(registry.address, index.url)}


def test_no_image_when_a_docker_step_runs(tmp_path: Path, index: IndexServer) -> None:
    repo = make_service(tmp_path / "noimage", image=None, extra=RIG_TARGETS)
    result = nox(repo, "-s", "dist", "distcopy", "docker-amd64",
                 env={"TWINE_REPOSITORY_URL": index.url})
    assert result.returncode != 0
    _assert_clear_error(result.stdout, "image is required", "pyproject.toml",
                        "BREWBLOX_RELEASE_IMAGE")


def test_unknown_config_key(tmp_path: Path) -> None:
    repo = make_service(tmp_path / "typo", extra='quiet-branch = ["main"]\n')
    result = nox(repo, "-s", "release", "--", "--dry-run")
    assert result.returncode != 0
    _assert_clear_error(result.stdout, "unknown key 'quiet-branch'", str(repo.path))


def test_tag_that_is_not_a_version(service: GitRepo, registry: RegistryServer,
                                   index: IndexServer) -> None:
    service.tag("v1.2.4-final")  # a release tag by its shape, but no PEP 440 version
    service.checkout("v1.2.4-final")
    env = {**travis_env(tag="v1.2.4-final"), **destinations(registry.address, index.url)}
    result = nox(service, "-s", "release", env=env)
    assert result.returncode != 0
    # The tag rule refuses it before anything else reads it (setuptools_scm could not either).
    _assert_clear_error(result.stdout, "tag 'v1.2.4-final' is not a version: release tags look "
                        "like 1.2.3 or v1.2.3 (PEP 440). Delete it")
    _assert_nothing_published(registry, index)


def test_tag_that_disagrees_with_the_version(service: GitRepo, registry: RegistryServer,
                                             index: IndexServer) -> None:
    service.checkout("1.2.3")
    env = {**travis_env(tag="1.2.4"), **destinations(registry.address, index.url)}
    result = nox(service, "-s", "release", env=env)
    assert result.returncode != 0
    _assert_clear_error(result.stdout, "tag 1.2.4 does not agree", "(1.2.3)")
    assert not (service.path / "dist").exists(), "it stops before building"
    _assert_nothing_published(registry, index)


def test_dirty_tree(service: GitRepo, registry: RegistryServer, index: IndexServer,
                    dev_env: dict[str, str]) -> None:
    (service.path / "README.md").write_text("changed\n")
    result = nox(service, "-s", "release", env=dev_env)
    assert result.returncode != 0
    _assert_clear_error(result.stdout, "README.md", "--allow-dirty")
    _assert_nothing_published(registry, index)


def test_shallow_clone_without_remote(service: GitRepo, registry: RegistryServer,
                                      index: IndexServer, tmp_path: Path) -> None:
    clone = tmp_path / "shallow"
    subprocess.run(["git", "clone", "-q", "--depth", "1", "--branch", "main",
                    f"file://{service.path}", str(clone)], check=True)
    subprocess.run(["git", "remote", "remove", "origin"], cwd=clone, check=True)
    env = {**github_env(tmp_path, "refs/heads/main"), **destinations(registry.address, index.url)}
    env["GITHUB_REF"] = "refs/heads/feature/shallow"
    result = nox(clone, "-s", "release", env=env)
    assert result.returncode != 0
    _assert_clear_error(result.stdout, "shallow clone", "fetch-depth: 0")
    _assert_nothing_published(registry, index)


def test_missing_credentials_stop_before_building(service: GitRepo, registry: RegistryServer,
                                                  index: IndexServer,
                                                  dev_env: dict[str, str]) -> None:
    env = {**dev_env, "TWINE_REPOSITORY_URL": "https://upload.example.invalid/legacy/",
           "BREWBLOX_RELEASE_INDEX_URL": index.simple_url, "TWINE_PASSWORD": ""}
    result = nox(service, "-s", "release", env=env)
    assert result.returncode != 0
    _assert_clear_error(result.stdout, "TWINE_PASSWORD is not set", "Nothing was built")
    env = {**dev_env, "BREWBLOX_RELEASE_IMAGE": "registry.example.invalid/demo/svc",
           "DOCKER_USERNAME": "", "DOCKER_PASSWORD": ""}
    result = nox(service, "-s", "release", env=env)
    assert result.returncode != 0
    _assert_clear_error(result.stdout, "DOCKER_USERNAME and DOCKER_PASSWORD are not set")
    assert not (service.path / "dist").exists()
    _assert_nothing_published(registry, index)


def test_stale_wheel_in_pkg_is_refused(service: GitRepo, registry: RegistryServer,
                                       index: IndexServer, dev_env: dict[str, str]) -> None:
    assert nox(service, "-s", "dist", "distcopy", env=dev_env).returncode == 0
    service.commit("one more change")  # the version moves on; pkg/ still holds the old wheel
    result = nox(service, "-s", "docker-amd64", env=dev_env)
    assert result.returncode != 0
    _assert_clear_error(result.stdout, "stale package", "nox -s dist distcopy")
    _assert_nothing_published(registry, index)


def test_dockerfile_that_fails_to_build(service: GitRepo, registry: RegistryServer,
                                        index: IndexServer, dev_env: dict[str, str]) -> None:
    dockerfile = service.path / "rpi-docker" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() +
                          "RUN echo 'the build breaks here' >&2 && exit 3\n")
    service.commit("break the arm image")
    result = nox(service, "-s", "release", env=dev_env)
    assert result.returncode != 0
    assert "the build breaks here" in result.stdout, "the build's own error is shown"
    _assert_clear_error(result.stdout, "building the arm image", "nothing was published")
    _assert_nothing_published(registry, index)


def test_sentinels_are_what_the_scan_looks_for() -> None:
    for value in SECRET_VALUES:  # a whole sentinel, or a line of a multi-line one
        assert any(value in sentinel.splitlines() or value == sentinel
                   for sentinel in SENTINELS.values()), value
    assert leaked_secrets("nothing here") == []


def test_a_release_whose_file_differs_on_the_index_publishes_nothing(
        service: GitRepo, registry: RegistryServer, index: IndexServer, tmp_path: Path) -> None:
    # Found in review: the images' version tags were pushed before the upload found the
    # different file, so the images were public and the package never could be.
    service.checkout("1.2.3")
    sdist = index.packages / "demo_svc-1.2.3.tar.gz"
    sdist.write_bytes(b"another build of 1.2.3")
    env = {**travis_env(tag="1.2.3"), **destinations(registry.address, index.url)}
    result = nox(service, "-s", "release", env=env)
    assert result.returncode != 0
    _assert_clear_error(result.stdout, "demo_svc-1.2.3.tar.gz is already on",
                        "different contents", "nothing was published")
    assert "pushed " not in result.stdout
    assert registry_tags(registry.address, REPO) == []
    assert sorted(p.name for p in index.packages.iterdir()) == [sdist.name]
