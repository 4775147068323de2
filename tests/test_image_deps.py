"""The template with real dependencies, on the real engine (docs/image.md).

One service, built once for both rig platforms (module scope: an arm build with pip in the
image takes a minute): it depends on multidict, compiled, whose wheels for both platforms come
from PyPI through the host's cache, and on nowheel-dep, of which the loopback index has only an
sdist. Its version is new on every run, so the dependencies' stage never comes from the cache
and the index's log counts one cold build per platform.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests import wheels
from tests.service import RIG_TARGETS, make_service, nox

pytestmark = pytest.mark.engine

PASSWORD = "idx-SENTINEL-pw-7Qz"
PLATFORMS = {"amd64": ("linux/amd64", "x86_64-linux-gnu"),
             "arm": ("linux/arm/v7", "arm-linux-gnueabihf")}

#: Run in each image: what is installed, by whom, and the compiled module that was loaded.
PROBE = """\
import importlib.metadata as m, json, platform, sys
import multidict, multidict._multidict as ext, nowheel_dep
dists = {d.metadata["Name"]: (d.read_text("INSTALLER") or "").strip()
         for d in m.distributions() if "/usr/local/" in str(d.locate_file(""))}
print(json.dumps({"machine": platform.machine(), "extension": ext.__file__,
                  "version": m.version("img-svc"), "nowheel": nowheel_dep.VERSION,
                  "installers": dists}))
"""


@dataclass
class Built:
    output: str
    version: str
    refs: dict[str, str]
    fetched: Counter[str]
    packages: list[str]
    nowheel: str


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, engine: None) -> Iterator[Built]:
    files = wheels.fetch(["multidict>=6"], pure=("setuptools",))
    nowheel = f"1.0.post{int(time.time())}"
    image = f"brewblox-test/img-svc-{uuid.uuid4().hex[:8]}"
    with wheels.LoggedIndex(tmp_path_factory.mktemp("index")) as index:
        assert isinstance(index, wheels.LoggedIndex)
        for path in files:
            (index.packages / path.name).write_bytes(path.read_bytes())
        wheels.sdist_only(index.packages, "nowheel-dep", nowheel)
        marker = "build-args = { "
        # With credentials, as a private index's URL holds them (the index takes any).
        url = index.simple_url.replace("://", f"://ci:{PASSWORD}@", 1)
        targets = RIG_TARGETS.replace(marker, f'{marker}PIP_INDEX_URL = "{url}", ', 1)
        service = make_service(tmp_path_factory.mktemp("svc") / "img-svc", "img-svc",
                               image=image, extra='network = "host"\n' + targets,
                               dependencies=["multidict>=6", f"nowheel-dep=={nowheel}"])
        service.tag("1.0.0")
        refs = {"amd64": f"{image}:local", "arm": f"{image}:rpi-local"}
        try:
            result = nox(service, "-s", "dist", "distcopy", "docker-amd64", "docker-arm", "--",
                         "--verbose", timeout=900)  # the stages' output is what is checked
            assert result.returncode == 0, result.stdout[-5000:]
            yield Built(result.stdout, "1.0.0", refs, index.fetched(),
                        sorted(p.name for p in index.packages.iterdir()), nowheel)
        finally:
            subprocess.run(["docker", "image", "rm", "-f", *refs.values()], capture_output=True,
                           check=False)


def _probe(ref: str, platform: str) -> dict[str, Any]:
    out = subprocess.run(["docker", "run", "--rm", "--pull", "never", "--platform", platform,
                          "--entrypoint", "python3", ref, "-c", PROBE],
                         capture_output=True, text=True, check=True, timeout=300)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("target", ["amd64", "arm"])
def test_each_image_imports_its_compiled_dependencies_and_holds_this_release(
        built: Built, target: str) -> None:
    platform, triplet = PLATFORMS[target]
    found = _probe(built.refs[target], platform)  # under qemu for arm/v7
    assert found["machine"] == ("armv7l" if target == "arm" else "x86_64")
    assert triplet in found["extension"], "multidict's C extension for the target was loaded"
    assert found["version"] == built.version
    assert found["nowheel"] == built.nowheel


@pytest.mark.parametrize("target", ["amd64", "arm"])
def test_only_the_dependency_without_a_wheel_went_to_pip_in_the_image(
        built: Built, target: str) -> None:
    installers = _probe(built.refs[target], PLATFORMS[target][0])["installers"]
    assert installers == {"img-svc": "brewblox-release", "multidict": "brewblox-release",
                          "nowheel-dep": "pip"}
    machine = "armv7l" if target == "arm" else "x86_64"
    assert f"nowheel-dep has no wheel for {machine}" in built.output
    assert built.output.count("again with IMAGE_PIP=yes") == 2


def test_each_file_is_fetched_once_per_build(built: Built) -> None:
    wheels_ = [name for name in built.packages if name.startswith("multidict")]
    assert len(wheels_) == 2  # one per platform
    for name in wheels_:
        assert built.fetched[name] == 1, built.fetched
    sdist = f"nowheel_dep-{built.nowheel}.tar.gz"
    # One build per platform, each installing the sdist with pip in the image, once:
    assert built.fetched[sdist] == 2, built.fetched
    assert set(built.fetched.values()) <= {1, 2}, built.fetched


@pytest.mark.parametrize("target", ["amd64", "arm"])
def test_the_index_s_credentials_are_not_in_the_image(built: Built, target: str) -> None:
    """pip in the image used the index (its settings from the deps stage, not as a build arg
    a RUN of the image uses): its history and config, which are published, hold no password."""
    history = subprocess.run(["docker", "history", "--no-trunc", "--format", "{{.CreatedBy}}",
                              built.refs[target]], capture_output=True, text=True, check=True)
    assert "imagebuild.py image" in history.stdout, "pip ran in the image"
    inspected = subprocess.run(["docker", "image", "inspect", built.refs[target]],
                               capture_output=True, text=True, check=True)
    assert PASSWORD not in history.stdout + inspected.stdout
    assert PASSWORD not in built.output, "nor in the build's output"
