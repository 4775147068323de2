"""Images on the real engine and a real registry on loopback."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from brewblox_release import _docker as docker, _hosts as hosts
from brewblox_release._errors import EmulationError
from brewblox_release._servers import IndexServer, RegistryServer
from tests.conftest import require_or_skip
from tests.service import (
    AMD64_TARGETS,
    BASE_REPO,
    GitRepo,
    destinations,
    github_env,
    image_package_version,
    make_service,
    nox,
    registry_config,
    registry_tags,
)

pytestmark = pytest.mark.engine
REPO = "brewblox/demo-svc"


def test_registry_host() -> None:
    assert hosts.registry_host("brewblox/svc") == "docker.io"
    assert hosts.registry_host("ghcr.io/org/svc") == "ghcr.io"
    assert hosts.registry_host("localhost/svc") == "localhost"
    assert hosts.registry_host("127.0.0.1:5000/demo/svc") == "127.0.0.1:5000"


def test_branch_push_builds_and_pushes_both_targets(
        service: GitRepo, registry: RegistryServer, index: IndexServer, tmp_path: Path) -> None:
    service.checkout("-b", "feature/X")
    env = {**github_env(tmp_path, "refs/heads/feature/X"),
           **destinations(registry.address, index.url)}
    result = nox(service, "-s", "dist", "distcopy", "docker-amd64", "docker-arm", env=env)
    assert result.returncode == 0, result.stdout

    assert registry_tags(registry.address, REPO) == ["feature-x", "rpi-feature-x"]
    wheel = next((service.path / "dist").glob("*.whl")).name
    version = wheel.split("-")[1]
    assert version == "1.2.4.dev2"
    for tag, platform, arch, variant in (("feature-x", "linux/amd64", "amd64", None),
                                         ("rpi-feature-x", "linux/arm/v7", "arm", "v7")):
        config = registry_config(registry.address, REPO, tag)
        assert (config["os"], config["architecture"], config.get("variant")) == \
            ("linux", arch, variant)
        labels = config["config"]["Labels"]
        assert labels["org.opencontainers.image.version"] == version
        assert labels["org.opencontainers.image.revision"] == service.head
        assert labels["org.opencontainers.image.title"] == "demo-svc"
        ref = f"{registry.address}/{REPO}:{tag}"
        assert image_package_version(ref, platform) == version
    assert index.packages.is_dir()
    assert not list(index.packages.iterdir()), "the docker sessions upload nothing to the index"


def _image_exists(ref: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", ref], capture_output=True,
                          check=False).returncode == 0


def test_local_run_loads_local_tags_and_pushes_nothing(
        service: GitRepo, registry: RegistryServer, index: IndexServer) -> None:
    image = f"{registry.address}/{REPO}"
    for ref in (f"{image}:local", f"{image}:rpi-local"):
        subprocess.run(["docker", "image", "rm", "-f", ref], capture_output=True, check=False)
    env = destinations(registry.address, index.url)
    result = nox(service, "-s", "dist", "distcopy", "docker-amd64", "docker-arm", env=env)
    assert result.returncode == 0, result.stdout
    assert _image_exists(f"{image}:local")
    assert _image_exists(f"{image}:rpi-local")
    assert registry_tags(registry.address, REPO) == []
    assert image_package_version(f"{image}:rpi-local", "linux/arm/v7",
                                 pull=False).startswith("1.2.4.dev")


@pytest.fixture
def arm_emulation_disabled() -> Iterator[None]:
    handler = Path("/proc/sys/fs/binfmt_misc/qemu-arm")
    if not handler.exists():  # under CI=true the rig must have it: a failure, not a skip
        require_or_skip("no qemu-arm binfmt handler to disable: run `bash .ci/provision.sh`")
    subprocess.run(["update-binfmts", "--disable", "qemu-arm"], check=True, capture_output=True)
    try:
        yield
    finally:
        subprocess.run(["update-binfmts", "--enable", "qemu-arm"], check=True,
                       capture_output=True)


@pytest.mark.serial
def test_the_template_builds_an_arm_image_on_an_engine_without_emulation(
        service: GitRepo, registry: RegistryServer, index: IndexServer, tmp_path: Path,
        arm_emulation_disabled: None) -> None:
    # Nothing of the template runs in the target's own stages, so no qemu is needed to build.
    service.checkout("-b", "feature/no-qemu")
    env = {**github_env(tmp_path, "refs/heads/feature/no-qemu"),
           **destinations(registry.address, index.url)}
    assert nox(service, "-s", "dist", "distcopy", env=env).returncode == 0
    result = nox(service, "-s", "docker-arm", env=env)
    assert result.returncode == 0, result.stdout
    assert registry_tags(registry.address, REPO) == ["rpi-feature-no-qemu"]
    version = next((service.path / "dist").glob("*.whl")).name.split("-")[1]
    subprocess.run(["update-binfmts", "--enable", "qemu-arm"], check=True, capture_output=True)
    ref = f"{registry.address}/{REPO}:rpi-feature-no-qemu"
    assert image_package_version(ref, "linux/arm/v7") == version


@pytest.mark.serial
def test_a_build_that_runs_an_arm_step_without_emulation_says_what_to_enable(
        service: GitRepo, registry: RegistryServer, index: IndexServer, tmp_path: Path,
        arm_emulation_disabled: None) -> None:
    dockerfile = service.path / "rpi-docker" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + "RUN python3 -c pass\n")
    service.commit("a step in the image's own stage")
    service.checkout("-b", "feature/no-qemu")
    env = {**github_env(tmp_path, "refs/heads/feature/no-qemu"),
           **destinations(registry.address, index.url)}
    assert nox(service, "-s", "dist", "distcopy", env=env).returncode == 0
    result = nox(service, "-s", "docker-arm", env=env)
    assert result.returncode != 0
    said = [line for line in result.stdout.splitlines() if "cannot run linux/arm/v7" in line]
    assert len(said) == 1, result.stdout
    assert "update-binfmts --enable qemu-arm" in said[0]
    assert "image (linux/arm/v7) failed (docker exit code 1): ERROR" in said[0], \
        "docker's own last line comes first"
    assert "nothing was published" in said[0]
    assert "Traceback" not in result.stdout
    assert registry_tags(registry.address, REPO) == []
    with pytest.raises(EmulationError, match="cannot run linux/arm/v7 programs"):
        docker.check_emulation("linux/arm/v7")


@pytest.mark.serial
def test_a_dockerfile_that_runs_pip_in_the_arm_image_is_checked_before_it_builds(
        tmp_path: Path, registry: RegistryServer, index: IndexServer,
        arm_emulation_disabled: None) -> None:
    # A Dockerfile of the seed's kind installs with pip in the image, under emulation for arm:
    # the builder is asked first (docs/sessions.md), and nothing is built.
    from tests.samples import seed_docker_service

    repo = seed_docker_service(tmp_path / "seed-svc")
    repo.checkout("-b", "feature/no-qemu")
    env = {**github_env(tmp_path, "refs/heads/feature/no-qemu"),
           **destinations(registry.address, index.url, image="brewblox/seed-svc")}
    assert nox(repo, "-s", "dist", "distcopy", env=env).returncode == 0
    result = nox(repo, "-s", "docker-arm", env=env)
    assert result.returncode != 0
    assert "cannot run linux/arm/v7 programs" in result.stdout
    assert "update-binfmts --enable qemu-arm" in result.stdout
    assert "#1 [internal]" not in result.stdout, "a build started"
    assert registry_tags(registry.address, "brewblox/seed-svc") == []


def test_package_version_runs_the_image_and_reports_through_the_log(engine: None) -> None:
    # Verification's fallback when an image's top layers do not tell its package's version.
    from brewblox_release._errors import PublishError
    from tests.service import BASE_REPO

    ref = f"{BASE_REPO}:bookworm-amd64"
    assert docker.package_version(ref, "linux/amd64", "pip", pull=False)[0].isdigit()
    with pytest.raises(PublishError, match="No package metadata was found for no-such-dist"):
        docker.package_version(ref, "linux/amd64", "no-such-dist", pull=False)


@pytest.mark.parametrize(("platform", "install", "handler"), [
    ("linux/arm64", "--install arm64", "update-binfmts --enable qemu-aarch64"),
    ("linux/arm/v7", "--install arm", "update-binfmts --enable qemu-arm"),
    ("linux/s390x", "--install s390x", "update-binfmts --enable qemu-s390x"),
])
def test_the_emulation_hint_names_each_tools_handler(monkeypatch: pytest.MonkeyPatch,
                                                      platform: str, install: str,
                                                      handler: str) -> None:
    """tonistiigi/binfmt calls arm64 what Debian's qemu-user-static calls qemu-aarch64; a
    builder of another driver (the machine's own handlers are not asked) that builds amd64."""
    monkeypatch.setattr(docker, "_builder", lambda builder: ("remote", ["linux/amd64"]))
    with pytest.raises(EmulationError) as refused:
        docker.check_emulation(platform)
    assert install in str(refused.value)
    assert handler + "`" in str(refused.value)


def test_a_failing_stage_s_own_reason_ends_the_error(tmp_path: Path, index: IndexServer,
                                                     engine: None) -> None:
    """Where the template's stages stop with a reason (a dependency on no index), that line
    ends the run's error, not buildx's generic one."""
    targets = AMD64_TARGETS.replace('build-args = { BASE_IMAGE', 'build-args = { '
                                    f'PIP_INDEX_URL = "{index.simple_url}", BASE_IMAGE', 1)
    service = make_service(tmp_path / "demo-svc", extra='network = "host"\n' + targets,
                           dependencies=["no-such-dep-xyz"])
    result = nox(service, "-s", "dist", "distcopy", "docker-amd64")
    assert result.returncode != 0
    last = next(line for line in result.stdout.splitlines() if "docker-amd64 aborted:" in line)
    assert "building the amd64 image (linux/amd64) failed: no-such-dep-xyz is on no index" \
        in last, result.stdout[-3000:]
    assert "nothing was published" in last


def test_an_image_of_another_version_is_never_pushed(tmp_path: Path, registry: RegistryServer,
                                                     index: IndexServer, engine: None) -> None:
    """A Dockerfile of its own that installs another version than the one just built (an
    older wheel, the index's release) stops the release before anything is pushed or
    uploaded, not at verification after publishing."""
    from brewblox_release import _config as config, _dist as dist

    service = make_service(tmp_path / "demo-svc", extra=AMD64_TARGETS)
    old = dist.build(config.load(service.path), "0.9", twine=False)
    (service.path / "docker" / "old").mkdir()
    for path in old:
        if path.name.endswith(".whl"):
            path.rename(service.path / "docker" / "old" / path.name)
    (service.path / "docker" / "Dockerfile").write_text(
        f"FROM {BASE_REPO}:bookworm-amd64\nCOPY old/ /old/\n"
        "RUN pip3 install --no-index --no-deps --break-system-packages /old/*.whl\n")
    service.commit("a Dockerfile that installs an older wheel")
    service.tag("1.0.0")
    env = {**github_env(tmp_path, "refs/tags/1.0.0"), **destinations(registry.address, index.url)}
    result = nox(service, "-s", "release", env=env)
    assert result.returncode != 0
    assert "the amd64 image holds demo-svc 0.9, not 1.0.0, the version just built" in \
        result.stdout, result.stdout[-3000:]
    assert registry_tags(registry.address, REPO) == []
    assert not list(index.packages.glob("*")), "nothing was uploaded"
