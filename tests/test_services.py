"""Real services as they are (docs/versions.md; issue: real services), released end to end with
`nox -s release` as CI runs it, against one pypiserver and one registry on loopback shared by
the module (each service has a distribution and an image repository of its own): a dev release
on a branch push, a release on a tag push, the images holding the version and ``pip install``
resolving as docs/how-it-works.md says.

The services (tests/samples.py): a setup.py of 2018 without ``[project]``; a setup.cfg;
hatchling with hatch-vcs; PEP 621 without a README; a monorepo of two services; a Dockerfile
of the seed's kind, amd64 and arm/v7. The others build amd64 only: an arm image shows nothing
more about how a project declares its name and version.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from email.parser import HeaderParser
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from brewblox_release._servers import IndexServer, RegistryServer
from tests import samples
from tests.service import (
    GitRepo,
    destinations,
    github_env,
    image_package_version,
    index_files,
    nox,
    registry_digest,
    registry_list,
    registry_tags,
    travis_env,
)

pytestmark = [pytest.mark.engine, pytest.mark.e2e]


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, engine: None) -> Iterator[RegistryServer]:
    with RegistryServer(tmp_path_factory.mktemp("registry")) as server:
        assert isinstance(server, RegistryServer)
        yield server


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IndexServer]:
    with IndexServer(tmp_path_factory.mktemp("index")) as server:
        assert isinstance(server, IndexServer)
        yield server


def _release(where: GitRepo | Path, env: dict[str, str]) -> str:
    result = nox(where, "-s", "release", env=env)
    assert result.returncode == 0, result.stdout
    return result.stdout


def _holds(out: str, name: str, version: str) -> int:
    """How many images the release's own verification found holding ``name`` ``version``."""
    return len(re.findall(rf"holds {re.escape(name)} {re.escape(version)}\s+ok", out))


def _files(index: IndexServer, name: str) -> list[str]:
    prefix = canonicalize_name(name).replace("-", "_") + "-"
    return [f for f in index_files(index.packages) if f.startswith(prefix)]


def _pip(index: IndexServer, name: str, tmp: Path, *, pre: bool = False) -> str:
    """The version a plain ``pip download NAME`` (``--pre`` optionally) picks from the index."""
    dest = tmp / f"pip-{name}-{'pre' if pre else 'final'}"
    argv = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir", "--quiet",
            "--index-url", index.simple_url, "--dest", str(dest), name]
    subprocess.run(argv + (["--pre"] if pre else []), check=True, capture_output=True,
                   env={"PATH": "/usr/bin:/bin", "HOME": str(tmp), "PIP_CONFIG_FILE": "/dev/null"})
    wheel = next(dest.glob("*.whl"))
    return wheel.name.split("-")[1]


def _tracked(repo: GitRepo) -> str:
    """Every tracked file's hash, and the tracked files that differ from the commit."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=repo.path, capture_output=True, text=True,
                              check=True).stdout

    return git("ls-files", "-s") + git("status", "--porcelain", "--untracked-files=no")


def _sdist_version(index: IndexServer, wheel: str, version: str) -> str:
    """The ``Version`` of the sdist's PKG-INFO, as the index holds it."""
    with tarfile.open(index.packages / f"{wheel}-{version}.tar.gz") as sdist:
        info = sdist.extractfile(f"{wheel}-{version}/PKG-INFO")
        assert info is not None
        return HeaderParser().parsestr(info.read().decode())["Version"]


