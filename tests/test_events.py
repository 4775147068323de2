"""Publishing is allowed, not denied (docs/how-it-works.md), through the real command line in a
fresh service with canary files: every event off a provider's allow-list, a checkout of another
commit than the one CI names, and a run whose payload is in doubt plan no upload and no push,
name the event and why, show no traceback and no secret, and change nothing outside the build
outputs. The allowed events, beside them, do publish: the table can fail both ways.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.service import SECRET_VALUES, SENTINELS, clean_env, leaked_secrets, make_service
from tests.test_bad_input import _fingerprint

pytestmark = pytest.mark.process  # the command line, through nox and python -m

REPO = "brewblox/demo-svc"
FORK = "someone/demo-svc"
TOKEN = "tok-SENTINEL-Vq8z"
HEAD = "HEAD"  # stands for the checkout's own commit


@dataclass(frozen=True)
class Event:
    """One run: its environment (``HEAD`` stands for the commit checked out), its GitHub
    payload, whether it publishes, and what its plan must say."""

    id: str
    env: dict[str, str]
    publishes: bool
    says: tuple[str, ...] = ()
    payload: Any = field(default=None)
    args: tuple[str, ...] = ()


def _github(event: str, ref: str, **extra: str) -> dict[str, str]:
    return {"GITHUB_ACTIONS": "true", "GITHUB_EVENT_NAME": event, "GITHUB_REF": ref,
            "GITHUB_REPOSITORY": REPO, **extra}


PUSH = {"ref": "refs/heads/feature/x", "repository": {"full_name": REPO, "fork": False}}


def _run_payload(event: str, head_repo: str, sha: str = HEAD) -> dict[str, object]:
    return {"repository": {"full_name": REPO, "fork": False},
            "workflow_run": {"event": event, "head_branch": "feature-x", "head_sha": sha,
                             "head_repository": {"full_name": head_repo}}}


def _gitlab(source: str, **extra: str) -> dict[str, str]:
    return {"GITLAB_CI": "true", "CI_PIPELINE_SOURCE": source, "CI_PROJECT_PATH": REPO,
            "CI_COMMIT_BRANCH": "feature/x", "CI_COMMIT_REF_NAME": "feature/x", **extra}


def _travis(event: str, **extra: str) -> dict[str, str]:
    return {"TRAVIS": "true", "TRAVIS_EVENT_TYPE": event, "TRAVIS_REPO_SLUG": REPO,
            "TRAVIS_PULL_REQUEST": "false", "TRAVIS_BRANCH": "feature/x", **extra}


def _azure(reason: str, **extra: str) -> dict[str, str]:
    return {"TF_BUILD": "True", "BUILD_REASON": reason, "BUILD_REPOSITORY_NAME": REPO,
            "BUILD_SOURCEBRANCH": "refs/heads/feature/x", **extra}


EVENTS = [
    # GitHub: push and workflow_dispatch publish; workflow_run only of this repository's push
    Event("github push", _github("push", "refs/heads/feature/x"), True, payload=PUSH),
    Event("github workflow_dispatch", _github("workflow_dispatch", "refs/heads/feature/x"), True,
          payload=PUSH),
    Event("github workflow_run of a push", _github("workflow_run", "refs/heads/main"), True,
          ("feature-x",), payload=_run_payload("push", REPO)),
    Event("github workflow_run of a fork's pull request, its commit checked out",
          _github("workflow_run", "refs/heads/main"), False,
          ("'workflow_run' of a pull_request event in someone/demo-svc",),
          payload=_run_payload("pull_request", FORK)),
    Event("github workflow_run of a fork's push", _github("workflow_run", "refs/heads/main"),
          False, ("'workflow_run' of a push event in someone/demo-svc",),
          payload=_run_payload("push", FORK)),
    Event("github workflow_run of this repository's push, another commit checked out",
          _github("workflow_run", "refs/heads/main"), False, ("the commit github names",),
          payload=_run_payload("push", REPO, sha="0" * 40)),
    Event("github pull_request_target", _github("pull_request_target", "refs/heads/main"), False,
          ("pull request",),
          payload={"repository": {"full_name": REPO, "fork": False}, "pull_request": {
              "head": {"ref": "x", "repo": {"full_name": FORK, "fork": True}}}}),
    Event("github issue_comment", _github("issue_comment", "refs/heads/main"), False,
          ("GitHub event 'issue_comment' is not one that publishes",), payload=PUSH),
    Event("github schedule", _github("schedule", "refs/heads/feature/x"), False,
          ("GitHub event 'schedule'",), payload=PUSH),
    Event("github repository_dispatch", _github("repository_dispatch", "refs/heads/feature/x"),
          False, ("'repository_dispatch'",), payload=PUSH),
    Event("github empty event name", _github("", "refs/heads/feature/x"), False,
          ("GitHub event (empty)",), payload=PUSH),
    Event("github an unknown event", _github("deployment", "refs/heads/feature/x"), False,
          ("'deployment'",), payload=PUSH),
    Event("github push, no payload", _github("push", "refs/heads/feature/x"), False,
          ("missing or not a JSON object",)),
    Event("github push of another commit", _github("push", "refs/heads/feature/x",
                                                   GITHUB_SHA="0" * 40), False,
          ("HEAD is", "not 000000000000, the commit github names"), payload=PUSH),
    Event("github push of this commit", _github("push", "refs/heads/feature/x", GITHUB_SHA=HEAD),
          True, payload=PUSH),
    # GitLab: push, web, api, trigger
    Event("gitlab push", _gitlab("push", CI_COMMIT_SHA=HEAD), True),
    Event("gitlab web", _gitlab("web"), True),
    Event("gitlab schedule", _gitlab("schedule"), False, ("GitLab pipeline source 'schedule'",)),
    Event("gitlab parent_pipeline", _gitlab("parent_pipeline"), False, ("'parent_pipeline'",)),
    Event("gitlab pipeline", _gitlab("pipeline"), False, ("'pipeline'",)),
    Event("gitlab no source", {k: v for k, v in _gitlab("").items()
                               if k != "CI_PIPELINE_SOURCE"}, False, ("(empty)",)),
    Event("gitlab push of another commit", _gitlab("push", CI_COMMIT_SHA="0" * 40), False,
          ("the commit gitlab names",)),
    # Travis: push, api
    Event("travis push", _travis("push", TRAVIS_COMMIT=HEAD), True),
    Event("travis cron", _travis("cron"), False, ("Travis event type 'cron'",)),
    Event("travis no event type", {k: v for k, v in _travis("").items()
                                   if k != "TRAVIS_EVENT_TYPE"}, False, ("(empty)",)),
    Event("travis push of another commit", _travis("push", TRAVIS_COMMIT="0" * 40), False,
          ("the commit travis names",)),
    # Azure: IndividualCI, BatchedCI, Manual
    Event("azure IndividualCI", _azure("IndividualCI", BUILD_SOURCEVERSION=HEAD), True),
    Event("azure Schedule", _azure("Schedule"), False, ("Azure build reason 'Schedule'",)),
    Event("azure ResourceTrigger", _azure("ResourceTrigger"), False, ("'ResourceTrigger'",)),
    Event("azure BuildCompletion", _azure("BuildCompletion"), False, ("'BuildCompletion'",)),
    Event("azure IndividualCI of another commit",
          _azure("IndividualCI", BUILD_SOURCEVERSION="0" * 40), False,
          ("the commit azure names",)),
    # What the plan shows of a URL: never its userinfo
    Event("index URL with a token as user", {**_gitlab("push"), "TWINE_REPOSITORY_URL":
                                             f"https://{TOKEN}@upload.example.invalid/legacy/"},
          True, ("https://****@upload.example.invalid/legacy/",)),
    Event("index URL with user and token", {**_gitlab("push"), "TWINE_REPOSITORY_URL":
                                            f"https://me:{TOKEN}@upload.example.invalid/"},
          True, ("https://****@upload.example.invalid/",)),
    # A ref that is not UTF-8 (the bytes of another encoding)
    Event("branch named in bytes that are not UTF-8",
          _gitlab("push", CI_COMMIT_BRANCH="caf\udce9", CI_COMMIT_REF_NAME="caf\udce9"), True,
          ("caf-",)),
    # A branch named in another script, on a terminal that shows ASCII only
    Event("non-ASCII branch on an ASCII terminal",
          {**_gitlab("push", CI_COMMIT_BRANCH="fëature/ünïcode",
                     CI_COMMIT_REF_NAME="fëature/ünïcode"), "PYTHONIOENCODING": "ascii",
           "LC_ALL": "C"}, True, ("f-ature-n-code",)),
]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = make_service(tmp_path_factory.mktemp("events") / "demo-svc", image=REPO)
    repo.tag("1.2.3")
    repo.commit("one")
    return repo.path


def _commit(root: Path) -> str:
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                          text=True, check=True).stdout.strip()


@pytest.mark.parametrize("event", EVENTS, ids=[e.id for e in EVENTS])
def test_only_an_allowed_event_of_this_commit_publishes(event: Event, template: Path,
                                                        tmp_path: Path) -> None:
    root = tmp_path / "demo-svc"
    subprocess.run(["cp", "-a", str(template), str(root)], check=True)
    (tmp_path / "canary-beside").mkdir()
    (tmp_path / "canary-beside" / "keep.txt").write_text("beside\n")
    head = _commit(root)
    env = {k: head if v == HEAD else v for k, v in event.env.items()}
    if event.payload is not None:
        payload = json.loads(json.dumps(event.payload).replace(f'"{HEAD}"', f'"{head}"'))
        (tmp_path / "event.json").write_text(json.dumps(payload))
        env["GITHUB_EVENT_PATH"] = str(tmp_path / "event.json")
    before = _fingerprint(tmp_path)
    result = subprocess.run([sys.executable, "-m", "brewblox_release", "version", "--json"],
                            cwd=root, env={**clean_env(), **SENTINELS, **env},
                            capture_output=True, text=True, errors="replace", timeout=120,
                            check=False)
    shown = subprocess.run([sys.executable, "-m", "brewblox_release", "version"], cwd=root,
                           env={**clean_env(), **SENTINELS, **env}, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, errors="replace", timeout=120,
                           check=False)
    output = shown.stdout
    assert result.returncode == 0, result.stderr
    assert shown.returncode == 0, output
    assert "Traceback" not in output + result.stderr
    plan = json.loads(result.stdout)  # machine-readable output stays JSON
    pushes = [image for image in plan["images"] if image["push"]]
    assert bool(plan["index"]["upload"] or pushes) is event.publishes, output
    assert plan["publishes"] is event.publishes
    if not event.publishes:
        assert not plan["index"]["upload"]
        assert not pushes
        assert "builds only, publishes nothing" in output
    for fragment in event.says:
        assert fragment in output, output
    assert not leaked_secrets(output + result.stdout + result.stderr,
                              (*SECRET_VALUES, TOKEN)), output
    assert _fingerprint(tmp_path) == before, "nothing changed outside the build outputs"


def test_the_table_holds_every_provider_both_ways() -> None:
    for provider in ("github", "gitlab", "travis", "azure"):
        rows = [e for e in EVENTS if e.id.startswith(provider)]
        assert any(e.publishes for e in rows)
        assert sum(not e.publishes for e in rows) >= 3
    assert len(EVENTS) >= 30


def test_json_stays_json_whatever_a_secret_looks_like(template: Path, tmp_path: Path) -> None:
    """Each string is masked before the plan is serialised: a secret that reads ``false`` (a
    service's own ``secret-vars``) leaves JSON's literals alone, and one inside a string value
    is masked there."""
    env = {**clean_env(), **_gitlab("push"), "SERVICE_SIGNING_KEY": "false",
           "DOCKER_USERNAME": "ci-user-7", "DOCKER_PASSWORD": 'pw-"quoted"\\-1',
           "BREWBLOX_RELEASE_IMAGE": "registry.example.invalid/ci-user-7/demo-svc"}
    result = subprocess.run([sys.executable, "-m", "brewblox_release", "version", "--json"],
                            cwd=template, env=env, capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["publishes"] is True
    assert plan["event"]["fork"] is False
    assert {image["repository"] for image in plan["images"]} == {
        "registry.example.invalid/****/demo-svc"}
    assert "ci-user-7" not in result.stdout + result.stderr
