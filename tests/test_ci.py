"""The CI context from each provider's environment (docs/how-it-works.md: events)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from brewblox_release._ci import CiContext, Event, detect, from_env, parse_ref
from brewblox_release._errors import ReleaseError

REPO = "brewblox/demo-svc"
FORK = "someone/demo-svc"

TAG, BRANCH, PR, LOCAL = Event.TAG, Event.BRANCH, Event.PULL_REQUEST, Event.LOCAL


def github(event: str, ref: str, *, head_ref: str = "", repo: str = REPO) -> dict[str, str]:
    return {"CI": "true", "GITHUB_ACTIONS": "true", "GITHUB_EVENT_NAME": event,
            "GITHUB_REF": ref, "GITHUB_REPOSITORY": repo, "GITHUB_HEAD_REF": head_ref,
            "GITHUB_BASE_REF": "main" if head_ref else ""}


def push_payload(ref: str, *, repo: str = REPO, fork: bool = False) -> dict[str, Any]:
    return {"ref": ref, "repository": {"full_name": repo, "fork": fork}}


def pr_payload(head_repo: dict[str, Any] | None, *, repo: str = REPO,
               fork: bool = False) -> dict[str, Any]:
    return {"action": "opened", "number": 7,
            "pull_request": {"number": 7, "head": {"ref": "feature/x", "repo": head_repo},
                             "base": {"ref": "main", "repo": {"full_name": repo, "fork": fork}}},
            "repository": {"full_name": repo, "fork": fork}}


def refused(provider: str, event: str) -> str:
    """The refusal of an event off the allow-list, as the plan shows it."""
    allowed = {"github": "push, workflow_dispatch, workflow_run of this repository's push",
               "gitlab": "push, web, api, trigger", "travis": "push, api",
               "azure": "IndividualCI, BatchedCI, Manual"}[provider]
    kind = {"github": "GitHub event", "gitlab": "GitLab pipeline source",
            "travis": "Travis event type", "azure": "Azure build reason"}[provider]
    return f"{kind} {repr(event) if event else '(empty)'} is not one that publishes (only " \
           f"{allowed} do)"


def workflow_run(event: str, head_repo: str, *, head_branch: str) -> dict[str, Any]:
    """A ``workflow_run`` payload: the run that triggered it, in ``head_repo``."""
    return {"action": "completed", "repository": {"full_name": REPO, "fork": False},
            "workflow_run": {"event": event, "head_branch": head_branch, "head_sha": "b" * 40,
                             "head_repository": {"full_name": head_repo,
                                                 "fork": head_repo != REPO}}}


def run_refused(event: str | None, head_repo: str | None) -> str:
    return (f"GitHub event 'workflow_run' of a {event or 'unknown'} event in "
            f"{head_repo or 'an unnamed repository'} is not one that publishes (only a "
            f"workflow_run of a push in {REPO} does)")


NO_PATH = ("the GitHub event payload (GITHUB_EVENT_PATH is not set) is missing or not a JSON "
           "object, so whether this run builds a fork is unknown")
NO_REPOSITORY = ("the GitHub event payload names no repository, so whether this run builds a "
                 "fork is unknown")
BAD_PAYLOAD = ("the GitHub event payload (/e.json) is missing or not a JSON object, so whether "
               "this run builds a fork is unknown")

GITHUB: list[tuple[str, dict[str, str], object, CiContext]] = [
    ("tag", github("push", "refs/tags/1.2.3"), push_payload("refs/tags/1.2.3"),
     CiContext("github", TAG, tag="1.2.3", repository=REPO)),
    ("v-tag", github("push", "refs/tags/v1.2.3"), push_payload("refs/tags/v1.2.3"),
     CiContext("github", TAG, tag="v1.2.3", repository=REPO)),
    ("branch", github("push", "refs/heads/feature/x"), push_payload("refs/heads/feature/x"),
     CiContext("github", BRANCH, branch="feature/x", repository=REPO)),
    # Fail closed: without a payload that is a JSON object, whether the run builds a fork is
    # unknown, so it builds only (the plan says why).
    ("no payload", github("push", "refs/heads/main"), None,
     CiContext("github", BRANCH, branch="main", repository=REPO, doubt=NO_PATH)),
    ("payload null", {**github("push", "refs/heads/x"), "GITHUB_EVENT_PATH": "/e.json"}, None,
     CiContext("github", BRANCH, branch="x", repository=REPO, doubt=BAD_PAYLOAD)),
    ("payload a list", {**github("push", "refs/heads/x"), "GITHUB_EVENT_PATH": "/e.json"}, [],
     CiContext("github", BRANCH, branch="x", repository=REPO, doubt=BAD_PAYLOAD)),
    ("payload a string", {**github("push", "refs/tags/1.2.3"), "GITHUB_EVENT_PATH": "/e.json"},
     "x", CiContext("github", TAG, tag="1.2.3", repository=REPO, doubt=BAD_PAYLOAD)),
    ("pull_request null", github("pull_request", "refs/pull/7/merge", head_ref="feature/x"),
     {"pull_request": None, "repository": {"full_name": REPO, "fork": False}},
     CiContext("github", PR, branch="feature/x", repository=REPO,
               doubt="the pull request's head repository is not in the event payload")),
    ("repository null", github("push", "refs/heads/x"), {"repository": None},
     CiContext("github", BRANCH, branch="x", repository=REPO, doubt=NO_REPOSITORY)),
    ("no repository", github("push", "refs/tags/1.2.3"), {"ref": "refs/tags/1.2.3"},
     CiContext("github", TAG, tag="1.2.3", repository=REPO, doubt=NO_REPOSITORY)),
    ("merge queue's branch push", github("push", "refs/heads/gh-readonly-queue/main/pr-7-abc"),
     push_payload("refs/heads/gh-readonly-queue/main/pr-7-abc"),
     CiContext("github", PR, branch="gh-readonly-queue/main/pr-7-abc", repository=REPO)),
    ("pull request",
     github("pull_request", "refs/pull/7/merge", head_ref="feature/x"),
     pr_payload({"full_name": REPO, "fork": False}),
     CiContext("github", PR, branch="feature/x", repository=REPO)),
    ("pull request from a fork",
     github("pull_request", "refs/pull/7/merge", head_ref="feature/x"),
     pr_payload({"full_name": FORK, "fork": True}),
     CiContext("github", PR, branch="feature/x", repository=REPO, fork=True)),
    ("pull request from a fork, by full_name alone",
     github("pull_request", "refs/pull/7/merge", head_ref="feature/x"),
     pr_payload({"full_name": FORK}),
     CiContext("github", PR, branch="feature/x", repository=REPO, fork=True)),
    ("pull_request_target from a fork",
     github("pull_request_target", "refs/heads/main", head_ref="feature/x"),
     pr_payload({"full_name": FORK, "fork": True}),
     CiContext("github", PR, branch="feature/x", repository=REPO, fork=True)),
    ("pull request in a fork",
     github("pull_request", "refs/pull/7/merge", head_ref="feature/x", repo=FORK),
     pr_payload({"full_name": FORK, "fork": True}, repo=FORK, fork=True),
     CiContext("github", PR, branch="feature/x", repository=FORK, fork=True)),
    ("push in a fork", github("push", "refs/heads/feature/x", repo=FORK),
     push_payload("refs/heads/feature/x", repo=FORK, fork=True),
     CiContext("github", BRANCH, branch="feature/x", repository=FORK, fork=True)),
    ("tag in a fork", github("push", "refs/tags/1.2.3", repo=FORK),
     push_payload("refs/tags/1.2.3", repo=FORK, fork=True),
     CiContext("github", TAG, tag="1.2.3", repository=FORK, fork=True)),
    ("workflow_dispatch on a branch", github("workflow_dispatch", "refs/heads/main"),
     {"ref": "refs/heads/main", "inputs": {}, "repository": {"full_name": REPO, "fork": False}},
     CiContext("github", BRANCH, branch="main", repository=REPO, manual=True)),
    ("workflow_dispatch on a tag", github("workflow_dispatch", "refs/tags/1.2.3"),
     {"ref": "refs/tags/1.2.3", "inputs": {}, "repository": {"full_name": REPO, "fork": False}},
     CiContext("github", TAG, tag="1.2.3", repository=REPO, manual=True)),
    # Publishing is allowed, not denied: every event off the allow-list builds only.
    ("repository_dispatch", github("repository_dispatch", "refs/heads/main"),
     {"action": "release", "repository": {"full_name": REPO, "fork": False}},
     CiContext("github", BRANCH, branch="main", repository=REPO,
               refusal=refused("github", "repository_dispatch"))),
    ("release published", github("release", "refs/tags/1.2.3"),
     {"action": "published", "release": {"tag_name": "1.2.3"},
      "repository": {"full_name": REPO, "fork": False}},
     CiContext("github", TAG, tag="1.2.3", repository=REPO,
               refusal=refused("github", "release"))),
    ("schedule", github("schedule", "refs/heads/main"),
     {"schedule": "0 0 * * *", "repository": {"full_name": REPO, "fork": False}},
     CiContext("github", BRANCH, branch="main", repository=REPO,
               refusal=refused("github", "schedule"))),
    ("issue_comment", github("issue_comment", "refs/heads/main"), push_payload("refs/heads/main"),
     CiContext("github", BRANCH, branch="main", repository=REPO,
               refusal=refused("github", "issue_comment"))),
    ("create (a branch made in the UI)", github("create", "refs/heads/x"),
     push_payload("refs/heads/x"),
     CiContext("github", BRANCH, branch="x", repository=REPO, refusal=refused("github", "create"))),
    ("an event name nobody listed", github("check_suite", "refs/heads/main"),
     push_payload("refs/heads/main"),
     CiContext("github", BRANCH, branch="main", repository=REPO,
               refusal=refused("github", "check_suite"))),
    ("an empty event name", github("", "refs/tags/1.2.3"), push_payload("refs/tags/1.2.3"),
     CiContext("github", TAG, tag="1.2.3", repository=REPO, refusal=refused("github", ""))),
    ("no event name", {k: v for k, v in github("", "refs/heads/x").items()
                       if k != "GITHUB_EVENT_NAME"}, push_payload("refs/heads/x"),
     CiContext("github", BRANCH, branch="x", repository=REPO, refusal=refused("github", ""))),
    ("an unknown event with no usable ref", github("watch", ""), push_payload(""),
     CiContext("github", BRANCH, repository=REPO, refusal=refused("github", "watch"))),
    ("the commit CI names", {**github("push", "refs/heads/x"), "GITHUB_SHA": "a" * 40},
     push_payload("refs/heads/x"),
     CiContext("github", BRANCH, branch="x", repository=REPO, commit="a" * 40)),
    # workflow_run: only a push of this repository, its branch and commit from the payload.
    ("workflow_run of a push", github("workflow_run", "refs/heads/main"),
     workflow_run("push", REPO, head_branch="feature/x"),
     CiContext("github", BRANCH, branch="feature/x", repository=REPO, commit="b" * 40)),
    ("workflow_run of a fork's pull request (a pwn request)",
     github("workflow_run", "refs/heads/main"),
     workflow_run("pull_request", FORK, head_branch="feature-x"),
     CiContext("github", BRANCH, branch="feature-x", repository=REPO, fork=True,
               commit="b" * 40, refusal=run_refused("pull_request", FORK))),
    ("workflow_run of a pull request in this repository",
     github("workflow_run", "refs/heads/main"),
     workflow_run("pull_request", REPO, head_branch="feature/x"),
     CiContext("github", BRANCH, branch="feature/x", repository=REPO, commit="b" * 40,
               refusal=run_refused("pull_request", REPO))),
    ("workflow_run of a fork's push", github("workflow_run", "refs/heads/main"),
     workflow_run("push", FORK, head_branch="main"),
     CiContext("github", BRANCH, branch="main", repository=REPO, fork=True, commit="b" * 40,
               refusal=run_refused("push", FORK))),
    ("workflow_run of a schedule", github("workflow_run", "refs/heads/main"),
     workflow_run("schedule", REPO, head_branch="main"),
     CiContext("github", BRANCH, branch="main", repository=REPO, commit="b" * 40,
               refusal=run_refused("schedule", REPO))),
    ("workflow_run without its run", github("workflow_run", "refs/heads/main"),
     {"repository": {"full_name": REPO, "fork": False}},
     CiContext("github", BRANCH, repository=REPO, fork=True,
               refusal=run_refused(None, None))),
    ("workflow_run, its run not an object", github("workflow_run", "refs/heads/main"),
     {"workflow_run": "push", "repository": {"full_name": REPO, "fork": False}},
     CiContext("github", BRANCH, repository=REPO, fork=True,
               refusal=run_refused(None, None))),
    ("workflow_run without a payload", github("workflow_run", "refs/heads/main"), None,
     CiContext("github", BRANCH, repository=REPO, fork=True, doubt=NO_PATH,
               refusal=run_refused(None, None))),
]


def travis(**extra: str) -> dict[str, str]:
    return {"CI": "true", "TRAVIS": "true", "TRAVIS_REPO_SLUG": REPO,
            "TRAVIS_PULL_REQUEST": "false", "TRAVIS_PULL_REQUEST_SLUG": "",
            "TRAVIS_PULL_REQUEST_BRANCH": "", "TRAVIS_TAG": "", "TRAVIS_EVENT_TYPE": "push",
            **extra}


TRAVIS: list[tuple[str, dict[str, str], CiContext]] = [
    ("tag", travis(TRAVIS_TAG="1.2.3", TRAVIS_BRANCH="1.2.3"),
     CiContext("travis", TAG, tag="1.2.3", repository=REPO)),
    ("branch", travis(TRAVIS_BRANCH="feature/x"),
     CiContext("travis", BRANCH, branch="feature/x", repository=REPO)),
    ("pull request",
     travis(TRAVIS_PULL_REQUEST="7", TRAVIS_BRANCH="main", TRAVIS_PULL_REQUEST_BRANCH="feature/x",
            TRAVIS_PULL_REQUEST_SLUG=REPO, TRAVIS_EVENT_TYPE="pull_request"),
     CiContext("travis", PR, branch="feature/x", repository=REPO)),
    ("pull request from a fork",
     travis(TRAVIS_PULL_REQUEST="7", TRAVIS_BRANCH="main", TRAVIS_PULL_REQUEST_BRANCH="feature/x",
            TRAVIS_PULL_REQUEST_SLUG=FORK, TRAVIS_EVENT_TYPE="pull_request"),
     CiContext("travis", PR, branch="feature/x", repository=REPO, fork=True)),
    ("api trigger", travis(TRAVIS_BRANCH="main", TRAVIS_EVENT_TYPE="api"),
     CiContext("travis", BRANCH, branch="main", repository=REPO, manual=True)),
    ("api trigger of a tag", travis(TRAVIS_TAG="1.2.3", TRAVIS_BRANCH="1.2.3",
                                    TRAVIS_EVENT_TYPE="api"),
     CiContext("travis", TAG, tag="1.2.3", repository=REPO, manual=True)),
    ("cron", travis(TRAVIS_BRANCH="main", TRAVIS_EVENT_TYPE="cron"),
     CiContext("travis", BRANCH, branch="main", repository=REPO,
               refusal=refused("travis", "cron"))),
    ("no event type", {k: v for k, v in travis(TRAVIS_TAG="1.2.3").items()
                       if k != "TRAVIS_EVENT_TYPE"},
     CiContext("travis", TAG, tag="1.2.3", repository=REPO, refusal=refused("travis", ""))),
    ("an unknown event type", travis(TRAVIS_BRANCH="x", TRAVIS_EVENT_TYPE="webhook"),
     CiContext("travis", BRANCH, branch="x", repository=REPO,
               refusal=refused("travis", "webhook"))),
    ("the commit CI names", travis(TRAVIS_BRANCH="x", TRAVIS_COMMIT="c" * 40),
     CiContext("travis", BRANCH, branch="x", repository=REPO, commit="c" * 40)),
]


def gitlab(**extra: str) -> dict[str, str]:
    return {"CI": "true", "GITLAB_CI": "true", "CI_PROJECT_PATH": REPO,
            "CI_PIPELINE_SOURCE": "push", **extra}


GITLAB: list[tuple[str, dict[str, str], CiContext]] = [
    ("tag", gitlab(CI_COMMIT_TAG="1.2.3", CI_COMMIT_REF_NAME="1.2.3"),
     CiContext("gitlab", TAG, tag="1.2.3", repository=REPO)),
    ("branch", gitlab(CI_COMMIT_BRANCH="feature/x", CI_COMMIT_REF_NAME="feature/x"),
     CiContext("gitlab", BRANCH, branch="feature/x", repository=REPO)),
    ("branch, only the ref name", gitlab(CI_COMMIT_REF_NAME="feature/x"),
     CiContext("gitlab", BRANCH, branch="feature/x", repository=REPO)),
    ("merge request",
     gitlab(CI_PIPELINE_SOURCE="merge_request_event", CI_MERGE_REQUEST_IID="7",
            CI_MERGE_REQUEST_SOURCE_PROJECT_PATH=REPO,
            CI_MERGE_REQUEST_SOURCE_BRANCH_NAME="feature/x", CI_COMMIT_REF_NAME="feature/x"),
     CiContext("gitlab", PR, branch="feature/x", repository=REPO)),
    ("merge request from a fork",
     gitlab(CI_PIPELINE_SOURCE="merge_request_event", CI_MERGE_REQUEST_IID="7",
            CI_MERGE_REQUEST_SOURCE_PROJECT_PATH=FORK,
            CI_MERGE_REQUEST_SOURCE_BRANCH_NAME="feature/x", CI_COMMIT_REF_NAME="feature/x"),
     CiContext("gitlab", PR, branch="feature/x", repository=REPO, fork=True)),
    ("merge request, by its iid alone",
     gitlab(CI_MERGE_REQUEST_IID="7", CI_MERGE_REQUEST_SOURCE_PROJECT_PATH=REPO,
            CI_MERGE_REQUEST_SOURCE_BRANCH_NAME="feature/x"),
     CiContext("gitlab", PR, branch="feature/x", repository=REPO)),
    ("external pull request (a GitHub repository built by GitLab CI)",
     gitlab(CI_PIPELINE_SOURCE="external_pull_request_event", CI_COMMIT_BRANCH="feature/x",
            CI_COMMIT_REF_NAME="feature/x", CI_EXTERNAL_PULL_REQUEST_IID="7",
            CI_EXTERNAL_PULL_REQUEST_SOURCE_BRANCH_NAME="feature/x",
            CI_EXTERNAL_PULL_REQUEST_SOURCE_REPOSITORY=REPO,
            CI_EXTERNAL_PULL_REQUEST_TARGET_REPOSITORY=REPO),
     CiContext("gitlab", PR, branch="feature/x", repository=REPO)),
    ("run from the web", gitlab(CI_PIPELINE_SOURCE="web", CI_COMMIT_BRANCH="main"),
     CiContext("gitlab", BRANCH, branch="main", repository=REPO, manual=True)),
    ("api", gitlab(CI_PIPELINE_SOURCE="api", CI_COMMIT_TAG="1.2.3"),
     CiContext("gitlab", TAG, tag="1.2.3", repository=REPO, manual=True)),
    ("trigger", gitlab(CI_PIPELINE_SOURCE="trigger", CI_COMMIT_BRANCH="main"),
     CiContext("gitlab", BRANCH, branch="main", repository=REPO, manual=True)),
    ("schedule", gitlab(CI_PIPELINE_SOURCE="schedule", CI_COMMIT_BRANCH="main"),
     CiContext("gitlab", BRANCH, branch="main", repository=REPO,
               refusal=refused("gitlab", "schedule"))),
    ("a parent pipeline", gitlab(CI_PIPELINE_SOURCE="parent_pipeline", CI_COMMIT_BRANCH="x"),
     CiContext("gitlab", BRANCH, branch="x", repository=REPO,
               refusal=refused("gitlab", "parent_pipeline"))),
    ("a pipeline of another project", gitlab(CI_PIPELINE_SOURCE="pipeline", CI_COMMIT_TAG="1.0"),
     CiContext("gitlab", TAG, tag="1.0", repository=REPO,
               refusal=refused("gitlab", "pipeline"))),
    ("chat", gitlab(CI_PIPELINE_SOURCE="chat", CI_COMMIT_BRANCH="main"),
     CiContext("gitlab", BRANCH, branch="main", repository=REPO,
               refusal=refused("gitlab", "chat"))),
    ("no pipeline source", {k: v for k, v in gitlab(CI_COMMIT_BRANCH="x").items()
                            if k != "CI_PIPELINE_SOURCE"},
     CiContext("gitlab", BRANCH, branch="x", repository=REPO, refusal=refused("gitlab", ""))),
    ("the commit CI names", gitlab(CI_COMMIT_BRANCH="x", CI_COMMIT_SHA="d" * 40),
     CiContext("gitlab", BRANCH, branch="x", repository=REPO, commit="d" * 40)),
]


def azure(**extra: str) -> dict[str, str]:
    return {"TF_BUILD": "True", "BUILD_REPOSITORY_NAME": REPO, "BUILD_REASON": "IndividualCI",
            **extra}


AZURE: list[tuple[str, dict[str, str], CiContext]] = [
    ("tag", azure(BUILD_SOURCEBRANCH="refs/tags/1.2.3", BUILD_SOURCEBRANCHNAME="1.2.3"),
     CiContext("azure", TAG, tag="1.2.3", repository=REPO)),
    ("branch", azure(BUILD_SOURCEBRANCH="refs/heads/feature/x", BUILD_SOURCEBRANCHNAME="x"),
     CiContext("azure", BRANCH, branch="feature/x", repository=REPO)),
    ("batched branch", azure(BUILD_REASON="BatchedCI", BUILD_SOURCEBRANCH="refs/heads/main"),
     CiContext("azure", BRANCH, branch="main", repository=REPO)),
    ("pull request (Azure Repos)",
     azure(BUILD_REASON="PullRequest", BUILD_SOURCEBRANCH="refs/pull/7/merge",
           SYSTEM_PULLREQUEST_SOURCEBRANCH="refs/heads/feature/x",
           SYSTEM_PULLREQUEST_ISFORK="False"),
     CiContext("azure", PR, branch="feature/x", repository=REPO)),
    ("pull request (GitHub)",
     azure(BUILD_REASON="PullRequest", BUILD_SOURCEBRANCH="refs/pull/7/merge",
           SYSTEM_PULLREQUEST_SOURCEBRANCH="feature/x", SYSTEM_PULLREQUEST_ISFORK="False"),
     CiContext("azure", PR, branch="feature/x", repository=REPO)),
    ("pull request from a fork",
     azure(BUILD_REASON="PullRequest", BUILD_SOURCEBRANCH="refs/pull/7/merge",
           SYSTEM_PULLREQUEST_SOURCEBRANCH="feature/x", SYSTEM_PULLREQUEST_ISFORK="True"),
     CiContext("azure", PR, branch="feature/x", repository=REPO, fork=True)),
    ("manual", azure(BUILD_REASON="Manual", BUILD_SOURCEBRANCH="refs/tags/1.2.3"),
     CiContext("azure", TAG, tag="1.2.3", repository=REPO, manual=True)),
    ("schedule", azure(BUILD_REASON="Schedule", BUILD_SOURCEBRANCH="refs/heads/main"),
     CiContext("azure", BRANCH, branch="main", repository=REPO,
               refusal=refused("azure", "Schedule"))),
    ("a resource trigger", azure(BUILD_REASON="ResourceTrigger",
                                 BUILD_SOURCEBRANCH="refs/tags/1.2.3"),
     CiContext("azure", TAG, tag="1.2.3", repository=REPO,
               refusal=refused("azure", "ResourceTrigger"))),
    ("a build completion trigger", azure(BUILD_REASON="BuildCompletion",
                                         BUILD_SOURCEBRANCH="refs/heads/x"),
     CiContext("azure", BRANCH, branch="x", repository=REPO,
               refusal=refused("azure", "BuildCompletion"))),
    ("no build reason, no ref", {k: v for k, v in azure().items() if k != "BUILD_REASON"},
     CiContext("azure", BRANCH, repository=REPO, refusal=refused("azure", ""))),
    ("the commit CI names", azure(BUILD_SOURCEBRANCH="refs/heads/x", BUILD_SOURCEVERSION="e" * 40),
     CiContext("azure", BRANCH, branch="x", repository=REPO, commit="e" * 40)),
]


@pytest.mark.parametrize(("env", "payload", "expected"),
                         [row[1:] for row in GITHUB], ids=[row[0] for row in GITHUB])
def test_github(env: dict[str, str], payload: object, expected: CiContext) -> None:
    assert from_env(env, payload) == expected


@pytest.mark.parametrize(("env", "expected"), [row[1:] for row in TRAVIS],
                         ids=[row[0] for row in TRAVIS])
def test_travis(env: dict[str, str], expected: CiContext) -> None:
    assert from_env(env) == expected


@pytest.mark.parametrize(("env", "expected"), [row[1:] for row in GITLAB],
                         ids=[row[0] for row in GITLAB])
def test_gitlab(env: dict[str, str], expected: CiContext) -> None:
    assert from_env(env) == expected


@pytest.mark.parametrize(("env", "expected"), [row[1:] for row in AZURE],
                         ids=[row[0] for row in AZURE])
def test_azure(env: dict[str, str], expected: CiContext) -> None:
    assert from_env(env) == expected


@pytest.mark.parametrize("env", [
    {},
    {"CI": "true"},
    {"GITHUB_ACTIONS": "false", "GITHUB_REF": "refs/tags/1.2.3"},
    {"TRAVIS": "", "TRAVIS_TAG": "1.2.3"},
    {"HOME": "/root", "PATH": "/usr/bin"},
])
def test_no_provider_is_a_local_run(env: dict[str, str]) -> None:
    assert from_env(env) == CiContext("local", LOCAL)


@pytest.mark.parametrize(("ref", "event", "name"), [
    ("refs/heads/main", BRANCH, "main"),
    ("refs/heads/feature/x", BRANCH, "feature/x"),
    ("refs/heads/refs/tags/x", BRANCH, "refs/tags/x"),
    ("refs/tags/1.2.3", TAG, "1.2.3"),
    ("refs/tags/v1.2.3", TAG, "v1.2.3"),
])
def test_parse_ref(ref: str, event: Event, name: str) -> None:
    assert parse_ref(ref) == (event, name)


BAD_REFS = ["", "main", "1.2.3", "heads/main", "refs/heads/", "refs/tags/", "refs/heads",
            "refs/pull/7/merge", "refs/remotes/origin/main", " refs/heads/main"]


@pytest.mark.parametrize("ref", BAD_REFS)
def test_parse_ref_rejects_what_is_not_a_branch_or_tag_ref(ref: str) -> None:
    with pytest.raises(ReleaseError, match="refs/heads/BRANCH or refs/tags/TAG") as info:
        parse_ref(ref)
    assert repr(ref) in str(info.value)


@pytest.mark.parametrize("ref", BAD_REFS)
def test_with_ref_rejects_bad_refs(ref: str) -> None:
    with pytest.raises(ReleaseError, match="give a full ref"):
        CiContext("local", LOCAL).with_ref(ref)


def test_a_push_without_a_usable_ref_is_an_error() -> None:
    with pytest.raises(ReleaseError, match="GITHUB_REF='' names neither a branch"):
        from_env(github("push", ""), push_payload(""))
    with pytest.raises(ReleaseError, match="GITHUB_REF='refs/remotes/x' names neither"):
        from_env(github("push", "refs/remotes/x"), push_payload("refs/remotes/x"))
    with pytest.raises(ReleaseError, match="BUILD_SOURCEBRANCH='refs/pull/7/merge' names"):
        from_env(azure(BUILD_SOURCEBRANCH="refs/pull/7/merge"))


@pytest.mark.parametrize("event", ["pull_request_review", "pull_request_review_comment"])
def test_the_other_events_of_a_pull_request_build_only(event: str) -> None:
    # GitHub sets GITHUB_REF to refs/pull/N/merge and leaves GITHUB_HEAD_REF empty for them.
    env = github(event, "refs/pull/7/merge")
    assert from_env(env, pr_payload({"full_name": REPO, "fork": False})) == CiContext(
        "github", PR, branch="feature/x", repository=REPO)
    assert from_env(env, pr_payload({"full_name": FORK, "fork": True})) == CiContext(
        "github", PR, branch="feature/x", repository=REPO, fork=True)
    assert from_env(env, None).event is PR


def test_a_merge_queue_trial_merge_builds_only() -> None:
    ref = "refs/heads/gh-readonly-queue/main/pr-7-0123456789abcdef0123456789abcdef01234567"
    payload = {"action": "checks_requested", "merge_group": {"head_ref": ref},
               "repository": {"full_name": REPO, "fork": False}}
    assert from_env(github("merge_group", ref), payload) == CiContext(
        "github", PR, branch=ref.removeprefix("refs/heads/"), repository=REPO)


@pytest.mark.parametrize(("ctx", "ref", "expected"), [
    (CiContext("local", LOCAL), "refs/tags/1.2.3",
     CiContext("local", TAG, tag="1.2.3", manual=True)),
    (CiContext("local", LOCAL), "refs/heads/feature/x",
     CiContext("local", BRANCH, branch="feature/x", manual=True)),
    (CiContext("local", LOCAL, branch="main"), "refs/tags/1.2.3",
     CiContext("local", TAG, tag="1.2.3", manual=True)),
    (CiContext("github", TAG, tag="1.2.3", repository=REPO), "refs/heads/main",
     CiContext("github", BRANCH, branch="main", repository=REPO, manual=True)),
    (CiContext("github", BRANCH, branch="main", repository=FORK, fork=True), "refs/tags/1.2.3",
     CiContext("github", TAG, tag="1.2.3", repository=FORK, fork=True, manual=True)),
])
def test_with_ref(ctx: CiContext, ref: str, expected: CiContext) -> None:
    result = ctx.with_ref(ref)
    assert result == expected
    assert result.ref == ref


@pytest.mark.parametrize(("ctx", "ref"), [
    (CiContext("github", TAG, tag="1.2.3"), "refs/tags/1.2.3"),
    (CiContext("github", BRANCH, branch="feature/x"), "refs/heads/feature/x"),
    (CiContext("github", PR, branch="feature/x"), "refs/heads/feature/x"),
    (CiContext("local", LOCAL), None),
])
def test_ref(ctx: CiContext, ref: str | None) -> None:
    assert ctx.ref == ref


@pytest.mark.parametrize(("ctx", "text"), [
    (CiContext("github", TAG, tag="1.2.3"), "GitHub Actions: tag push 1.2.3"),
    (CiContext("travis", BRANCH, branch="feature/x"), "Travis CI: branch push feature/x"),
    (CiContext("gitlab", PR, branch="feature/x", fork=True),
     "GitLab CI: pull request feature/x (fork)"),
    (CiContext("azure", BRANCH, branch="main", manual=True),
     "Azure Pipelines: branch push main (manual)"),
    (CiContext("local", LOCAL), "local: local run"),
    (CiContext("local", TAG, tag="1.2.3", manual=True), "local: tag push 1.2.3 (manual)"),
])
def test_describe(ctx: CiContext, text: str) -> None:
    assert ctx.describe() == text


# detect(): the payload file


def write_payload(tmp_path: Path, payload: dict[str, Any]) -> str:
    path = tmp_path / "event.json"
    path.write_text(json.dumps(payload))
    return str(path)


def test_detect_reads_the_payload_of_a_fork_pull_request(tmp_path: Path) -> None:
    env = {**github("pull_request", "refs/pull/7/merge", head_ref="feature/x"),
           "GITHUB_EVENT_PATH": write_payload(tmp_path, pr_payload({"full_name": FORK}))}
    assert detect(env) == CiContext("github", PR, branch="feature/x", repository=REPO, fork=True)


def test_detect_reads_the_payload_of_a_push_in_a_fork(tmp_path: Path) -> None:
    payload = push_payload("refs/heads/feature/x", repo=FORK, fork=True)
    env = {**github("push", "refs/heads/feature/x", repo=FORK),
           "GITHUB_EVENT_PATH": write_payload(tmp_path, payload)}
    assert detect(env) == CiContext("github", BRANCH, branch="feature/x", repository=FORK,
                                    fork=True)


def test_detect_same_repository_pull_request(tmp_path: Path) -> None:
    payload = pr_payload({"full_name": REPO, "fork": False})
    env = {**github("pull_request", "refs/pull/7/merge", head_ref="feature/x"),
           "GITHUB_EVENT_PATH": write_payload(tmp_path, payload)}
    assert detect(env) == CiContext("github", PR, branch="feature/x", repository=REPO)


def test_a_payload_nested_too_deep_to_read_builds_only(tmp_path: Path) -> None:
    path = tmp_path / "event.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    ctx = detect({**github("push", "refs/heads/x"), "GITHUB_EVENT_PATH": str(path)})
    assert ctx.doubt is not None
    assert "is missing or not a JSON object" in ctx.doubt


def test_detect_without_a_payload_path_builds_only(tmp_path: Path) -> None:
    assert detect(github("push", "refs/tags/1.2.3")) == CiContext(
        "github", TAG, tag="1.2.3", repository=REPO, doubt=NO_PATH)


@pytest.mark.parametrize("text", [None, "{not json", "null", "[1]", '"x"'])
def test_detect_a_missing_or_malformed_payload_file_builds_only(tmp_path: Path,
                                                                 text: str | None) -> None:
    path = tmp_path / "event.json"
    if text is not None:
        path.write_text(text)
    env = {**github("push", "refs/heads/main"), "GITHUB_EVENT_PATH": str(path)}
    context = detect(env)
    assert context.doubt is not None
    assert str(path) in context.doubt


def test_detect_reads_no_payload_outside_github(tmp_path: Path) -> None:
    env = {**travis(TRAVIS_BRANCH="main"), "GITHUB_EVENT_PATH": str(tmp_path / "nope.json")}
    assert detect(env) == CiContext("travis", BRANCH, branch="main", repository=REPO)


def test_detect_reads_the_process_environment(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GITHUB_ACTIONS", "TRAVIS", "GITLAB_CI", "TF_BUILD"):
        monkeypatch.delenv(name, raising=False)
    payload = pr_payload({"full_name": FORK, "fork": True})
    env = {**github("pull_request", "refs/pull/7/merge", head_ref="feature/x"),
           "GITHUB_EVENT_PATH": write_payload(tmp_path, payload)}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert detect() == CiContext("github", PR, branch="feature/x", repository=REPO, fork=True)
