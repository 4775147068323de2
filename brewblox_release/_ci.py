"""The run's context, read once from the CI environment: `from_env` is pure (every provider's
rules are rows in a table test), `detect` reads the environment and GitHub's payload file."""

from __future__ import annotations

import contextlib
import enum
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ._errors import ReleaseError
from ._run import environ


class Event(enum.Enum):
    """What started the run."""

    TAG = "tag push"
    BRANCH = "branch push"
    PULL_REQUEST = "pull request"
    LOCAL = "local run"


@dataclass(frozen=True)
class CiContext:
    """Where and why this run happens.

    ``branch`` is the pushed branch or a pull request's source branch; ``manual``: started by
    hand. A ``fork``'s code, a run with a ``doubt`` (whether it builds a fork) or a ``refusal``
    (its event is off the allow-list), and a checkout of another ``commit`` than the provider
    names build only (docs/how-it-works.md).
    """

    provider: str
    event: Event
    branch: str | None = None
    tag: str | None = None
    repository: str | None = None
    fork: bool = False
    manual: bool = False
    doubt: str | None = None
    commit: str | None = None
    refusal: str | None = None

    @property
    def ref(self) -> str | None:
        if self.tag is not None:
            return f"refs/tags/{self.tag}"
        return None if self.branch is None else f"refs/heads/{self.branch}"

    def with_ref(self, ref: str) -> CiContext:
        """The context of a CI push of ``ref`` (``--ref refs/heads/X`` or ``refs/tags/X``); a
        pull request's stays one: it builds only, whatever its pipeline's command line says.

        >>> CiContext("local", Event.LOCAL).with_ref("refs/tags/1.2.3").event
        <Event.TAG: 'tag push'>
        """
        event, name = parse_ref(ref)
        if self.event is Event.PULL_REQUEST:
            return self
        tag = name if event is Event.TAG else None
        return replace(self, event=event, tag=tag, branch=None if tag else name, manual=True)

    def checked_out(self, head: str) -> CiContext:
        """This context for a checkout of commit ``head``, refused where CI names another.

        >>> ctx = CiContext("gitlab", Event.BRANCH, branch="x", commit="a" * 40)
        >>> ctx.checked_out("a" * 40) == ctx, ctx.checked_out("b" * 40).refusal is not None
        (True, True)
        """
        if self.commit is None or self.commit == head or self.refusal:
            return self
        return replace(self, refusal=f"HEAD is {head[:12]}, not {self.commit[:12]}, the commit "
                                     f"{self.provider} names for this run")

    def describe(self) -> str:
        where = {"github": "GitHub Actions", "travis": "Travis CI", "gitlab": "GitLab CI",
                 "azure": "Azure Pipelines", "local": "local"}[self.provider]
        what = self.event.value + (f" {self.tag}" if self.event is Event.TAG
                                   else f" {self.branch}" if self.branch else "")
        extras = [x for x, on in (("fork", self.fork), ("manual", self.manual),
                                  ("not a publishing event", self.refusal)) if on]
        return f"{where}: {what}" + (f" ({', '.join(extras)})" if extras else "")


def parse_ref(ref: str) -> tuple[Event, str]:
    for prefix, event in (("refs/tags/", Event.TAG), ("refs/heads/", Event.BRANCH)):
        if ref.startswith(prefix) and len(ref) > len(prefix):
            return event, ref[len(prefix):]
    raise ReleaseError(f"--ref {ref!r}: give a full ref, refs/heads/BRANCH or refs/tags/TAG")


