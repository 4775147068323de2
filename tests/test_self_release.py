"""The project releases itself (docs/contributing.md): `nox -s release -- --rehearse` in
a clone of this repository publishes the package and both CI job images (docker/, rpi-docker/)
on loopback, and the amd64 image, run with the engine's socket mounted, releases a sample
service (rehearsed) from inside the container.

The one edit the rig needs: the clone's ``[tool.brewblox-release]`` names the rig's CI base
images (``brewblox-release/ci-base:trixie-{amd64,armv7}``, made by .ci/provision.sh with
debootstrap), since no image can be pulled here; elsewhere the Dockerfiles' default
(``debian:trixie-slim``, multi-platform) needs none.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import tomlkit

from brewblox_release._init import init
from tests.conftest import require_or_skip
from tests.service import GitRepo, nox
from tests.test_init import RIG_BASE_IMAGES, fresh_service

pytestmark = [pytest.mark.engine, pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
CI_BASE = "brewblox-release/ci-base"
BRANCH = "self-release"


@dataclass(frozen=True)
class Released:
    output: str
    version: str
    amd64: str  # the amd64 image's ref in the engine (it stays loaded after the rehearsal)
    arm: str


def _rig_targets(pyproject: Path) -> None:
    doc = tomlkit.parse(pyproject.read_text())
    table = doc["tool"]["brewblox-release"]
    table["build-args"] = {"BUILD_BASE_IMAGE": f"{CI_BASE}:trixie-amd64"}
    targets = tomlkit.aot()
    for name, context, platform, prefix, tag in (
            ("amd64", "docker", "linux/amd64", "", "trixie-amd64"),
            ("arm", "rpi-docker", "linux/arm/v7", "rpi-", "trixie-armv7")):
        target = tomlkit.table()
        target.update({"name": name, "context": context, "platform": platform,
                       "prefix": prefix, "build-args": {"BASE_IMAGE": f"{CI_BASE}:{tag}"}})
        targets.append(target)
    table["targets"] = targets
    pyproject.write_text(tomlkit.dumps(doc))


@pytest.fixture(scope="module")
def released(engine: None) -> Iterator[Released]:
    missing = subprocess.run(["docker", "image", "inspect", f"{CI_BASE}:trixie-amd64",
                              f"{CI_BASE}:trixie-armv7"], capture_output=True, check=False)
    require_or_skip(None if missing.returncode == 0 else
                    f"the rig's CI base images {CI_BASE}:trixie-* are missing: run "
                    "`bash .ci/provision.sh` as root")
    # Not under pytest's temporary directory: the clone's own tests hold the sentinel
    # credentials, which the session's leak scan (conftest) looks for in every file there.
    with tempfile.TemporaryDirectory(prefix="brewblox-self-release-") as tmp:
        clone = GitRepo(Path(tmp) / "brewblox-release")
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone.path)], check=True)
        clone.checkout("-b", BRANCH)  # a branch push: a dev release of the project
        _rig_targets(clone.path / "pyproject.toml")
        clone.commit("the rig's CI base images")
        result = nox(clone, "-s", "release", "--", "--rehearse", timeout=1800)
    assert result.returncode == 0, result.stdout[-6000:]
    registry = re.search(r"rehearsal: registry at (127\.0\.0\.1:\d+)", result.stdout)
    version = re.search(r"^version: (\S+)", result.stdout, re.MULTILINE)
    assert registry, result.stdout[-3000:]
    assert version, result.stdout[-3000:]
    repository = f"{registry.group(1)}/brewblox/brewblox-release"
    refs = Released(result.stdout, version.group(1), f"{repository}:{BRANCH}",
                    f"{repository}:rpi-{BRANCH}")
    try:
        yield refs
    finally:
        subprocess.run(["docker", "image", "rm", "-f", refs.amd64, refs.arm],
                       capture_output=True, check=False)


def test_the_project_rehearses_its_own_release(released: Released) -> None:
    out, version = released.output, re.escape(released.version)
    assert re.search(rf"brewblox_release-{version}-py3-none-any\.whl +uploaded", out)
    assert re.search(rf"brewblox_release-{version}\.tar\.gz +uploaded", out)
    assert re.search(rf":{BRANCH} holds brewblox-release {version} +ok", out)
    assert re.search(rf":rpi-{BRANCH} holds brewblox-release {version} +ok", out)


@pytest.mark.parametrize(("ref", "platform"), [("amd64", "linux/amd64"),
                                                ("arm", "linux/arm/v7")])
def test_the_job_image_has_its_tools(released: Released, ref: str, platform: str) -> None:
    image = released.amd64 if ref == "amd64" else released.arm
    probe = ("import brewblox_release, cffi, cryptography, nox, sys; "
             "print(sys.version_info[:2] >= (3, 10), cffi.__file__)")
    out = subprocess.run(
        # A Go program that starts another can hang under the qemu-user 7.2 of Debian 12 (the
        # docker CLI waiting for its plugin, a known fault of Go's there): buildx runs on its
        # own, and without Go's asynchronous preemption, which qemu-user handles poorly too.
        ["docker", "run", "--rm", "--pull", "never", "--platform", platform,
         "-e", "GODEBUG=asyncpreemptoff=1", image, "sh", "-c",
         f"python3 -c '{probe}' && uname -m && git --version && "
         "/usr/libexec/docker/cli-plugins/docker-buildx version "
         "&& nox --version && command -v docker-registry"],
        capture_output=True, text=True, check=False, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    if ref == "arm":  # Debian's cffi: PyPI has no arm/v7 wheel of it
        assert lines[0] == "True /usr/lib/python3/dist-packages/cffi/__init__.py"
    else:  # PyPI's wheel, in the virtualenv
        assert lines[0].startswith("True /opt/brewblox-release/lib/python3")
    assert lines[1] == ("x86_64" if ref == "amd64" else "armv7l")
    assert lines[2].startswith("git version ")
    assert lines[3].startswith("github.com/docker/buildx ")
    assert lines[-1] == "/usr/bin/docker-registry"


def test_the_amd64_image_releases_a_service_from_inside(released: Released,
                                                        tmp_path: Path) -> None:
    repo = fresh_service(tmp_path / "demo-svc")
    repo.tag("0.1.0")
    repo.commit("a change after the release", files={"CHANGES.md": "- a change\n"})
    init(repo.path, base_images=RIG_BASE_IMAGES)
    repo.commit("adopt brewblox-release")
    result = subprocess.run(
        ["docker", "run", "--rm", "--pull", "never", "--network", "host",
         "-v", "/var/run/docker.sock:/var/run/docker.sock",
         "-v", f"{repo.path}:/work/demo-svc", "-w", "/work/demo-svc", released.amd64,
         "nox", "-s", "release", "--", "--rehearse"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False, timeout=900)
    assert result.returncode == 0, result.stdout[-6000:]
    assert "rehearsal: registry at 127.0.0.1:" in result.stdout
    assert re.search(r":develop holds demo-svc 0\.1\.1\.dev2 +ok", result.stdout)
    assert re.search(r":rpi-develop holds demo-svc 0\.1\.1\.dev2 +ok", result.stdout)
