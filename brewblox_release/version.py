"""The version from git, through setuptools_scm, and the checks a publishing run needs.

setuptools_scm computes the version with the service's own ``[tool.setuptools_scm]`` settings;
the local part is always dropped (``local_scheme = "no-local-version"``), because package
indexes refuse it. `dist` then builds with exactly this version (it is passed to the build as
``SETUPTOOLS_SCM_PRETEND_VERSION_FOR_<NAME>``), so the plan, the files and the images agree.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from packaging.version import InvalidVersion, Version

from .errors import VersionError
from .run import CommandError, run

__all__ = ["GitState", "VersionInfo", "compute", "git_state", "pretend_env", "read",
           "require_clean", "unshallow"]


@dataclass(frozen=True)
class GitState:
    """What git says about the checkout."""

    commit: str
    commit_time: int
    branch: str | None
    head_tags: tuple[str, ...]
    shallow: bool
    dirty: tuple[str, ...]
    remotes: tuple[str, ...]


@dataclass(frozen=True)
class VersionInfo:
    """The version of a checkout and the git facts behind it.

    Attributes:
        version: e.g. ``1.2.3`` on a tag, ``1.2.4.dev5`` five commits later.
        is_release: the version is not a dev release.
        distance: commits since the last release tag (the N of ``.devN``; 0 on a tag).
        git: the checkout's state.
    """

    version: str
    git: GitState

    @property
    def is_release(self) -> bool:
        return not Version(self.version).is_devrelease

    @property
    def distance(self) -> int:
        return Version(self.version).dev or 0

    @property
    def shallow(self) -> bool:
        return self.git.shallow

    @property
    def dirty(self) -> bool:
        return bool(self.git.dirty)


def _git(root: Path, *args: str, check: bool = True, strip: bool = True) -> str:
    try:
        result = run(["git", *args], cwd=root, echo=False, stream=False, check=check)
    except CommandError as e:
        raise VersionError(f"git failed in {root}: {e}") from e
    if result.returncode != 0:
        return ""
    return result.output.strip() if strip else result.output


def git_state(root: Path) -> GitState:
    """Read the checkout's commit, branch, tags at HEAD, shallowness and modified files."""
    inside = run(["git", "rev-parse", "--is-inside-work-tree"], cwd=root, echo=False,
                 stream=False, check=False)
    if inside.returncode != 0:
        raise VersionError(f"{root} is not a git checkout: versions come from git tags; "
                           "run from a clone of the service's repository")
    commit = _git(root, "rev-parse", "--verify", "-q", "HEAD", check=False)
    if not commit:
        raise VersionError(f"{root}: the repository has no commit yet; commit and tag first")
    # Porcelain lines are "XY path": stripping the output would eat the first line's X.
    status = _git(root, "status", "--porcelain", "--untracked-files=no", strip=False)
    return GitState(
        commit=commit,
        commit_time=int(_git(root, "log", "-1", "--format=%ct")),
        branch=_git(root, "symbolic-ref", "-q", "--short", "HEAD", check=False) or None,
        head_tags=tuple(_git(root, "tag", "--points-at", "HEAD").split()),
        shallow=_git(root, "rev-parse", "--is-shallow-repository") == "true",
        dirty=tuple(line[3:] for line in status.splitlines() if line.strip()),
        remotes=tuple(_git(root, "remote").split()),
    )


def _plain_scm_log_handler() -> None:
    """Spare vcs_versioning its rich log handler: importing rich costs a twentieth of a second
    of every ``--dry-run``, for warnings that a plain stderr handler prints as well."""
    try:
        from vcs_versioning import _log
    except ImportError:
        return
    if getattr(_log, "_default_handler", "absent") is None and logging.lastResort is not None:
        _log._default_handler = logging.lastResort


@contextlib.contextmanager
def _one_entry_point_scan() -> Iterator[None]:
    """Let setuptools_scm's three entry point lookups share one scan of the installed
    distributions: each scan reads every distribution's entry_points.txt (a thirtieth of a
    second in a large environment, on every ``--dry-run``). The lookups give the same answers."""
    try:
        from vcs_versioning import _entrypoints, _worktree_discovery
    except ImportError:
        yield
        return
    names = [vars(m) for m in (_entrypoints, _worktree_discovery) if "entry_points" in vars(m)]
    everything = importlib.metadata.entry_points()
    saved = [(namespace, namespace["entry_points"]) for namespace in names]
    for namespace in names:
        namespace["entry_points"] = everything.select
    try:
        yield
    finally:
        for namespace, original in saved:
            namespace["entry_points"] = original


def compute(root: Path) -> str:
    """The version setuptools_scm gives the checkout at ``root``, without a local part."""
    from setuptools_scm import _get_version
    from vcs_versioning import VcsEnvironment

    for name in ("vcs_versioning", "setuptools_scm"):  # their debug lines would flood nox's log
        logging.getLogger(name).setLevel(logging.WARNING)
    _plain_scm_log_handler()
    pyproject = root / "pyproject.toml"
    try:
        config = VcsEnvironment.from_env("SETUPTOOLS_SCM").build_config(
            name=pyproject, local_scheme="no-local-version")
        with _one_entry_point_scan():
            version = _get_version(config, force_write_version_files=False)
    except (LookupError, ValueError) as e:
        raise VersionError(f"setuptools_scm cannot compute a version for {root}: {e}") from e
    if version is None:
        raise VersionError(f"setuptools_scm found no version for {root}: is it a git checkout "
                           "with [tool.setuptools_scm] in pyproject.toml?")
    try:
        return str(Version(version))
    except InvalidVersion as e:
        raise VersionError(f"setuptools_scm gave {version!r}, which is not a PEP 440 version")\
            from e


def read(root: Path) -> VersionInfo:
    """The version and git state of the checkout at ``root``."""
    return VersionInfo(compute(root), git_state(root))


def unshallow(root: Path, state: GitState) -> None:
    """Fetch the full history and the tags of a shallow clone, or say how to get them."""
    how = ("make a full clone: `git fetch --unshallow --tags`, or in GitHub Actions "
           "actions/checkout with `fetch-depth: 0`")
    if not state.remotes:
        raise VersionError(f"{root} is a shallow clone with no remote to fetch the history "
                           f"from, so the version cannot be computed; {how}")
    remote = "origin" if "origin" in state.remotes else state.remotes[0]
    try:
        run(["git", "fetch", "--unshallow", "--tags", "--quiet", remote], cwd=root)
    except CommandError as e:
        raise VersionError(f"{root} is a shallow clone and fetching its history failed; {how}\n"
                           f"{e}") from e


def require_clean(root: Path, state: GitState) -> None:
    """Refuse to publish from a tree whose tracked files differ from the commit."""
    if state.dirty:
        shown = ", ".join(state.dirty[:10]) + (" ..." if len(state.dirty) > 10 else "")
        raise VersionError(
            f"{root}: tracked files differ from the commit, so the version would not describe "
            f"what is published: {shown}. Commit or stash them, or pass --allow-dirty")


def pretend_env(name: str, version: str) -> dict[str, str]:
    """The environment that makes a setuptools_scm build use exactly ``version``."""
    normalized = re.sub(r"[-_.]+", "_", name).upper()
    return {f"SETUPTOOLS_SCM_PRETEND_VERSION_FOR_{normalized}": version}