def _branch_then_tag(repo: GitRepo, where: Path, name: str, tag: str, *, final: str, dev: str,
                     registry: RegistryServer, index: IndexServer, tmp: Path) -> tuple[str, str]:
    """The commit after ``tag`` pushed to branch ``feature/x`` (a dev release), then ``tag``
    pushed (a release); returns both outputs after checking index, registry and images, and
    that no tracked file of the checkout changed."""
    image = f"brewblox/{name}"
    dest = destinations(registry.address, index.url, image=image)
    wheel = canonicalize_name(name).replace("-", "_")

    repo.checkout("-b", "feature/x")
    before = _tracked(repo)
    branch_out = _release(where, {**github_env(tmp, "refs/heads/feature/x",
                                                repository=image), **dest})
    assert _tracked(repo) == before
    assert _files(index, name) == [f"{wheel}-{dev}-py3-none-any.whl", f"{wheel}-{dev}.tar.gz"]
    assert _sdist_version(index, wheel, dev) == dev
    assert registry_tags(registry.address, image) == ["feature-x"]
    assert _holds(branch_out, name, dev) == 1

    repo.checkout(tag)  # CI checks the tag out: a detached HEAD
    before = _tracked(repo)
    tag_out = _release(where, {**travis_env(tag=tag), **dest})
    assert _tracked(repo) == before
    assert _sdist_version(index, wheel, final) == final
    assert f"{wheel}-{final}-py3-none-any.whl" in _files(index, name)
    assert f"{wheel}-{final}.tar.gz" in _files(index, name)
    assert registry_tags(registry.address, image) == sorted([final, "feature-x", "latest"])
    assert registry_digest(registry.address, image, "latest") == \
        registry_digest(registry.address, image, final)
    assert _holds(tag_out, name, final) == 1
    assert re.search(rf"pip install {re.escape(name)} -> {re.escape(final)}\s+ok", tag_out)
    assert image_package_version(f"{registry.address}/{image}:latest", "linux/amd64",
                                 name) == final
    assert _pip(index, name, tmp) == final
    assert _pip(index, name, tmp, pre=True) == dev
    return branch_out, tag_out


def test_a_setup_py_service_of_2018(registry: RegistryServer, index: IndexServer,
                                    tmp_path: Path) -> None:
    repo = samples.setup_py_service(tmp_path / "legacy-svc")
    repo.tag("0.10.0")
    repo.commit("a fix")
    branch_out, tag_out = _branch_then_tag(
        repo, repo.path, "legacy-svc", "0.10.0", final="0.10.0", dev="0.10.1.dev1",
        registry=registry, index=index, tmp=tmp_path)
    # The README is long_description without a content type: a warning, shown, not a failure.
    assert "`long_description_content_type` missing" in tag_out
    assert "[project] name is required" not in branch_out


def test_a_setup_cfg_service(registry: RegistryServer, index: IndexServer,
                             tmp_path: Path) -> None:
    repo = samples.setup_cfg_service(tmp_path / "cfg-svc")
    repo.tag("1.4.0")
    repo.commit("a fix")
    repo.commit("another")
    _branch_then_tag(repo, repo.path, "cfg-svc", "1.4.0", final="1.4.0", dev="1.4.1.dev2",
                     registry=registry, index=index, tmp=tmp_path)


def test_a_hatchling_hatch_vcs_service(registry: RegistryServer, index: IndexServer,
                                       tmp_path: Path) -> None:
    repo = samples.hatch_service(tmp_path / "hatch-svc")
    repo.tag("v2.1.0")
    repo.commit("a fix")
    _branch_then_tag(repo, repo.path, "hatch-svc", "v2.1.0", final="2.1.0", dev="2.1.1.dev1",
                     registry=registry, index=index, tmp=tmp_path)


def test_a_pep621_service_without_a_readme(registry: RegistryServer, index: IndexServer,
                                           tmp_path: Path) -> None:
    repo = samples.readme_less_service(tmp_path / "bare-svc")
    repo.tag("0.3.0")
    repo.commit("a fix")
    _, tag_out = _branch_then_tag(
        repo, repo.path, "bare-svc", "0.3.0", final="0.3.0", dev="0.3.1.dev1",
        registry=registry, index=index, tmp=tmp_path)
    assert "`long_description` missing" in tag_out  # shown; PyPI accepts it


