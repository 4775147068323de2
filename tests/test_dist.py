"""Building the package: exact version, reproducible files, pkg/ checks."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from brewblox_release import config, dist, version
from brewblox_release.errors import BuildError
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
    clones = []
    for name in ("a", "b"):
        clone = tmp_path / name
        subprocess.run(["git", "clone", "-q", str(repo.path), str(clone)], check=True)
        (clone / "README.md").touch()  # another mtime, as every CI checkout has
        clones.append(_build(clone))
    assert clones[0] == clones[1]
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
    (pkg / "other-1.0-py3-none-any.whl").write_bytes(b"not ours")
    dist.copy(config.load(repo.path))
    assert outside.read_text() == "outside\n"
    wheel = pkg / "demo_svc-1.2.4.dev1-py3-none-any.whl"
    assert not wheel.is_symlink()
    assert hashlib.sha256(wheel.read_bytes()).hexdigest() == built[wheel.name]
    assert (pkg / "other-1.0-py3-none-any.whl").read_bytes() == b"not ours", "not ours: kept"
