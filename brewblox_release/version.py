"""The version from git, through setuptools_scm, and the checks a publishing run needs.

setuptools_scm computes the version with the service's own settings, wherever they are declared
(`project.version_source`: ``[tool.setuptools_scm]``, hatch-vcs's ``[tool.hatch.version]``, a
setup.py's ``use_scm_version``); the local part is always dropped (``local_scheme =
"no-local-version"``), because package indexes refuse it. `dist` then builds with exactly this
version (it is passed to the build as ``SETUPTOOLS_SCM_PRETEND_VERSION_FOR_<NAME>`` and, for
hatch-vcs, which does not tell setuptools_scm the name, ``SETUPTOOLS_SCM_PRETEND_VERSION``), so
the plan, the files and the images agree.

Branches and tags are read by their full ref names (``refs/heads/...``, ``refs/tags/...``):
git's short names are ambiguous when a branch is called like a tag (``1.2.3``) or a tag like a
branch (``main``).
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import importlib.metadata
import logging
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from .errors import VersionError
from .project import DEFAULT_TAG_REGEX
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
    head = _git(root, "symbolic-ref", "-q", "HEAD", check=False)
    tag_refs = _git(root, "for-each-ref", "--points-at", "HEAD", "--format=%(refname)",
                    "refs/tags/")
    return GitState(
        commit=commit,
        commit_time=int(_git(root, "log", "-1", "--format=%ct")),
        branch=head.removeprefix("refs/heads/") if head.startswith("refs/heads/") else None,
        head_tags=tuple(sorted(ref.removeprefix("refs/tags/") for ref in tag_refs.splitlines()
                               if ref.startswith("refs/tags/"))),
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


def _describe_match(settings: dict[str, Any]) -> None:
    """Make ``git describe`` look only at the service's own tags when its tag regex begins with
    a literal prefix (``^svc-``) and the settings do not say how to describe: a monorepo's
    nearest tag may be another service's (``b-2.0.0``), which the regex then refuses, and
    setuptools_scm stops (it finds a version only in the nearest tag)."""
    tag = settings.get("tag") or {}
    scm = settings.get("scm") or {}
    if tag.get("prefix") or (scm.get("git") or {}).get("describe_command"):
        return
    regex = tag.get("regex")
    if not isinstance(regex, str) or regex == DEFAULT_TAG_REGEX:
        return
    prefix = _literal_prefix(regex)
    if not prefix:
        return
    glob = "".join(f"[{c}]" if c in "*?[\\" else c for c in prefix) + "*[0-9]*"
    git = {**(scm.get("git") or {}), "describe_command": [
        "git", "describe", "--dirty", "--tags", "--long", "--match", glob]}
    settings["scm"] = {**scm, "git": git}


def _literal_prefix(regex: str) -> str:
    """The literal text every match of ``regex`` begins with (setuptools_scm matches a tag
    from its start, ``^`` or not)."""
    # The regex parser of the standard library (sre_parse before Python 3.11): the one way to
    # read a regex's literal start without writing a second parser.
    new = sys.version_info >= (3, 11)
    constants: Any = importlib.import_module("re._constants" if new else "sre_constants")
    parser: Any = importlib.import_module("re._parser" if new else "sre_parse")
    try:
        parsed = list(parser.parse(regex))
    except re.error:
        return ""
    prefix = []
    for i, (op, arg) in enumerate(parsed):
        if i == 0 and op is constants.AT and arg is constants.AT_BEGINNING:
            continue
        if op is not constants.LITERAL:
            break
        prefix.append(chr(arg))
    return "".join(prefix)


def compute(root: Path, name: str | None = None) -> str:
    """The version setuptools_scm gives the checkout at ``root``, with the service's own
    settings (`project.version_source`), without a local part.

    Args:
        name: the distribution's name, for setuptools_scm's per-distribution variables
            (``SETUPTOOLS_SCM_PRETEND_VERSION_FOR_<NAME>``); default: a static ``[project] name``.

    Raises:
        VersionError: the build would not take its version from git, or git says no version.
    """
    from setuptools_scm import _get_version
    from vcs_versioning import VcsEnvironment

    from .project import normalise, read_pyproject, version_source

    for logger in ("vcs_versioning", "setuptools_scm"):  # their debug lines would flood nox's log
        logging.getLogger(logger).setLevel(logging.WARNING)
    _plain_scm_log_handler()
    data = read_pyproject(root)
    source = version_source(root, data)
    if name is None:
        project = data.get("project")
        name = project.get("name") if isinstance(project, dict) else None
    environment = VcsEnvironment.from_env("SETUPTOOLS_SCM", dist_name=name)
    settings = copy.deepcopy(dict(source.settings))
    try:
        # SETUPTOOLS_SCM_OVERRIDES_FOR_<NAME>, which setuptools_scm reads over the file's.
        overrides = environment.read_toml_overrides(name)
    except (ValueError, TypeError) as e:
        raise VersionError(f"SETUPTOOLS_SCM_OVERRIDES_FOR_... cannot be read: {e}") from e
    if overrides:
        settings = normalise({**settings, **overrides})
    _describe_match(settings)
    settings.update(local_scheme="no-local-version", dist_name=name)
    try:
        config = environment.build_config_from_data(relative_to=root / "pyproject.toml",
                                                    data=settings)
        with _one_entry_point_scan():
            version = _get_version(config, force_write_version_files=False)
    except (LookupError, ValueError, TypeError) as e:
        why = (str(e).splitlines() or [type(e).__name__])[0]
        raise VersionError(f"setuptools_scm cannot compute a version for {root} with the "
                           f"settings of {source.declared_in}: {why}") from e
    if version is None:
        raise VersionError(f"setuptools_scm found no version for {root} with the settings of "
                           f"{source.declared_in}: is it a git checkout (with root pointing at "
                           "the repository's top when the service is in a subdirectory)?")
    try:
        parsed = Version(version)
    except InvalidVersion as e:
        raise VersionError(f"setuptools_scm gave {version!r}, which is not a PEP 440 version")\
            from e
    if parsed.epoch:
        raise VersionError(f"the version from git, {version}, has an epoch (a tag such as "
                           f"{parsed.epoch}!{parsed.base_version}), which brewblox-release does "
                           "not publish: delete that tag (git push --delete origin TAG; git tag "
                           "-d TAG) and tag like 1.2.3")
    return str(parsed)


def read(root: Path, name: str | None = None) -> VersionInfo:
    """The version and git state of the checkout at ``root``."""
    return VersionInfo(compute(root, name), git_state(root))


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
    """The environment that makes a setuptools_scm build use exactly ``version``.

    Both variables: setuptools with setuptools_scm reads the one for the distribution; hatch-vcs
    calls setuptools_scm without the name, so only the plain one reaches it. The build's
    subprocesses build this one project, so the plain one cannot reach another.
    """
    normalized = re.sub(r"[-_.]+", "_", name).upper()
    return {f"SETUPTOOLS_SCM_PRETEND_VERSION_FOR_{normalized}": version,
            "SETUPTOOLS_SCM_PRETEND_VERSION": version}
