"""One tag for every platform, arm64, and builds spread over machines (docs/multi-platform.md),
end to end:
`nox` as CI runs it, a real registry on loopback read through its HTTP API independently of the
library, the images run on the real engine (arm under qemu)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from brewblox_release._servers import IndexServer, RegistryServer
from tests.service import (
    BASE_REPO,
    RIG_TARGETS,
    GitRepo,
    destinations,
    github_env,
    image_package_version,
    index_files,
    make_service,
    nox,
    registry_config,
    registry_digest,
    registry_list,
    registry_tags,
)

pytestmark = [pytest.mark.engine, pytest.mark.e2e]
REPO = "brewblox/demo-svc"
ARM64 = f"""
[[tool.brewblox-release.targets]]
name = "arm64"
context = "arm64-docker"
platform = "linux/arm64"
prefix = "rpi-arm64-"
build-args = {{ BASE_IMAGE = "{BASE_REPO}:bookworm-arm64" }}
"""


def _list(address: str, tag: str) -> tuple[str, list[str]]:
    return registry_list(address, REPO, tag)


def _service(path: Path, *, arm64: bool = False) -> GitRepo:
    repo = make_service(path, extra="multi-arch = true\n" + RIG_TARGETS + (ARM64 if arm64
                                                                           else ""))
    if arm64:
        (path / "arm64-docker").mkdir()
        shutil.copy(path / "docker" / "Dockerfile", path / "arm64-docker" / "Dockerfile")
        repo.commit("arm64")
    repo.tag("1.1.0")
    repo.commit("feature")
    return repo


def _nox(repo: GitRepo, env: dict[str, str], *args: str) -> str:
    result = nox(repo, *args, env=env)
    assert result.returncode == 0, result.stdout
    return result.stdout


def test_a_branch_is_one_list_under_both_names(tmp_path: Path, registry: RegistryServer,
                                               index: IndexServer) -> None:
    repo = _service(tmp_path / "demo-svc")
    repo.checkout("-b", "feature/x")
    env = {**github_env(tmp_path, "refs/heads/feature/x"),
           **destinations(registry.address, index.url)}
    out = _nox(repo, env, "-s", "release")
    assert "every tag above is one manifest list of linux/amd64, linux/arm/v7" in out
    digest, platforms = _list(registry.address, "feature-x")
    assert platforms == ["linux/amd64", "linux/arm/v7"]
    assert _list(registry.address, "rpi-feature-x")[0] == digest
    assert registry_tags(registry.address, REPO) == ["feature-x", "rpi-feature-x"]
    ref = f"{registry.address}/{REPO}:feature-x"
    assert image_package_version(ref, "linux/arm/v7") == "1.1.1.dev1"
    assert image_package_version(ref, "linux/amd64") == "1.1.1.dev1"
    assert "lists linux/amd64, linux/arm/v7  ok" in out


def test_latest_moves_to_a_release_and_not_to_a_maintenance_one(
        tmp_path: Path, registry: RegistryServer, index: IndexServer) -> None:
    repo = _service(tmp_path / "demo-svc")
    repo.tag("1.2.0")
    repo.checkout("1.1.0")
    repo.checkout("-b", "maint-1.1")
    repo.commit("backport")
    repo.tag("1.1.1")
    env = destinations(registry.address, index.url)
    repo.checkout("1.2.0")
    _nox(repo, {**env, **github_env(tmp_path, "refs/tags/1.2.0")}, "-s", "release")
    release, platforms = _list(registry.address, "1.2.0")
    assert platforms == ["linux/amd64", "linux/arm/v7"]
    for tag in ("rpi-1.2.0", "latest", "rpi-latest"):
        assert _list(registry.address, tag)[0] == release, tag

    repo.checkout("1.1.1")
    out = _nox(repo, {**env, **github_env(tmp_path, "refs/tags/1.1.1")}, "-s", "release")
    assert "latest stays" in out
    assert _list(registry.address, "1.1.1")[1] == ["linux/amd64", "linux/arm/v7"]
    assert _list(registry.address, "latest")[0] == release
    assert _list(registry.address, "rpi-latest")[0] == release


def test_three_targets_in_one_list(tmp_path: Path, registry: RegistryServer,
                                   index: IndexServer) -> None:
    repo = _service(tmp_path / "demo-svc", arm64=True)
    repo.tag("1.2.0")
    env = {**github_env(tmp_path, "refs/tags/1.2.0"), **destinations(registry.address,
                                                                      index.url)}
    _nox(repo, env, "-s", "release")
    digest, platforms = _list(registry.address, "1.2.0")
    assert platforms == ["linux/amd64", "linux/arm/v7", "linux/arm64"]
    for tag in ("rpi-1.2.0", "rpi-arm64-1.2.0", "latest", "rpi-latest", "rpi-arm64-latest"):
        assert _list(registry.address, tag)[0] == digest, tag
    ref = f"{registry.address}/{REPO}:1.2.0"
    assert image_package_version(ref, "linux/arm64") == "1.2.0"


def _clone(source: GitRepo, path: Path) -> GitRepo:
    subprocess.run(["git", "clone", "-q", str(source.path), str(path)], check=True)
    return GitRepo(path)


def _stage_on_runners(origin: GitRepo, tag: str, env: dict[str, str], records: Path) -> None:
    """One clone per target, as a CI matrix's runners: each builds and stages its target."""
    for target in ("amd64", "arm"):
        runner = _clone(origin, origin.path.parent / f"runner-{target}")
        runner.checkout(tag)
        _nox(runner, env, "-s", "dist", "distcopy")
        _nox(runner, env, "-s", "docker", "--", "--target", target, "--stage", str(records))


