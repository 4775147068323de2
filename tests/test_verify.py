"""Verification can fail (docs/how-it-works.md): after a real release to a registry and an
index on loopback, the registry or the index is tampered with as a fault or an attacker would,
and the release's own verification, run again with what the release pushed, fails with the
line that names what is wrong; untouched, it passes."""

from __future__ import annotations

import json
import shutil
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from brewblox_release._errors import ReleaseError
from brewblox_release._prepared import Options, Pushed, Run, Summary
from brewblox_release._registry import Registry
from brewblox_release._release import prepare
from brewblox_release._servers import IndexServer, RegistryServer
from brewblox_release._verify import LISTS, verify
from tests.service import (
    RIG_TARGETS,
    GitRepo,
    clean_env,
    destinations,
    make_service,
    nox,
    travis_env,
)
from tests.test_registry import _layer, push_image

pytestmark = [pytest.mark.engine, pytest.mark.e2e]
REPO = "brewblox/demo-svc"


@dataclass(frozen=True)
class Released:
    repo: GitRepo
    registry: RegistryServer
    index: IndexServer
    env: dict[str, str]
    #: What the release pushed, as the registry showed it once the release verified.
    pushed: Pushed

    def run(self) -> Run:
        """The release of 1.1.0 as its verification sees it."""
        return prepare(self.repo.path, Options(), self.env)

    @property
    def client(self) -> Registry:
        return Registry(f"{self.registry.address}/{REPO}")


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory, engine: None) -> Iterator[Released]:
    """Releases 1.0.0 and 1.1.0 of a template service (amd64 and arm/v7) by tag pushes."""
    top = tmp_path_factory.mktemp("verify")
    with RegistryServer(top / "registry") as registry, IndexServer(top / "index") as index:
        assert isinstance(registry, RegistryServer)
        assert isinstance(index, IndexServer)
        repo = make_service(top / "demo-svc", extra=RIG_TARGETS)
        repo.tag("1.0.0")
        repo.commit("a feature")
        repo.tag("1.1.0")
        dest = destinations(registry.address, index.url)
        for tag in ("1.0.0", "1.1.0"):
            repo.checkout(tag)
            result = nox(repo, "-s", "release", env={**travis_env(tag=tag), **dest})
            assert result.returncode == 0, result.stdout[-3000:]
        client = Registry(f"{registry.address}/{REPO}")
        pushed = Pushed(images={tag: str(client.digest(tag)) for tag in ("1.1.0", "rpi-1.1.0")})
        yield Released(repo, registry, index, {**clean_env(), **travis_env(tag="1.1.0"), **dest},
                       pushed)


def _fails(released: Released, line: str) -> None:
    summary = Summary()
    with pytest.raises(ReleaseError, match="verification failed") as failed:
        verify(released.run(), summary, released.pushed, attempts=1)
    assert line in str(failed.value), str(failed.value)
    assert any("WRONG" in row[2] for row in summary.rows)


def test_an_untouched_release_verifies(released: Released) -> None:
    summary = Summary()
    verify(released.run(), summary, released.pushed)
    assert all("WRONG" not in row[2] for row in summary.rows)
    checked = {row[1] for row in summary.rows}
    for tag in ("1.1.0", "rpi-1.1.0"):
        assert f"{released.registry.address}/{REPO}:{tag} is {released.pushed.images[tag][:19]}" \
            in checked, checked


def test_a_stray_version_like_tag_is_no_release(released: Released) -> None:
    # 20240101 parses as a version higher than any release, but the index never had it: latest
    # stays right on 1.1.0, and verification says so instead of failing.
    push_image(released.registry.address, REPO, "20240101",
               {"org.opencontainers.image.title": "a nightly of something else"})
    summary = Summary()
    verify(released.run(), summary, released.pushed, attempts=1)
    assert ("verify registry", "latest -> 1.1.0", "ok") in summary.rows, summary.rows


def test_a_date_tag_on_the_projects_own_image_is_no_release(released: Released) -> None:
    # Images only (pypi = false): the registry's tags say what is released. 20240101 names the
    # 1.1.0 image itself (a nightly scheme of the service's own), whose label says 1.1.0.
    from dataclasses import replace

    from brewblox_release._verify import published_versions

    released.client.tag("1.1.0", "20240101")
    config = replace(released.run().config, pypi=False)
    assert published_versions(config, released.env) == {"1.1.0"}