def _true(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes"}


def _object(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def from_env(env: Mapping[str, str], payload: object = None) -> CiContext:
    """The CI context of an environment and GitHub Actions' event ``payload`` (anything but a
    JSON object leaves the fork status in doubt: the run builds only)."""
    if _true(env.get("GITHUB_ACTIONS")):
        return _github(env, payload)
    if _true(env.get("TRAVIS")):
        return _allowed(_travis(env), env.get("TRAVIS_EVENT_TYPE", ""), env.get("TRAVIS_COMMIT"))
    if _true(env.get("GITLAB_CI")):
        return _allowed(_gitlab(env), env.get("CI_PIPELINE_SOURCE", ""), env.get("CI_COMMIT_SHA"))
    if _true(env.get("TF_BUILD")):
        return _azure(env)
    return CiContext("local", Event.LOCAL)


def detect(env: Mapping[str, str] | None = None) -> CiContext:
    """`from_env` on the real environment, reading GitHub's event payload where there is one."""
    env = environ() if env is None else env
    payload: object = None
    if _true(env.get("GITHUB_ACTIONS")) and (path := env.get("GITHUB_EVENT_PATH")):
        # fail closed (from_env builds only); RecursionError: a payload nested too deep
        with contextlib.suppress(OSError, ValueError, RecursionError):
            payload = json.loads(Path(path).read_text())
    return from_env(env, payload)


#: The events that publish, per provider; every other event builds only (docs/how-it-works.md).
ALLOWED = {
    "github": ("push", "workflow_dispatch", "workflow_run of this repository's push"),
    "gitlab": ("push", "web", "api", "trigger"),
    "travis": ("push", "api"),
    "azure": ("IndividualCI", "BatchedCI", "Manual"),
}
_NAMES = {"github": "GitHub event", "gitlab": "GitLab pipeline source",
          "travis": "Travis event type", "azure": "Azure build reason"}


def _refusal(provider: str, event: str) -> str:
    shown = repr(event) if event else "(empty)"
    return (f"{_NAMES[provider]} {shown} is not one that publishes (only "
            f"{', '.join(ALLOWED[provider])} do)")


def _from_ref(provider: str, ref: str, variable: str, refusal: str | None,
              **kw: Any) -> CiContext:
    """The context of a push of ``ref``, which a publishing run must name a branch or tag by."""
    try:
        event, name = parse_ref(ref)
    except ReleaseError:
        if refusal:
            return CiContext(provider, Event.BRANCH, refusal=refusal, **kw)
        raise ReleaseError(f"{variable}={ref!r} names neither a branch (refs/heads/...) nor a tag "
                           f"(refs/tags/...), so {provider} gave this run nothing to release: run "
                           "the release on pushes of branches and tags, and on pull requests"
                           ) from None
    kw["tag" if event is Event.TAG else "branch"] = name
    return CiContext(provider, event, refusal=refusal, **kw)


def _github(env: Mapping[str, str], payload: object) -> CiContext:
    repo = env.get("GITHUB_REPOSITORY")
    name = env.get("GITHUB_EVENT_NAME", "")
    ref = env.get("GITHUB_REF", "")
    doubt = None
    if not isinstance(payload, Mapping):
        where = env.get("GITHUB_EVENT_PATH") or "GITHUB_EVENT_PATH is not set"
        doubt = (f"the GitHub event payload ({where}) is missing or not a JSON object, so "
                 "whether this run builds a fork is unknown")
        payload = {}
    elif not isinstance(payload.get("repository"), Mapping):
        doubt = ("the GitHub event payload names no repository, so whether this run builds a "
                 "fork is unknown")
    in_fork = bool(_object(payload.get("repository")).get("fork", False))
    # pull_request, pull_request_target, a pull request's review events, and a merge queue's
    # trial merge (merge_group, or a push to its gh-readonly-queue/... branch): never published.
    if name.startswith("pull_request") or "pull_request" in payload or ref.startswith("refs/pull/"):
        head = _object(_object(payload.get("pull_request")).get("head"))
        head_repo = _object(head.get("repo"))
        fork = in_fork or bool(head_repo.get("fork")) or (
            head_repo.get("full_name") not in (None, repo))
        if not head_repo and doubt is None:
            doubt = "the pull request's head repository is not in the event payload"
        return CiContext("github", Event.PULL_REQUEST,
                         branch=env.get("GITHUB_HEAD_REF") or head.get("ref") or None,
                         repository=repo, fork=fork, doubt=doubt)
    if name == "merge_group" or ref.startswith("refs/heads/gh-readonly-queue/"):
        return CiContext("github", Event.PULL_REQUEST, branch=ref.removeprefix("refs/heads/")
                         or None, repository=repo, fork=in_fork, doubt=doubt)
    if name == "workflow_run":
        return replace(_workflow_run(payload, repo, in_fork), doubt=doubt)
    return _from_ref("github", ref, "GITHUB_REF",
                     None if name in {"push", "workflow_dispatch"} else _refusal("github", name),
                     repository=repo, fork=in_fork, manual=name == "workflow_dispatch",
                     doubt=doubt, commit=env.get("GITHUB_SHA") or None)


def _workflow_run(payload: Mapping[str, Any], repo: str | None, in_fork: bool) -> CiContext:
    """A ``workflow_run`` publishes only where its payload shows a push of this repository
    (GITHUB_REF and GITHUB_SHA name the default branch, not what was pushed)."""
    run = _object(payload.get("workflow_run"))
    event, head_repo = run.get("event"), _object(run.get("head_repository")).get("full_name")
    branch = run.get("head_branch") if isinstance(run.get("head_branch"), str) else None
    commit = run.get("head_sha") if isinstance(run.get("head_sha"), str) else None
    if event == "push" and head_repo == repo and repo and not in_fork and branch:
        return CiContext("github", Event.BRANCH, branch=branch, repository=repo, commit=commit)
    why = (f"GitHub event 'workflow_run' of a {event or 'unknown'} event in "
           f"{head_repo or 'an unnamed repository'} is not one that publishes (only a "
           f"workflow_run of a push in {repo} does)")
    return CiContext("github", Event.BRANCH, branch=branch or None, repository=repo,
                     fork=in_fork or head_repo != repo, commit=commit, refusal=why)


def tag_pushed_as_branch(ctx: CiContext, head_tags: Sequence[str],
                         env: Mapping[str, str]) -> CiContext:
    """A GitHub ``workflow_run`` names a pushed tag as its head branch too, and its payload says
    nothing else of which it was: where a tag of that name is on the commit (``head_tags``), the
    run builds only."""
    if env.get("GITHUB_EVENT_NAME") != "workflow_run" or ctx.event is not Event.BRANCH or \
            ctx.branch not in head_tags:
        return ctx
    return replace(ctx, doubt=f"this workflow_run names {ctx.branch!r} as the branch pushed, and "
                              "a tag of that name is on this commit (GitHub names a pushed tag "
                              "there too): release tags from a workflow started by push")


def _allowed(context: CiContext, event: str, commit: str | None) -> CiContext:
    """``context`` with the commit CI names, refused where ``event`` is off the allow-list."""
    refused = context.event is not Event.PULL_REQUEST and event not in ALLOWED[context.provider]
    return replace(context, commit=commit or None,
                   refusal=_refusal(context.provider, event) if refused else None)


def _travis(env: Mapping[str, str]) -> CiContext:
    repo = env.get("TRAVIS_REPO_SLUG")
    if env.get("TRAVIS_PULL_REQUEST", "false") != "false":
        return CiContext("travis", Event.PULL_REQUEST,
                         branch=env.get("TRAVIS_PULL_REQUEST_BRANCH") or None, repository=repo,
                         fork=env.get("TRAVIS_PULL_REQUEST_SLUG") not in (None, "", repo))
    tag = env.get("TRAVIS_TAG") or None
    return CiContext("travis", Event.TAG if tag else Event.BRANCH, tag=tag,
                     branch=None if tag else env.get("TRAVIS_BRANCH") or None, repository=repo,
                     manual=env.get("TRAVIS_EVENT_TYPE") == "api")


def _gitlab(env: Mapping[str, str]) -> CiContext:
    repo = env.get("CI_PROJECT_PATH")
    if env.get("CI_EXTERNAL_PULL_REQUEST_IID") or (
            env.get("CI_PIPELINE_SOURCE") == "external_pull_request_event"):
        # A GitHub pull request built by GitLab CI ("CI/CD for external repositories").
        source = env.get("CI_EXTERNAL_PULL_REQUEST_SOURCE_REPOSITORY")
        target = env.get("CI_EXTERNAL_PULL_REQUEST_TARGET_REPOSITORY")
        return CiContext("gitlab", Event.PULL_REQUEST,
                         branch=env.get("CI_EXTERNAL_PULL_REQUEST_SOURCE_BRANCH_NAME") or None,
                         repository=repo, fork=source not in (None, "", target))
    if env.get("CI_MERGE_REQUEST_IID") or env.get("CI_PIPELINE_SOURCE") == "merge_request_event":
        source = env.get("CI_MERGE_REQUEST_SOURCE_PROJECT_PATH")
        return CiContext("gitlab", Event.PULL_REQUEST,
                         branch=env.get("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME") or None,
                         repository=repo, fork=source not in (None, "", repo))
    manual = env.get("CI_PIPELINE_SOURCE") in {"web", "api", "trigger"}
    tag = env.get("CI_COMMIT_TAG") or None
    branch = None if tag else env.get("CI_COMMIT_BRANCH") or env.get("CI_COMMIT_REF_NAME") or None
    return CiContext("gitlab", Event.TAG if tag else Event.BRANCH, tag=tag, branch=branch,
                     repository=repo, manual=manual)


def _azure(env: Mapping[str, str]) -> CiContext:
    reason = env.get("BUILD_REASON", "")
    repo = env.get("BUILD_REPOSITORY_NAME")
    commit = env.get("BUILD_SOURCEVERSION") or None
    if reason == "PullRequest":
        source = env.get("SYSTEM_PULLREQUEST_SOURCEBRANCH", "")
        return CiContext("azure", Event.PULL_REQUEST,
                         branch=source.removeprefix("refs/heads/") or None, repository=repo,
                         fork=_true(env.get("SYSTEM_PULLREQUEST_ISFORK")), commit=commit)
    return _from_ref("azure", env.get("BUILD_SOURCEBRANCH", ""), "BUILD_SOURCEBRANCH",
                     None if reason in ALLOWED["azure"] else _refusal("azure", reason),
                     repository=repo, manual=reason == "Manual", commit=commit)