def _digests(address: str) -> dict[str, str]:
    return {tag: registry_digest(address, REPO, tag) for tag in registry_tags(address, REPO)}


def test_a_split_build_on_three_runners(tmp_path: Path, registry: RegistryServer,
                                        index: IndexServer) -> None:
    origin = _service(tmp_path / "origin")
    origin.tag("1.2.0")
    records = tmp_path / "records"  # what a CI matrix passes on as artifacts
    env = {**github_env(tmp_path, "refs/tags/1.2.0"), **destinations(registry.address,
                                                                      index.url)}
    _stage_on_runners(origin, "1.2.0", env, records)
    assert sorted(p.name for p in records.iterdir()) == ["amd64.json", "arm.json"]
    assert index_files(index.packages) == [], "a stage publishes no package"
    stages = [f"STAGE-{origin.head[:12]}-amd64", f"STAGE-{origin.head[:12]}-arm"]
    assert registry_tags(registry.address, REPO) == stages, "no tag users pull has changed"
    merger = _clone(origin, tmp_path / "runner-merge")
    merger.checkout("1.2.0")

    # A missing record, then one of another commit: nothing is published.
    missing = tmp_path / "missing"
    missing.mkdir()
    shutil.copy(records / "amd64.json", missing)
    result = nox(merger, "-s", "release", "--", "--merge", str(missing), env=env)
    assert result.returncode != 0
    assert "no record of target arm (linux/arm/v7)" in result.stdout
    other = tmp_path / "other"
    shutil.copytree(records, other)
    record = json.loads((other / "arm.json").read_text())
    (other / "arm.json").write_text(json.dumps({**record, "commit": "0" * 40}))
    result = nox(merger, "-s", "release", "--", "--merge", str(other), env=env)
    assert result.returncode != 0
    assert f"arm.json is of commit {'0' * 40}, not {merger.head}" in result.stdout
    assert index_files(index.packages) == []
    assert registry_tags(registry.address, REPO) == stages

    out = _nox(merger, env, "-s", "release", "--", "--merge", str(records))
    assert index_files(index.packages) == ["demo_svc-1.2.0-py3-none-any.whl",
                                           "demo_svc-1.2.0.tar.gz"]
    digest, platforms = _list(registry.address, "1.2.0")
    assert platforms == ["linux/amd64", "linux/arm/v7"]
    for tag in ("rpi-1.2.0", "latest", "rpi-latest"):
        assert _list(registry.address, tag)[0] == digest
    assert "built" not in out.split("==> publish")[0].lower().replace("built and", "")
    before = _digests(registry.address), index_files(index.packages)
    _nox(merger, env, "-s", "release", "--", "--merge", str(records))
    assert (_digests(registry.address), index_files(index.packages)) == before


