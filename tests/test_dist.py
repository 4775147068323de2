"""Building the package: exact version, reproducible files, pkg/ checks."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import warnings
import zipfile
from pathlib import Path

import pytest

from brewblox_release import _config as config, _dist as dist, _version as version
from brewblox_release._errors import BuildError
from tests.service import GitRepo, make_service


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    repo = make_service(tmp_path / "svc")
    repo.tag("1.2.3")
    repo.commit("one")
    return repo


def _build(path: Path) -> dict[str, str]:
    cfg = config.load(path)
    info = version.read(cfg.root)
    files = dist.build(cfg, info.version, source_date_epoch=info.git.commit_time)
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


def test_two_clones_build_identical_files(repo: GitRepo, tmp_path: Path) -> None:
    """Another checkout of the same commit builds the same bytes: whatever its files' times
    (a reused workspace keeps old ones) and its umask, so a re-run elsewhere completes a
    release whose sdist is already on the index."""
    clones = []
    for name in ("a", "b"):
        clone = tmp_path / name
        subprocess.run(["git", "clone", "-q", str(repo.path), str(clone)], check=True)
        (clone / "README.md").touch()  # another mtime, as every CI checkout has
        clones.append(_build(clone))
    for name, mode in (("old", 0o020), ("private", 0)):  # as under umask 002, and 077
        clone = tmp_path / name
        subprocess.run(["git", "clone", "-q", str(repo.path), str(clone)], check=True)
        for path in clone.rglob("*"):
            if ".git" not in path.parts:
                bits = path.stat().st_mode
                path.chmod(bits | mode if mode else bits & 0o700)
                os.utime(path, (1_000_000_000, 1_000_000_000))  # older than the commit
        clones.append(_build(clone))
    assert clones[0] == clones[1] == clones[2] == clones[3]
    assert sorted(clones[0]) == ["demo_svc-1.2.4.dev1-py3-none-any.whl",
                                 "demo_svc-1.2.4.dev1.tar.gz"]


def test_check_context_refuses_a_stale_or_missing_wheel(repo: GitRepo) -> None:
    cfg = config.load(repo.path)
    target = cfg.target("amd64")
    with pytest.raises(BuildError, match="holds 0 wheels"):
        dist.check_context(cfg, target, "1.2.4.dev1")
    _build(repo.path)
    dist.copy(cfg)
    assert dist.check_context(cfg, target, "1.2.4.dev1").name.startswith("demo_svc-1.2.4.dev1")
    with pytest.raises(BuildError, match="stale package"):
        dist.check_context(cfg, target, "1.2.4.dev2")


def test_copy_without_dist_says_what_to_run(repo: GitRepo) -> None:
    with pytest.raises(BuildError, match="run `nox -s dist` first"):
        dist.copy(config.load(repo.path))


def test_copy_replaces_a_link_and_never_writes_through_it(repo: GitRepo, tmp_path: Path) -> None:
    # A link under the distribution's own name in pkg/ (a checkout's leftover, or planted):
    # the link goes, what it points at outside the service stays as it was.
    outside = tmp_path / "outside.txt"
    outside.write_text("outside\n")
    built = _build(repo.path)
    pkg = repo.path / "docker" / "pkg"
    pkg.mkdir()
    (pkg / "demo_svc-1.2.4.dev1-py3-none-any.whl").symlink_to(outside)
    (pkg / "notes.txt").write_bytes(b"not ours")
    dist.copy(config.load(repo.path))
    assert outside.read_text() == "outside\n"
    wheel = pkg / "demo_svc-1.2.4.dev1-py3-none-any.whl"
    assert not wheel.is_symlink()
    assert hashlib.sha256(wheel.read_bytes()).hexdigest() == built[wheel.name]
    assert (pkg / "notes.txt").read_bytes() == b"not ours", "not ours: kept"


def test_a_wheel_of_another_project_in_pkg_is_named_and_kept(repo: GitRepo) -> None:
    """The image would install it, and distcopy removes only the service's own files: both
    distcopy and the docker sessions name it, and say to remove it (no traceback for an empty
    one); a wheel of the service's that is no zip is named too."""
    cfg = config.load(repo.path)
    _build(repo.path)
    pkg = repo.path / "docker" / "pkg"
    pkg.mkdir()
    (pkg / "aaa-0.1-py3-none-any.whl").write_bytes(b"")
    for check in (lambda: dist.copy(cfg),
                  lambda: dist.check_context(cfg, cfg.target("amd64"), "1.2.4.dev1")):
        with pytest.raises(BuildError, match=r"docker/pkg/ holds aaa-0.1-py3-none-any.whl, not "
                                             r"demo-svc's: the image would install it; remove it"):
            check()
    assert (pkg / "aaa-0.1-py3-none-any.whl").exists()
    (pkg / "aaa-0.1-py3-none-any.whl").unlink()
    wheel = next((repo.path / "dist").glob("*.whl"))
    wheel.write_bytes(b"cut short")
    with pytest.raises(BuildError, match=rf"pkg/{wheel.name} is not a wheel \(File is not a zip"):
        dist.copy(cfg)