def test_a_monorepo_releases_each_service_from_its_own_tags(
        registry: RegistryServer, index: IndexServer, tmp_path: Path) -> None:
    repo = samples.monorepo(tmp_path / "mono")
    a, b = repo.path / "services" / "a", repo.path / "services" / "b"
    repo.tag("a-1.0.0")
    repo.commit("work on b", files={"services/b/svc_b/more.py": "X = 1\n"})
    repo.tag("b-2.0.0")  # nearer to HEAD than a's tag: a's version must not come from it
    repo.commit("work on a", files={"services/a/svc_a/more.py": "X = 1\n"})

    # b's tag pushed: a's build of it publishes nothing (cheap to show with `version`).
    repo.checkout("b-2.0.0")
    out = nox(a, "-s", "version", env={**travis_env(tag="b-2.0.0"), **destinations(
        registry.address, index.url, image="brewblox/svc-a")})
    assert out.returncode == 0, out.stdout
    assert "tag b-2.0.0 is not a release tag of svc-a" in out.stdout
    assert "index:   nothing" in out.stdout
    assert "1.0.1.dev1" in out.stdout, "a's version, counted from a's own tag"

    # b's tag build releases b, and nothing of a.
    out_b = _release(b, {**travis_env(tag="b-2.0.0"),
                         **destinations(registry.address, index.url, image="brewblox/svc-b")})
    assert _holds(out_b, "svc-b", "2.0.0") == 1
    assert _files(index, "svc-b") == ["svc_b-2.0.0-py3-none-any.whl", "svc_b-2.0.0.tar.gz"]
    assert _files(index, "svc-a") == []
    assert registry_tags(registry.address, "brewblox/svc-a") == []
    assert registry_tags(registry.address, "brewblox/svc-b") == ["2.0.0", "latest"]

    # a's branch build (its dev version: two commits after a-1.0.0), then a's tag build.
    repo.checkout("main")
    _branch_then_tag(repo, a, "svc-a", "a-1.0.0", final="1.0.0", dev="1.0.1.dev2",
                     registry=registry, index=index, tmp=tmp_path)
    assert _files(index, "svc-b") == ["svc_b-2.0.0-py3-none-any.whl", "svc_b-2.0.0.tar.gz"]
    assert registry_tags(registry.address, "brewblox/svc-b") == ["2.0.0", "latest"]


def test_a_seed_style_dockerfile_builds_as_it_is(registry: RegistryServer, index: IndexServer,
                                                 tmp_path: Path) -> None:
    # No ARG BASE_IMAGE, no ARG at all: the build args it does not declare are no error, and
    # pip3 install /pkg/* installs exactly the wheel just built, on amd64 and arm/v7.
    repo = samples.seed_docker_service(tmp_path / "seed-svc")
    repo.tag("1.1.0")
    repo.commit("a fix")
    repo.checkout("-b", "feature/x")
    image = "brewblox/seed-svc"
    dest = destinations(registry.address, index.url, image=image)
    out = _release(repo, {**github_env(tmp_path, "refs/heads/feature/x", repository=image),
                          **dest})
    assert _holds(out, "seed-svc", "1.1.1.dev1") == 2, "both images"
    assert registry_tags(registry.address, image) == ["feature-x", "rpi-feature-x"]
    assert sorted(p.name for p in (repo.path / "docker" / "pkg").iterdir()) == [
        "seed_svc-1.1.1.dev1-py3-none-any.whl"]

    repo.checkout("1.1.0")
    out = _release(repo, {**travis_env(tag="1.1.0"), **dest})
    assert _holds(out, "seed-svc", "1.1.0") == 2, "both images"
    assert registry_tags(registry.address, image) == [
        "1.1.0", "feature-x", "latest", "rpi-1.1.0", "rpi-feature-x", "rpi-latest"]
    for ref, platform in ((f"{image}:latest", "linux/amd64"),
                          (f"{image}:rpi-latest", "linux/arm/v7")):
        assert image_package_version(f"{registry.address}/{ref}", platform,
                                     "seed-svc") == "1.1.0"
    assert registry_digest(registry.address, image, "rpi-latest") == \
        registry_digest(registry.address, image, "rpi-1.1.0")
    assert _pip(index, "seed-svc", tmp_path) == "1.1.0"


# --- the backends most of the field builds with today --------------------------------------------