def test_a_split_build_without_multi_arch(tmp_path: Path, registry: RegistryServer,
                                           index: IndexServer) -> None:
    origin = make_service(tmp_path / "origin", extra=RIG_TARGETS)
    origin.tag("1.2.0")
    records = tmp_path / "records"
    env = {**github_env(tmp_path, "refs/tags/1.2.0"), **destinations(registry.address,
                                                                      index.url)}
    _stage_on_runners(origin, "1.2.0", env, records)
    assert all(t.startswith("STAGE-") for t in registry_tags(registry.address, REPO))
    merger = _clone(origin, tmp_path / "runner-merge")
    merger.checkout("1.2.0")
    # A record whose image is not in the registry: no target's tags are made.
    lost = tmp_path / "lost"
    shutil.copytree(records, lost)
    record = json.loads((lost / "arm.json").read_text())
    (lost / "arm.json").write_text(json.dumps({**record, "digest": "sha256:" + "0" * 64}))
    result = nox(merger, "-s", "release", "--", "--merge", str(lost), env=env)
    assert result.returncode != 0
    assert f"{REPO}@sha256:{'0' * 64} is not in the registry: stage arm again; nothing was " \
        "published" in result.stdout
    assert all(t.startswith("STAGE-") for t in registry_tags(registry.address, REPO))
    assert index_files(index.packages) == []
    _nox(merger, env, "-s", "release", "--", "--merge", str(records))
    for tag, arch in (("1.2.0", "amd64"), ("latest", "amd64"), ("rpi-1.2.0", "arm"),
                      ("rpi-latest", "arm")):
        assert registry_config(registry.address, REPO, tag)["architecture"] == arch, tag
    assert registry_digest(registry.address, REPO, "latest") == registry_digest(
        registry.address, REPO, "1.2.0")
    assert index_files(index.packages) == ["demo_svc-1.2.0-py3-none-any.whl",
                                           "demo_svc-1.2.0.tar.gz"]


def test_a_multi_arch_docker_session_alone_publishes_nothing(
        tmp_path: Path, registry: RegistryServer, index: IndexServer) -> None:
    repo = _service(tmp_path / "demo-svc")
    repo.checkout("-b", "feature/x")
    env = {**github_env(tmp_path, "refs/heads/feature/x"),
           **destinations(registry.address, index.url)}
    result = nox(repo, "-s", "docker-amd64", env=env)
    assert result.returncode != 0
    assert "the amd64 session alone publishes nothing" in result.stdout
    assert registry_tags(registry.address, REPO) == []


