"""The version from git, once, through setuptools_scm's public API, and the checks a publishing
run needs (docs/versions.md). Refs are read by their full names: git's short ones are ambiguous
when a branch is called like a tag (``1.2.3``) or a tag like a branch (``main``)."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.version import InvalidVersion, Version

from ._config import _table
from ._errors import VersionError
from ._project import VersionSource, read_pyproject, version_source
from ._run import CommandError, run

if TYPE_CHECKING:
    from vcs_versioning import ScmVersion


#: What a run that does not fetch the full history says of a shallow clone.
SHALLOW_WARNING = ("warning: shallow clone: the version may be wrong (a publishing run fetches "
                   "the full history)")


@dataclass(frozen=True)
class GitState:
    commit: str
    commit_time: int
    branch: str | None
    head_tags: tuple[str, ...]
    shallow: bool
    dirty: tuple[str, ...]
    remotes: tuple[str, ...]


@dataclass(frozen=True)
class VersionInfo:
    """A checkout's version (``1.2.3`` on a tag, ``1.2.4.dev5`` five commits on) and git state."""

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
    inside = run(["git", "rev-parse", "--is-inside-work-tree"], cwd=root, echo=False,
                 stream=False, check=False)
    if inside.returncode != 0:
        # git's own reason: not a repository, or another owner's (a container's mounted workspace)
        why = next((line.removeprefix("fatal: ") for line in inside.lines if line.strip()),
                   f"git exited with {inside.returncode}")
        raise VersionError(f"git cannot read {root} as a checkout: {why}. Versions come from "
                           "git tags: run from a clone of the service's repository that git "
                           "accepts (`git config --global --add safe.directory DIR` for a "
                           "checkout of another owner)")
    commit = _git(root, "rev-parse", "--verify", "-q", "HEAD", check=False)
    if not commit:
        raise VersionError(f"{root}: the repository has no commit yet; commit and tag first")
    # Porcelain lines are "XY path": stripping the output would eat the first line's X.
    status = _git(root, "status", "--porcelain", "--untracked-files=no", strip=False)
    head = _git(root, "symbolic-ref", "-q", "HEAD", check=False)
    tag_refs = _git(root, "for-each-ref", "--points-at", "HEAD", "--format=%(refname)",
                    "refs/tags/")
    return GitState(
        commit=commit,
        commit_time=int(_git(root, "log", "-1", "--format=%ct")),
        branch=head.removeprefix("refs/heads/") if head.startswith("refs/heads/") else None,
        # git's warnings (a broken ref) come on the same stream: refs only.
        head_tags=tuple(sorted(ref.removeprefix("refs/tags/") for ref in tag_refs.splitlines()
                               if ref.startswith("refs/tags/"))),
        shallow=_git(root, "rev-parse", "--is-shallow-repository") == "true",
        dirty=tuple(line[3:] for line in status.splitlines() if line.strip()),
        remotes=tuple(_git(root, "remote").split()),
    )


def _with_branch(scheme: object, branch: str) -> Callable[[ScmVersion], str | None]:
    """The service's version scheme, given the branch CI names: a checkout CI made of a commit
    (GitLab, Travis) is on no branch for ``semver-pep440``."""
    names = [scheme] if isinstance(scheme, str) else scheme if isinstance(scheme, list) \
        else ["guess-next-dev"]
    schemes = [entry.load() for name in names
               for entry in entry_points(group="setuptools_scm.version_scheme", name=str(name))]

    def scheme_with_branch(version: ScmVersion) -> str | None:
        version = replace(version, branch=branch)
        return next(filter(None, (each(version) for each in schemes)), None)

    return scheme_with_branch


def compute(root: Path, name: str | None = None, *, source: VersionSource | None = None,
            branch: str | None = None) -> str:
    """The version setuptools_scm gives the checkout at ``root`` with its ``source``'s settings,
    without a local part; ``name`` defaults to a static ``[project] name``."""
    from vcs_versioning import PyProjectData, VcsEnvironment, infer_version_string

    for logger in ("vcs_versioning", "setuptools_scm"):  # their debug lines would flood nox's log
        logging.getLogger(logger).setLevel(logging.WARNING)
    data = read_pyproject(root) if source is None or name is None else {}
    source = source or version_source(root, data)
    name = name or (_table(data, "project") or {}).get("name")
    settings: dict[str, Any] = {**copy.deepcopy(dict(source.settings)),
                                "local_scheme": "no-local-version",
                                "relative_to": str(root / "pyproject.toml")}
    if branch:
        settings["version_scheme"] = _with_branch(settings.get("version_scheme"), branch)
    try:
        version = infer_version_string(
            name, PyProjectData.empty("setuptools_scm", root / "pyproject.toml"), settings,
            env=VcsEnvironment.from_env("SETUPTOOLS_SCM", dist_name=name))
    except (LookupError, ValueError, TypeError, SystemExit) as e:
        why = (str(e).splitlines() or [type(e).__name__])[0]
        hint = ""
        if source.tool in {"setuptools_scm", "hatch-vcs"} and not source.tags.is_default \
                and not source.tags.prefix:
            hint = ("; in a monorepo, set [tool.setuptools_scm.tag] prefix = \"svc-\" so that "
                    "git describe looks at the service's own tags only"
                    if source.tool == "setuptools_scm" else
                    "; in a monorepo, set git_describe_command = \"git describe --dirty --tags "
                    "--long --match 'svc-*'\" in [tool.hatch.version] raw-options so that git "
                    "describe looks at the service's own tags only (docs/versions.md)")
        elif not (root / ".git").exists():
            hint = (f"; {root} is not the repository's root: in a monorepo, say where the "
                    "repository is and which tags are the service's (docs/versions.md, Monorepos)")
        raise VersionError(f"setuptools_scm cannot compute a version for {root} with the "
                           f"settings of {source.declared_in}: {why}{hint}") from None
    try:
        parsed = Version(version)
    except InvalidVersion as e:
        raise VersionError(f"setuptools_scm gave {version!r}, which is not a PEP 440 version")\
            from e
    if parsed.epoch:
        raise VersionError(f"the version from git, {version}, has an epoch (a tag such as "
                           f"{parsed.base_version}), which brewblox-release does not publish: "
                           "delete that tag (git push --delete origin TAG; git tag -d TAG) and "
                           "tag like 1.2.3")
    # no-local-version drops the scheme's local part, not one a tag (1.2.4+build5) or a
    # pretended version carries: no index takes any.
    return parsed.public


def read(root: Path, name: str | None = None, *, source: VersionSource | None = None,
         branch: str | None = None) -> VersionInfo:
    return VersionInfo(compute(root, name, source=source, branch=branch), git_state(root))


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


def require_clean(root: Path, state: GitState, *, tag: bool = False) -> None:
    """Refuse to publish from a tree whose tracked files differ from the commit; a release
    ``tag`` whatever --allow-dirty says (setuptools_scm counts such a tree as past the tag)."""
    if state.dirty:
        shown = ", ".join(state.dirty[:10]) + (" ..." if len(state.dirty) > 10 else "")
        fix = ("Commit or stash them: a tag is released as its commit is (--allow-dirty is for "
               "branch builds)" if tag else "Commit or stash them, or pass --allow-dirty")
        raise VersionError(
            f"{root}: tracked files differ from the commit, so the version would not describe "
            f"what is published: {shown}. {fix}")