@pytest.mark.parametrize(("make", "name", "tag", "final", "dev"), [
    (samples.poetry_core_service, "poetry-svc", "1.3.0", "1.3.0", "1.3.1.dev1"),
    (samples.poetry_dynamic_versioning_service, "pdv-svc", "v0.5.0", "0.5.0", "0.5.1.dev1"),
    (samples.pdm_scm_service, "pdm-svc", "v2.0.0", "2.0.0", "2.0.1.dev1"),
    (samples.flit_service, "flit-svc", "0.9.0", "0.9.0", "0.9.1.dev1"),
    (samples.uv_dynamic_versioning_service, "uvdv-svc", "v3.1.0", "3.1.0", "3.1.1.dev1"),
])
def test_a_service_of_another_backend(registry: RegistryServer, index: IndexServer,
                                      tmp_path: Path, *, make: object, name: str, tag: str,
                                      final: str, dev: str) -> None:
    # The version from git, handed to the backend (or stamped into a copy): the wheel, the sdist
    # and the image hold it, and no tracked file of the checkout changed.
    assert callable(make)
    repo: GitRepo = make(tmp_path / name)
    repo.tag(tag)
    repo.commit("a fix")
    _branch_then_tag(repo, repo.path, name, tag, final=final, dev=dev, registry=registry,
                     index=index, tmp=tmp_path)


def test_a_static_version_without_stamp_version_is_one_line(tmp_path: Path) -> None:
    repo = samples.poetry_core_service(tmp_path / "poetry-svc")
    text = (repo.path / "pyproject.toml").read_text().replace(samples.STAMP, "")
    repo.commit("no stamp-version", files={"pyproject.toml": text})
    for session in ("version", "dist", "release"):
        result = nox(repo, "-s", session)
        assert result.returncode != 0
        assert "[tool.poetry] version = '1.0.0' is static, so the build would not take its " \
            "version from git: set stamp-version = true" in result.stdout
        assert "Traceback" not in result.stdout
    assert not (repo.path / "dist").exists()


def test_a_brewblox_service_of_2024(registry: RegistryServer, index: IndexServer,
                                    tmp_path: Path) -> None:
    # poetry-core with a static version, not on PyPI, a root Dockerfile that builds from dist/,
    # three platforms under one tag: a branch push makes one list of the three, no rpi- tag.
    name, image = "brewblox-svc", "brewblox/brewblox-svc"
    repo = samples.brewblox_2024_service(tmp_path / name)
    repo.tag("0.7.0")
    repo.commit("a fix")
    repo.checkout("-b", "feature/x")
    dest = destinations(registry.address, index.url, image=image)
    before = _tracked(repo)
    out = _release(repo, {**github_env(tmp_path, "refs/heads/feature/x", repository=image),
                          **dest})
    assert _tracked(repo) == before
    assert sorted(p.name for p in (repo.path / "dist").iterdir()) == [
        "brewblox_svc-0.7.1.dev1-py3-none-any.whl", "brewblox_svc-0.7.1.dev1.tar.gz"]
    assert not (repo.path / "pkg").exists(), "the Dockerfile builds from dist/"
    assert _files(index, name) == [], "pypi = false"
    # Each platform staged under a tag of its own (they share feature-x), then one list.
    assert [t for t in registry_tags(registry.address, image)
            if not t.startswith("STAGE-")] == ["feature-x"]
    _, listed = registry_list(registry.address, image, "feature-x")
    assert listed == ["linux/amd64", "linux/arm/v7", "linux/arm64"]
    for platform in listed:
        assert image_package_version(f"{registry.address}/{image}:feature-x", platform,
                                     name) == "0.7.1.dev1"
    assert "rpi-" not in " ".join(registry_tags(registry.address, image))

    repo.checkout("0.7.0")
    before = _tracked(repo)
    out = _release(repo, {**travis_env(tag="0.7.0"), **dest})
    assert _tracked(repo) == before
    tags = [t for t in registry_tags(registry.address, image) if not t.startswith("STAGE-")]
    assert tags == ["0.7.0", "feature-x", "latest"]
    assert registry_list(registry.address, image, "latest") == \
        registry_list(registry.address, image, "0.7.0")
    assert registry_list(registry.address, image, "latest")[1] == [
        "linux/amd64", "linux/arm/v7", "linux/arm64"]
    assert image_package_version(f"{registry.address}/{image}:latest", "linux/arm64",
                                 name) == "0.7.0"
    assert "verification failed" not in out