#: A setup.py that records, for each process that runs it (a hook's), its command line and what
#: the hook sees: its directory, backend and version (a line of JSON each); it fails when asked.
RECORDING_SETUP = """\
import json
import os
from pathlib import Path

from setuptools import setup

seen = {"cmdline": Path("/proc/self/cmdline").read_bytes().replace(b"\\0", b" ").decode(),
        "cwd": Path.cwd().name, "backend": os.environ["_PYPROJECT_HOOKS_BUILD_BACKEND"],
        "version": os.environ["SETUPTOOLS_SCM_PRETEND_VERSION_FOR_DEMO_SVC"]}
with open(os.environ["HOOK_LOG"], "a") as log:
    log.write(json.dumps(seen) + "\\n")
if os.environ.get("HOOK_FAILS"):
    raise SystemExit("this hook fails on purpose")
setup()
"""


def _recorded(log: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


@pytest.fixture
def recording(repo: GitRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    repo.commit("a setup.py that records its processes", files={"setup.py": RECORDING_SETUP})
    log = tmp_path / "hooks.log"
    monkeypatch.setenv("HOOK_LOG", str(log))
    return log


def test_each_hook_runs_in_its_own_process_of_the_kept_environment(
        repo: GitRepo, recording: Path) -> None:
    cfg = config.load(repo.path)
    info = version.read(cfg.root)
    files = dist.build(cfg, info.version, source_date_epoch=info.git.commit_time)
    # As pypa/build: the sdist from the project, the wheel from the unpacked sdist, each hook in
    # a process of pyproject_hooks' own script, the version handed to both.
    own = _recorded(recording)[-2:]
    assert [seen["cmdline"].split()[2] for seen in own] == ["build_sdist", "build_wheel"]
    assert all("_in_process.py" in seen["cmdline"] for seen in own)
    assert [seen["cwd"] for seen in own] == ["svc", f"demo_svc-{info.version}"]
    assert sorted(f.name for f in files) == [f"demo_svc-{info.version}-py3-none-any.whl",
                                             f"demo_svc-{info.version}.tar.gz"]


def test_a_failing_hook_fails_in_its_own_words(
        repo: GitRepo, recording: Path, monkeypatch: pytest.MonkeyPatch,
        capfd: pytest.CaptureFixture[str]) -> None:
    cfg = config.load(repo.path)
    info = version.read(cfg.root)
    monkeypatch.setenv("HOOK_FAILS", "1")
    with pytest.raises(BuildError, match="build_sdist exited with 1") as failed:
        dist.build(cfg, info.version)
    assert "this hook fails on purpose" in capfd.readouterr().err
    assert "nothing was published" in str(failed.value)
    assert dist.own_files(cfg.root / cfg.dist_dir, cfg.name) == []


def test_dry_run_says_what_copy_does(tmp_path: Path) -> None:
    # A seed-style Dockerfile takes the wheel alone; a context that holds dist/ takes nothing.
    extra = """
[[tool.brewblox-release.targets]]
name = "amd64"
context = "docker"
platform = "linux/amd64"

[[tool.brewblox-release.targets]]
name = "root"
context = "."
platform = "linux/arm64"
prefix = "arm64-"
"""
    repo = make_service(tmp_path / "svc", extra=extra)
    repo.tag("1.2.3")
    (repo.path / "docker" / "Dockerfile").write_text("FROM python\nRUN pip3 install /pkg/*\n")
    (repo.path / "Dockerfile").write_text("FROM python\nCOPY dist/ /dist/\n")
    repo.commit("seed-style Dockerfile")
    _build(repo.path)
    cfg = config.load(repo.path)
    said = dist.describe_copy(cfg).splitlines()
    copied = dist.copy(cfg)
    assert [p.relative_to(repo.path).as_posix() for p in copied] == [
        "docker/pkg/demo_svc-1.2.4.dev1-py3-none-any.whl"]
    assert said == [
        "distcopy: would copy demo_svc-1.2.4.dev1-py3-none-any.whl to docker/pkg/",
        "distcopy: root: its context ./ holds dist/, which its Dockerfile builds from: "
        "nothing to copy"]


def _service(path: Path, pyproject: str, files: dict[str, str]) -> GitRepo:
    repo = GitRepo(path).init()
    for name, text in {"pyproject.toml": pyproject, **files}.items():
        repo.write(name, text)
    repo.commit("a service")
    repo.tag("0.1.0")
    repo.commit("after the release")
    return repo


@pytest.mark.process  # installs the backends into kept build environments
def test_a_stamped_setuptools_build_keeps_the_data_setuptools_scm_finds(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """setuptools-scm finds package data through git: the stamped copy is a repository of its
    files, so the wheel holds what a build of the checkout holds; made with none of the user's
    git configuration (here a failing hook, commit signing and a refusal of mixed line ends)."""
    repo = _service(tmp_path / "svc", """\
[build-system]
requires = ["setuptools>=64", "setuptools-scm>=8"]
build-backend = "setuptools.build_meta"

[project]
name = "data-svc"
version = "0.0.0"

[tool.setuptools]
packages = ["data_svc"]
include-package-data = true

[tool.brewblox-release]
stamp-version = true
""", {"data_svc/__init__.py": "", "data_svc/data.json": "{}\n", "data_svc/mixed.txt": "a\r\nb\n"})
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "pre-commit").write_text("#!/bin/sh\nexit 1\n")
    (hooks / "pre-commit").chmod(0o755)
    (tmp_path / "gitconfig").write_text(f"[core]\n\tautocrlf = true\n\tsafecrlf = true\n"
                                        f"\thooksPath = {hooks}\n[commit]\n\tgpgsign = true\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "gitconfig"))
    cfg = config.load(repo.path)
    (wheel,) = [f for f in dist.build(cfg, "0.1.1.dev1") if f.suffix == ".whl"]
    assert wheel.name == "data_svc-0.1.1.dev1-py3-none-any.whl"
    assert "data_svc/data.json" in zipfile.ZipFile(wheel).namelist()


@pytest.mark.process
def test_a_uv_build_service_is_built(tmp_path: Path) -> None:
    """uv_build runs the uv-build program of its build environment, which is on PATH."""
    repo = _service(tmp_path / "svc", """\
[build-system]
requires = ["uv_build>=0.7,<0.10"]
build-backend = "uv_build"

[project]
name = "uvb-svc"
version = "0.1.0"
requires-python = ">=3.10"

[tool.brewblox-release]
stamp-version = true
""", {"src/uvb_svc/__init__.py": ""})
    files = dist.build(config.load(repo.path), "0.1.1.dev1")
    assert sorted(f.name for f in files) == ["uvb_svc-0.1.1.dev1-py3-none-any.whl",
                                             "uvb_svc-0.1.1.dev1.tar.gz"]


@pytest.mark.process
def test_a_backend_that_ignores_the_version_says_where_it_should_come_from(
        tmp_path: Path) -> None:
    """poetry-dynamic-versioning enabled, but poetry-core's own backend builds: 0.0.0 files are
    named and removed, so nothing copies or uploads them."""
    repo = _service(tmp_path / "svc", """\
[build-system]
requires = ["poetry-core>=1.0.0", "poetry-dynamic-versioning>=1.0.0,<2.0.0"]
build-backend = "poetry.core.masonry.api"

[tool.poetry]
name = "pdv-svc"
version = "0.0.0"
description = "x"
authors = ["BrewPi <development@brewpi.com>"]
packages = [{ include = "pdv_svc" }]

[tool.poetry-dynamic-versioning]
enable = true
""", {"pdv_svc/__init__.py": ""})
    with pytest.raises(BuildError, match=r"has version 0\.0\.0, not 0\.1\.1\.dev1: the build did "
                                         r"not take the version from \[tool.poetry-dynamic-ver"):
        dist.build(config.load(repo.path), "0.1.1.dev1")
    assert not list((repo.path / "dist").iterdir())


def test_a_version_file_the_backend_writes_is_put_back(tmp_path: Path) -> None:
    """setuptools_scm writes ``version_file`` into the checkout it builds: a tracked one is put
    back as committed, so the tree stays clean and the next version is the same."""
    repo = make_service(tmp_path / "svc")
    text = (repo.path / "pyproject.toml").read_text()
    setting = 'version_file = "demo_svc/_version.py"\n'
    repo.write("pyproject.toml", text.replace("[tool.setuptools_scm]\n",
                                              f"[tool.setuptools_scm]\n{setting}"))
    repo.write("demo_svc/_version.py", "__version__ = '0.0.0'  # written by the build\n")
    repo.commit("a version file, tracked")
    repo.tag("1.2.3")
    repo.commit("one more")
    assert version.read(repo.path).version == "1.2.4.dev1"
    with warnings.catch_warnings():  # setuptools_scm's own advice: do not track it
        warnings.simplefilter("ignore")
        assert _build(repo.path)
    assert repo.git("status", "--porcelain").strip() == "", "the checkout is as it was"
    repo.tag("1.2.4")
    assert version.read(repo.path).version == "1.2.4"