def test_a_branch_build_of_a_tagged_commit_expects_latest_where_it_is(
        released: Released) -> None:
    # The tag build of 1.2.0 pushed its images and stopped before the upload (or still runs):
    # the branch build of that commit publishes its branch tags, and latest stays on 1.1.0.
    from brewblox_release._verify import _latest

    client = released.client
    for prefix in ("", "rpi-"):  # another image than latest's
        client.tag(f"{prefix}1.0.0", f"{prefix}1.2.0")
    repo = released.repo
    repo.checkout("-b", "release-1.2")
    repo.commit("the next release")
    repo.tag("1.2.0")
    try:
        env = {k: v for k, v in released.env.items() if k != "TRAVIS_TAG"}
        run = prepare(repo.path, Options(), {**env, **travis_env(branch="release-1.2")})
        assert run.plan.version == "1.2.0"
        assert not run.plan.latest
        summary = Summary()
        assert list(_latest(run, client, [i for i in run.plan.images if i.push], summary)) == []
        assert ("verify registry", "latest -> 1.1.0", "ok") in summary.rows, summary.rows
    finally:
        repo.checkout("1.1.0")
        repo.git("tag", "-d", "1.2.0")


def test_a_registry_slow_to_show_the_release_is_read_again(
        released: Released, capsys: pytest.CaptureFixture[str]) -> None:
    # For a second the tag still shows the older release, as a registry behind a cache might.
    client = released.client
    pushed = released.pushed.images["1.1.0"]
    client.tag("1.0.0", "1.1.0")
    shown = threading.Timer(1.0, client.tag, (pushed, "1.1.0"))
    shown.start()
    summary = Summary()
    try:
        verify(released.run(), summary, released.pushed)
    finally:
        shown.join()
        client.tag(pushed, "1.1.0")
    assert all("WRONG" not in row[2] for row in summary.rows)
    assert "failed; reading the registry and the index again in 2 s" in capsys.readouterr().err


def test_a_tag_naming_another_image_of_the_same_version(released: Released) -> None:
    # An image that holds the right version under the right tags, and latest on it too: only
    # its digest tells that this run did not push it.
    client = released.client
    pushed = released.pushed.images["1.1.0"]
    other = push_image(released.registry.address, REPO, "1.1.0",
                       {"org.opencontainers.image.title": "demo-svc"},
                       layers=(_layer("demo-svc", "1.1.0"),))
    client.tag(other, "latest")
    try:
        _fails(released, f"{REPO}:1.1.0 names {other}, not the {pushed} this run pushed")
    finally:
        client.tag(pushed, "1.1.0")
        client.tag(pushed, "latest")


def test_plain_pip_resolving_a_dev_build(released: Released) -> None:
    # The release's files are there but no pip on this machine can install them (a wheel for
    # another interpreter, no sdist), and a dev build is: pip takes the dev build.
    packages = released.index.packages
    hidden = packages.parent / "hidden"
    hidden.mkdir(exist_ok=True)
    finals = [p for p in packages.iterdir() if "dev" not in p.name]
    released.repo.checkout("-b", "feature-x")
    released.repo.commit("work in progress")
    built = nox(released.repo, "-s", "dist", env=clean_env())
    assert built.returncode == 0, built.stdout[-2000:]
    dev = sorted((released.repo.path / "dist").glob("*.dev1*"))
    assert dev, list((released.repo.path / "dist").iterdir())
    released.repo.checkout("1.1.0")
    for path in dev:
        shutil.copy(path, packages / path.name)
    for path in finals:
        shutil.move(path, hidden / path.name)
        if path.name.endswith(".whl"):  # the release's version still shows, for cp27 only
            name, version, _ = path.name.split("-", 2)
            shutil.copy(hidden / path.name, packages / f"{name}-{version}-cp27-cp27mu-any.whl")
    try:
        _fails(released, "pip install demo-svc resolves to 1.1.1.dev1, not 1.1.0")
    finally:
        for path in packages.iterdir():
            path.unlink()
        for path in hidden.iterdir():
            shutil.move(path, packages / path.name)


def test_latest_moved_back_to_an_older_release(released: Released) -> None:
    client = released.client
    client.tag("1.0.0", "latest")
    try:
        _fails(released, "latest does not point at 1.1.0")
    finally:
        client.tag("1.1.0", "latest")