def test_every_buildx_call_names_the_builder(tmp_path: Path, registry: RegistryServer,
                                             index: IndexServer) -> None:
    repo = _service(tmp_path / "demo-svc")
    # A builder made for the test, in the docker config nox() gives the run: buildx offers a
    # docker context as a builder of the `docker` driver, usable from that context (a builder of
    # another driver needs a buildkit image, which cannot be pulled here).
    config = tmp_path / ".docker-config-demo-svc"
    config.mkdir(exist_ok=True)
    docker_env = {**os.environ, "DOCKER_CONFIG": str(config)}
    context = "brewblox-test-builder"
    for argv in (["context", "create", context, "--docker", "host=unix:///var/run/docker.sock"],
                 ["context", "use", context]):
        subprocess.run(["docker", *argv], check=True, capture_output=True, env=docker_env)
    current = subprocess.run(["docker", "buildx", "ls"], capture_output=True, text=True,
                             check=True, env=docker_env).stdout
    assert f"{context}*" in current
    shim = tmp_path / "bin"
    shim.mkdir()
    calls = tmp_path / "docker-calls"
    real = shutil.which("docker")
    (shim / "docker").write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {calls}\n'
                                 f'exec {real} "$@"\n')
    (shim / "docker").chmod(0o755)
    pyproject = repo.path / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace(
        "multi-arch = true\n", f'multi-arch = true\nbuilder = "{context}"\n'))
    repo.commit("builder")
    repo.checkout("-b", "feature/b")
    env = {**github_env(tmp_path, "refs/heads/feature/b"),
           **destinations(registry.address, index.url),
           "PATH": f"{shim}:{os.environ['PATH']}"}
    _nox(repo, env, "-s", "release")
    buildx = [line for line in calls.read_text().splitlines() if line.startswith("buildx ")
              or " buildx " in line]
    assert any(" build " in f" {line} " for line in buildx)
    assert any("imagetools create" in line for line in buildx)
    for line in buildx:
        if line.startswith("buildx ls"):  # python-on-whales' inspect reads the list of all
            continue
        assert f"--builder {context}" in line or f"inspect {context}" in line, line
    assert subprocess.run(["docker", "buildx", "ls"], capture_output=True, text=True,
                          check=True, env=docker_env).stdout == current, "the builder changed"


def test_the_records_must_be_one_per_target_of_this_commit(tmp_path: Path) -> None:
    from brewblox_release._errors import ReleaseError
    from brewblox_release._multiarch import Record, read_records
    from brewblox_release._prepared import Options
    from brewblox_release._release import prepare

    repo = _service(tmp_path / "demo-svc")
    run = prepare(repo.path, Options(ref="refs/heads/feature/x"), {
        "BREWBLOX_RELEASE_IMAGE": "127.0.0.1:5000/brewblox/demo-svc"})
    records = tmp_path / "records"
    good = {t.name: Record(t.name, t.platform, "sha256:" + "a" * 64, run.plan.version,
                           repo.head, "127.0.0.1:5000/brewblox/demo-svc")
            for t in run.config.targets}
    for record in good.values():
        record.write(records)
    assert read_records(run, records) == good
    (records / "s390x.json").write_text(json.dumps({**good["arm"].__dict__, "target": "s390x"}))
    (records / "arm.json").write_text(json.dumps({**good["arm"].__dict__, "version": "9.9"}))
    (records / "amd64.json").write_text("{not json")
    with pytest.raises(ReleaseError) as info:
        read_records(run, records)
    assert "amd64.json: not a stage record" in str(info.value)
    (records / "amd64.json").unlink()
    with pytest.raises(ReleaseError) as info:
        read_records(run, records)
    message = str(info.value)
    assert "no record of target amd64" in message
    assert f"arm.json is of version 9.9, not {run.plan.version}" in message
    assert "s390x.json is the record of no target of this service" in message
    assert message.endswith("nothing was published")
    with pytest.raises(ReleaseError, match="no such directory"):
        read_records(run, tmp_path / "nowhere")


@pytest.mark.parametrize(("name", "schema"), [("github-split.yml", "vendor.github-workflows"),
                                              ("gitlab-ci-split.yml", "vendor.gitlab-ci")])
def test_the_split_ci_definitions_validate(name: str, schema: str) -> None:
    """The matrix definitions of docs/multi-platform.md (one job per target, the records as
    artifacts, one merge job) against the providers' published schemas (check-jsonschema's
    copies)."""
    from importlib import resources

    path = Path(str(resources.files("brewblox_release").joinpath("templates", "ci", name)))
    text = path.read_text()
    assert "--stage records" in text
    assert "--merge records" in text
    result = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema",
                             schema, str(path)], capture_output=True, text=True, check=False,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