def test_an_image_holding_another_version(released: Released) -> None:
    client = released.client
    pushed = client.digest("1.1.0")
    assert pushed is not None
    push_image(released.registry.address, REPO, "1.1.0",
               {"org.opencontainers.image.title": "demo-svc"},
               layers=(_layer("demo-svc", "0.9.0"),))
    try:
        _fails(released, "holds demo-svc 0.9.0, not 1.1.0")
    finally:
        client.tag(pushed, "1.1.0")
        client.tag(pushed, "latest")


def test_the_arm_latest_on_another_image(released: Released) -> None:
    # rpi-latest moved to the amd64 image of the older release: the arm target's is wrong.
    client = released.client
    arm = client.digest("rpi-1.1.0")
    assert arm is not None
    client.tag("1.0.0", "rpi-latest")
    try:
        _fails(released, "rpi-latest does not point at rpi-1.1.0")
    finally:
        client.tag(arm, "rpi-latest")


@dataclass(frozen=True)
class ListReleased:
    run: Run
    registry: RegistryServer
    pushed: Pushed


@pytest.fixture(scope="module")
def list_released(tmp_path_factory: pytest.TempPathFactory, engine: None) -> Iterator[ListReleased]:
    """Release 2.0.0 of a multi-arch template service (linux/amd64 and linux/arm/v7)."""
    top = tmp_path_factory.mktemp("verify-lists")
    with RegistryServer(top / "registry") as registry:
        assert isinstance(registry, RegistryServer)
        repo = make_service(top / "demo-svc", extra="multi-arch = true\npypi = false\n"
                            + RIG_TARGETS)
        repo.tag("2.0.0")
        env = {**clean_env(), **travis_env(tag="2.0.0"),
               **destinations(registry.address, "http://127.0.0.1:9/")}
        result = nox(repo, "-s", "release", env=env)
        assert result.returncode == 0, result.stdout[-3000:]
        client = Registry(f"{registry.address}/{REPO}")
        manifest = client.manifest("2.0.0") or {}
        pushed = Pushed(lists={"2.0.0": {
            _platform(m["platform"]): m["digest"] for m in manifest["manifests"]
            if m["platform"]["os"] != "unknown"}})
        assert sorted(pushed.lists["2.0.0"]) == ["linux/amd64", "linux/arm/v7"]
        yield ListReleased(prepare(repo.path, Options(), env), registry, pushed)


def _platform(spec: dict[str, str]) -> str:
    return "/".join(filter(None, (spec["os"], spec["architecture"], spec.get("variant"))))


def test_an_untouched_list_verifies(list_released: ListReleased) -> None:
    summary = Summary()
    verify(list_released.run, summary, list_released.pushed)
    assert all("WRONG" not in row[2] for row in summary.rows)
    assert any(row[1].endswith(":2.0.0 lists linux/amd64, linux/arm/v7") for row in summary.rows)


def test_a_list_missing_a_platform(list_released: ListReleased) -> None:
    client = Registry(f"{list_released.registry.address}/{REPO}")
    whole = client.digest("2.0.0")
    assert whole is not None
    manifest = client.manifest("2.0.0") or {}
    assert manifest["mediaType"] in LISTS
    amd64 = [m for m in manifest["manifests"] if m["platform"].get("architecture") == "amd64"]
    _put(list_released.registry.address, "2.0.0", {**manifest, "manifests": amd64})
    _put(list_released.registry.address, "latest", {**manifest, "manifests": amd64})
    summary = Summary()
    try:
        with pytest.raises(ReleaseError, match="verification failed") as failed:
            verify(list_released.run, summary, list_released.pushed, attempts=1)
        assert (f"{REPO}:2.0.0 is not the list this run made: no linux/arm/v7 image"
                in str(failed.value)), str(failed.value)
    finally:
        client.tag(whole, "2.0.0")
        client.tag(whole, "latest")
    verify(list_released.run, Summary(), list_released.pushed)  # put back: it verifies


def _put(address: str, tag: str, manifest: dict[str, object]) -> None:
    request = urllib.request.Request(
        f"http://{address}/v2/{REPO}/manifests/{tag}", data=json.dumps(manifest).encode(),
        method="PUT", headers={"Content-Type": str(manifest["mediaType"])})
    urllib.request.urlopen(request).close()
