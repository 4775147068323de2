"""The plan: docs/how-it-works.md's table, row by row, for every CI provider and for a local run."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from brewblox_release import _ci as ci
from brewblox_release._ci import CiContext, Event
from brewblox_release._config import Config
from brewblox_release._errors import VersionError
from brewblox_release._plan import ImagePlan, Plan, highest_final, make_plan, tag_version
from brewblox_release._project import TagRule

REPO = "brewblox/demo-svc"
FORK = "someone/demo-svc"
IMAGE = "brewblox/demo-svc"
ROOT = Path("/srv/demo-svc")


def config(**section: Any) -> Config:
    """A service's config, read through `Config.from_data` as from its pyproject.toml."""
    return Config.from_data(ROOT, {"tool": {"brewblox-release": {"image": IMAGE, **section}}},
                            "demo-svc")


CONFIG = config()


# The environment each provider really sets, per event.


def _github(event: str, ref: str, payload: dict[str, Any], *, repo: str = REPO,
            head_ref: str = "") -> CiContext:
    env = {"CI": "true", "GITHUB_ACTIONS": "true", "GITHUB_EVENT_NAME": event, "GITHUB_REF": ref,
           "GITHUB_REPOSITORY": repo, "GITHUB_HEAD_REF": head_ref,
           "GITHUB_BASE_REF": "main" if head_ref else ""}
    return ci.from_env(env, payload)


def _github_pr(head_repo: str, branch: str) -> CiContext:
    payload = {"number": 7, "repository": {"full_name": REPO, "fork": False},
               "pull_request": {"head": {"ref": branch, "repo": {
                   "full_name": head_repo, "fork": head_repo != REPO}}}}
    return _github("pull_request", "refs/pull/7/merge", payload, head_ref=branch)


def _travis(**extra: str) -> CiContext:
    return ci.from_env({"CI": "true", "TRAVIS": "true", "TRAVIS_REPO_SLUG": REPO,
                        "TRAVIS_PULL_REQUEST": "false", "TRAVIS_PULL_REQUEST_SLUG": "",
                        "TRAVIS_PULL_REQUEST_BRANCH": "", "TRAVIS_TAG": "",
                        "TRAVIS_EVENT_TYPE": "push", **extra})


def _travis_pr(slug: str, branch: str) -> CiContext:
    return _travis(TRAVIS_PULL_REQUEST="7", TRAVIS_BRANCH="main",
                   TRAVIS_PULL_REQUEST_BRANCH=branch, TRAVIS_PULL_REQUEST_SLUG=slug,
                   TRAVIS_EVENT_TYPE="pull_request")


def _gitlab(**extra: str) -> CiContext:
    return ci.from_env({"CI": "true", "GITLAB_CI": "true", "CI_PROJECT_PATH": REPO,
                        "CI_PIPELINE_SOURCE": "push", **extra})


def _gitlab_mr(source: str, branch: str) -> CiContext:
    return _gitlab(CI_PIPELINE_SOURCE="merge_request_event", CI_MERGE_REQUEST_IID="7",
                   CI_MERGE_REQUEST_SOURCE_PROJECT_PATH=source,
                   CI_MERGE_REQUEST_SOURCE_BRANCH_NAME=branch, CI_COMMIT_REF_NAME=branch)


def _azure(**extra: str) -> CiContext:
    return ci.from_env({"TF_BUILD": "True", "BUILD_REPOSITORY_NAME": REPO,
                        "BUILD_REASON": "IndividualCI", **extra})


def _azure_pr(fork: bool, branch: str) -> CiContext:
    return _azure(BUILD_REASON="PullRequest", BUILD_SOURCEBRANCH="refs/pull/7/merge",
                  SYSTEM_PULLREQUEST_SOURCEBRANCH=f"refs/heads/{branch}",
                  SYSTEM_PULLREQUEST_ISFORK=str(fork))


@dataclass(frozen=True)
class Provider:
    """How one provider reports each event."""

    name: str
    tag: Callable[[str], CiContext]
    branch: Callable[[str], CiContext]
    pull_request: Callable[[str], CiContext] | None
    fork: Callable[[str], CiContext] | None


PROVIDERS = [
    Provider(
        "github",
        tag=lambda tag: _github("push", f"refs/tags/{tag}",
                                {"ref": f"refs/tags/{tag}",
                                 "repository": {"full_name": REPO, "fork": False}}),
        branch=lambda branch: _github("push", f"refs/heads/{branch}",
                                      {"ref": f"refs/heads/{branch}",
                                       "repository": {"full_name": REPO, "fork": False}}),
        pull_request=lambda branch: _github_pr(REPO, branch),
        fork=lambda branch: _github_pr(FORK, branch),
    ),
    Provider(
        "travis",
        tag=lambda tag: _travis(TRAVIS_TAG=tag, TRAVIS_BRANCH=tag),
        branch=lambda branch: _travis(TRAVIS_BRANCH=branch),
        pull_request=lambda branch: _travis_pr(REPO, branch),
        fork=lambda branch: _travis_pr(FORK, branch),
    ),
    Provider(
        "gitlab",
        tag=lambda tag: _gitlab(CI_COMMIT_TAG=tag, CI_COMMIT_REF_NAME=tag),
        branch=lambda branch: _gitlab(CI_COMMIT_BRANCH=branch, CI_COMMIT_REF_NAME=branch),
        pull_request=lambda branch: _gitlab_mr(REPO, branch),
        fork=lambda branch: _gitlab_mr(FORK, branch),
    ),
    Provider(
        "azure",
        tag=lambda tag: _azure(BUILD_SOURCEBRANCH=f"refs/tags/{tag}"),
        branch=lambda branch: _azure(BUILD_SOURCEBRANCH=f"refs/heads/{branch}"),
        pull_request=lambda branch: _azure_pr(False, branch),
        fork=lambda branch: _azure_pr(True, branch),
    ),
    # A local run with --publish or --ref: the checked-out ref, as CI would push it.
    Provider(
        "local",
        tag=lambda tag: ci.from_env({}).with_ref(f"refs/tags/{tag}"),
        branch=lambda branch: ci.from_env({}).with_ref(f"refs/heads/{branch}"),
        pull_request=None,
        fork=None,
    ),
]

CI_PROVIDERS = [p for p in PROVIDERS if p.pull_request is not None]


def ids(providers: Iterable[Provider]) -> list[str]:
    return [p.name for p in providers]


# What a plan says, in one comparable value.


@dataclass(frozen=True)
class Expected:
    upload: bool
    amd64: tuple[str, ...]
    arm: tuple[str, ...]
    push: bool
    latest: bool = False
    reason: str | None = None  # a fragment of the one reason line; None: no reason at all


def check(plan: Plan, ctx: CiContext, version: str, expected: Expected,
          cfg: Config = CONFIG) -> None:
    assert plan.version == version
    assert plan.context == ctx
    assert plan.upload is expected.upload
    assert plan.latest is expected.latest
    assert plan.images == (
        ImagePlan("amd64", "linux/amd64", "docker", IMAGE, expected.amd64, expected.push),
        ImagePlan("arm", "linux/arm/v7", "rpi-docker", IMAGE, expected.arm, expected.push),
    )
    assert plan.publishes is (expected.upload or expected.push)
    if expected.reason is None:
        assert plan.reasons == ()
    else:
        assert any(expected.reason in line for line in plan.reasons), plan.reasons
    assert plan.render()  # every plan can be printed for --dry-run
    assert cfg.pypi or not plan.upload


NOTHING = Expected(upload=False, amd64=("local",), arm=("rpi-local",), push=False,
                   reason="publishes nothing")

# docs/how-it-works.md rows that a push (of a tag or a branch) makes: (label, kind, ref name,
# version, plan)
PUSH_ROWS: list[tuple[str, str, str, str, Expected]] = [
    ("final release", "tag", "1.2.3", "1.2.3",
     Expected(upload=True, amd64=("1.2.3", "latest"), arm=("rpi-1.2.3", "rpi-latest"), push=True,
              latest=True)),
    ("final release, v-prefixed tag", "tag", "v1.2.3", "1.2.3",
     Expected(upload=True, amd64=("1.2.3", "latest"), arm=("rpi-1.2.3", "rpi-latest"), push=True,
              latest=True)),
    ("pre-release", "tag", "1.3.0rc1", "1.3.0rc1",
     Expected(upload=True, amd64=("1.3.0rc1",), arm=("rpi-1.3.0rc1",), push=True,
              reason="pre-release")),
    ("branch push", "branch", "feature/Add_Doodad", "1.2.4.dev5",
     Expected(upload=True, amd64=("feature-add_doodad",), arm=("rpi-feature-add_doodad",),
              push=True)),
    ("quiet branch master", "branch", "master", "1.2.4.dev5", NOTHING),
    ("quiet branch main", "branch", "main", "1.2.4.dev5", NOTHING),
    ("race guard", "branch", "feature/Add_Doodad", "1.3.0",
     Expected(upload=False, amd64=("feature-add_doodad",), arm=("rpi-feature-add_doodad",),
              push=True, reason="the tag's own build publishes it")),
    ("race guard on a pre-release", "branch", "feature/Add_Doodad", "1.3.0rc1",
     Expected(upload=False, amd64=("feature-add_doodad",), arm=("rpi-feature-add_doodad",),
              push=True, reason="the tag's own build publishes it")),
    ("a version scheme without dev versions", "branch", "feature/Add_Doodad", "1.2.3.post6",
     Expected(upload=False, amd64=("feature-add_doodad",), arm=("rpi-feature-add_doodad",),
              push=True, reason="set a version_scheme that makes dev versions")),
    ("reserved branch name", "branch", "latest", "1.2.4.dev5",
     Expected(upload=True, amd64=("branch-latest",), arm=("rpi-branch-latest",), push=True)),
]


def context(provider: Provider, kind: str, name: str) -> CiContext:
    return provider.tag(name) if kind == "tag" else provider.branch(name)


@pytest.mark.parametrize(("kind", "name", "version", "expected"),
                         [row[1:] for row in PUSH_ROWS], ids=[row[0] for row in PUSH_ROWS])
@pytest.mark.parametrize("provider", PROVIDERS, ids=ids(PROVIDERS))
def test_push(provider: Provider, kind: str, name: str, version: str,
              expected: Expected) -> None:
    ctx = context(provider, kind, name)
    assert ctx.provider == provider.name
    assert ctx.event is (Event.TAG if kind == "tag" else Event.BRANCH)
    assert not ctx.fork
    check(make_plan(ctx, version, CONFIG), ctx, version, expected)


@pytest.mark.parametrize("provider", CI_PROVIDERS, ids=ids(CI_PROVIDERS))
@pytest.mark.parametrize("version", ["1.2.4.dev5", "1.2.3"])
@pytest.mark.parametrize("ref", [None, "refs/heads/feature/x", "refs/tags/1.2.3"])
def test_pull_request_publishes_nothing(provider: Provider, version: str,
                                        ref: str | None) -> None:
    """Also with ``--ref`` (a pipeline's own command line): it never makes a pull request a
    push."""
    assert provider.pull_request is not None
    ctx = provider.pull_request("feature/Add_Doodad")
    ctx = ctx.with_ref(ref) if ref else ctx
    assert ctx.event is Event.PULL_REQUEST
    assert not ctx.fork
    expected = Expected(upload=False, amd64=("local",), arm=("rpi-local",), push=False,
                        reason="pull request: builds only")
    check(make_plan(ctx, version, CONFIG), ctx, version, expected)


@pytest.mark.parametrize("provider", CI_PROVIDERS, ids=ids(CI_PROVIDERS))
def test_fork_pull_request_publishes_nothing(provider: Provider) -> None:
    assert provider.fork is not None
    ctx = provider.fork("feature/Add_Doodad")
    assert ctx.fork
    expected = Expected(upload=False, amd64=("local",), arm=("rpi-local",), push=False,
                        reason="builds only")
    check(make_plan(ctx, "1.2.4.dev5", CONFIG), ctx, "1.2.4.dev5", expected)


FORK_PUSH = {"repository": {"full_name": FORK, "fork": True}}


@pytest.mark.parametrize(("ref", "version"), [
    ("refs/heads/feature/Add_Doodad", "1.2.4.dev5"),
    ("refs/tags/1.2.3", "1.2.3"),
])
def test_a_push_in_a_fork_publishes_nothing(ref: str, version: str) -> None:
    ctx = _github("push", ref, {"ref": ref, **FORK_PUSH}, repo=FORK)
    assert ctx.fork
    expected = Expected(upload=False, amd64=("local",), arm=("rpi-local",), push=False,
                        reason="a fork's build: publishes nothing")
    check(make_plan(ctx, version, CONFIG), ctx, version, expected)


@pytest.mark.parametrize("version", ["1.2.4.dev5", "1.2.3"])
def test_local_run_builds_and_loads(version: str) -> None:
    ctx = ci.from_env({})
    assert ctx == CiContext("local", Event.LOCAL)
    expected = Expected(upload=False, amd64=("local",), arm=("rpi-local",), push=False,
                        reason="local run: builds only")
    check(make_plan(ctx, version, CONFIG), ctx, version, expected)


# `latest`: only to a final release at least as high as every final release published.


@pytest.mark.parametrize(("version", "published", "latest"), [
    ("1.2.3", [], True),
    ("1.2.3", ["1.0.0", "1.2.2"], True),
    ("1.2.3", ["1.2.3"], True),                         # re-running the highest release
    ("1.2.3", ["1.0.0", "1.2.3", "1.2.4.dev1"], True),
    ("1.2.3", ["2.0.0.dev3", "2.0.0rc1"], True),        # dev and pre-releases do not count
    ("1.2.3", ["2.0.0.dev3", "2.0.0rc1", "2.0.0b2", "2.0.0a1"], True),
    ("1.2.3", ["not a version", "latest", "1.0.0"], True),
    ("1.1.1", ["1.0.0", "1.2.0", "2.0.0"], False),      # maintenance release
    ("1.1.1", ["2.0.0"], False),
    ("1.2.3", ["1.2.4"], False),
    ("1.2.3", ["1.2.3.post1"], False),
    ("2.0.0", ["1.1.1", "2.0.0rc1", "2.0.0.dev3"], True),
])
@pytest.mark.parametrize("provider", PROVIDERS, ids=ids(PROVIDERS))
def test_latest(provider: Provider, version: str, published: list[str], latest: bool) -> None:
    ctx = provider.tag(version)
    plan = make_plan(ctx, version, CONFIG, published)
    expected = Expected(
        upload=True, push=True, latest=latest,
        amd64=(version, "latest") if latest else (version,),
        arm=(f"rpi-{version}", "rpi-latest") if latest else (f"rpi-{version}",),
        reason=None if latest else "latest stays there")
    check(plan, ctx, version, expected)


def test_latest_never_moves_to_a_pre_release_even_with_nothing_published() -> None:
    plan = make_plan(PROVIDERS[0].tag("2.0.0rc1"), "2.0.0rc1", CONFIG, [])
    assert not plan.latest
    assert all("latest" not in tag for image in plan.images for tag in image.tags)


@pytest.mark.parametrize("provider", PROVIDERS, ids=ids(PROVIDERS))
def test_a_dev_build_never_gets_latest(provider: Provider) -> None:
    plan = make_plan(provider.branch("feature/x"), "9.9.9.dev1", CONFIG, ["1.0.0"])
    assert not plan.latest
    assert all("latest" not in tag for image in plan.images for tag in image.tags)


# Tags that cannot be released.


@pytest.mark.parametrize("provider", PROVIDERS, ids=ids(PROVIDERS))
@pytest.mark.parametrize("tag", ["1.2.3-final", "v1.2.3-final", "svc-1.2.3-final"])
def test_a_release_tag_that_is_not_a_version_is_an_error(provider: Provider, tag: str) -> None:
    with pytest.raises(VersionError, match=re.escape(f"tag '{tag}' is not a version")):
        make_plan(provider.tag(tag), "1.2.3", CONFIG)


@pytest.mark.parametrize("provider", PROVIDERS, ids=ids(PROVIDERS))
@pytest.mark.parametrize("tag", ["not-a-version", "latest", "nightly"])
def test_a_tag_the_tag_rule_does_not_match_builds_only(provider: Provider, tag: str) -> None:
    """Not a release tag of the service (its tag regex, here setuptools_scm's default, says
    so), as a tag another service's regex takes is not."""
    plan = make_plan(provider.tag(tag), "1.2.3", CONFIG)
    assert not plan.publishes
    assert plan.reasons == (f"tag {tag} is not a release tag of {CONFIG.name} (release tags "
                            "look like 1.2.3 or v1.2.3): builds only, publishes nothing",)


@pytest.mark.parametrize("provider", PROVIDERS, ids=ids(PROVIDERS))
@pytest.mark.parametrize(("tag", "version"), [
    ("1.2.4", "1.2.3"),
    ("1.2.3", "1.2.4.dev1"),
    ("v1.2.4", "1.2.3"),
    ("1.3.0rc1", "1.3.0rc2"),
    ("1.3.0", "1.3.0rc1"),
])
def test_a_tag_disagreeing_with_the_version_is_an_error(provider: Provider, tag: str,
                                                        version: str) -> None:
    pattern = rf"tag {re.escape(tag)} does not agree .*\({re.escape(version)}\)"
    with pytest.raises(VersionError, match=pattern):
        make_plan(provider.tag(tag), version, CONFIG)


@pytest.mark.parametrize(("tag", "version"), [
    ("V1.2.3", "1.2.3"),
    ("1.2.3.0", "1.2.3"),   # PEP 440 equal
    ("1.3.0-rc.1", "1.3.0rc1"),
])
def test_a_tag_equal_to_the_version_under_pep_440_is_accepted(tag: str, version: str) -> None:
    plan = make_plan(PROVIDERS[0].tag(tag), version, CONFIG)
    assert plan.image("amd64").tags[0] == version


def test_a_branch_push_without_a_branch_name_is_an_error() -> None:
    ctx = ci.from_env({"TRAVIS": "true", "TRAVIS_PULL_REQUEST": "false",
                       "TRAVIS_EVENT_TYPE": "push"})
    assert ctx == CiContext("travis", Event.BRANCH)
    with pytest.raises(VersionError, match="--ref refs/heads/NAME"):
        make_plan(ctx, "1.2.4.dev5", CONFIG)


# Configuration.


@pytest.mark.parametrize("provider", PROVIDERS, ids=ids(PROVIDERS))
@pytest.mark.parametrize(("kind", "name", "version", "tags"), [
    ("tag", "1.2.3", "1.2.3", (("1.2.3", "latest"), ("rpi-1.2.3", "rpi-latest"))),
    ("tag", "1.3.0rc1", "1.3.0rc1", (("1.3.0rc1",), ("rpi-1.3.0rc1",))),
    ("branch", "feature/Add_Doodad", "1.2.4.dev5",
     (("feature-add_doodad",), ("rpi-feature-add_doodad",))),
])
def test_pypi_false_uploads_nothing_but_pushes_images(provider: Provider, kind: str, name: str,
                                                      version: str,
                                                      tags: tuple[tuple[str, ...], ...]) -> None:
    cfg = config(pypi=False)
    ctx = context(provider, kind, name)
    plan = make_plan(ctx, version, cfg)
    expected = Expected(upload=False, amd64=tags[0], arm=tags[1], push=True,
                        latest="latest" in tags[0], reason="pypi = false")
    check(plan, ctx, version, expected, cfg)


@pytest.mark.parametrize("provider", PROVIDERS, ids=ids(PROVIDERS))
@pytest.mark.parametrize(("branch", "expected"), [
    ("develop", NOTHING),
    ("release/1.x", NOTHING),
    ("master", Expected(upload=True, amd64=("master",), arm=("rpi-master",), push=True)),
    ("main", Expected(upload=True, amd64=("main",), arm=("rpi-main",), push=True)),
    ("Develop", Expected(upload=True, amd64=("develop",), arm=("rpi-develop",), push=True)),
])
def test_custom_quiet_branches(provider: Provider, branch: str, expected: Expected) -> None:
    cfg = config(**{"quiet-branches": ["develop", "release/1.x"]})
    ctx = provider.branch(branch)
    check(make_plan(ctx, "1.2.4.dev5", cfg), ctx, "1.2.4.dev5", expected, cfg)


def test_no_quiet_branches() -> None:
    cfg = config(**{"quiet-branches": []})
    plan = make_plan(PROVIDERS[0].branch("main"), "1.2.4.dev5", cfg)
    assert plan.upload
    assert plan.image("amd64").tags == ("main",)


def test_custom_targets_get_their_own_prefixes() -> None:
    cfg = config(targets=[
        {"name": "amd64", "context": "docker", "platform": "linux/amd64"},
        {"name": "arm64", "context": "arm64-docker", "platform": "linux/arm64",
         "prefix": "arm64-"},
    ])
    tag = make_plan(PROVIDERS[0].tag("1.2.3"), "1.2.3", cfg)
    assert [(i.target, i.tags, i.push) for i in tag.images] == [
        ("amd64", ("1.2.3", "latest"), True), ("arm64", ("arm64-1.2.3", "arm64-latest"), True)]
    branch = make_plan(PROVIDERS[0].branch("arm64-latest"), "1.2.4.dev5", cfg)
    assert [i.tags for i in branch.images] == [("branch-arm64-latest",),
                                                ("arm64-branch-arm64-latest",)]
    local = make_plan(ci.from_env({}), "1.2.4.dev5", cfg)
    assert [i.tags for i in local.images] == [("local",), ("arm64-local",)]


def test_plan_without_an_image_still_plans() -> None:
    cfg = Config(ROOT, "demo-svc")
    plan = make_plan(PROVIDERS[0].branch("feature/x"), "1.2.4.dev5", cfg)
    assert plan.image("amd64").refs == ("<image>:feature-x",)


# The plan's own helpers.


def test_refs_and_image_lookup() -> None:
    plan = make_plan(PROVIDERS[0].tag("1.2.3"), "1.2.3", CONFIG)
    assert plan.image("arm").refs == (f"{IMAGE}:rpi-1.2.3", f"{IMAGE}:rpi-latest")
    with pytest.raises(KeyError):
        plan.image("s390x")


@pytest.mark.parametrize(("version", "is_dev"), [
    ("1.2.3", False), ("1.3.0rc1", False), ("1.2.4.dev5", True), ("2.0.0rc1.dev2", True)])
def test_is_dev(version: str, is_dev: bool) -> None:
    assert make_plan(ci.from_env({}), version, CONFIG).is_dev is is_dev


def test_render() -> None:
    plan = make_plan(PROVIDERS[0].tag("1.2.3"), "1.2.3", CONFIG)
    assert plan.render().splitlines() == [
        "event:   GitHub Actions: tag push 1.2.3",
        "version: 1.2.3",
        "index:   upload sdist and wheel of 1.2.3",
        f"amd64:   push {IMAGE}:1.2.3, {IMAGE}:latest",
        f"arm:     push {IMAGE}:rpi-1.2.3, {IMAGE}:rpi-latest",
    ]
    quiet = make_plan(PROVIDERS[0].branch("main"), "1.2.4.dev5", CONFIG).render()
    assert "index:   nothing" in quiet
    assert f"amd64:   build and load {IMAGE}:local" in quiet
    assert "note:    push to main, a quiet branch" in quiet


@pytest.mark.parametrize(("tag", "version"), [
    ("1.2.3", "1.2.3"), ("v1.2.3", "1.2.3"), ("V1.2.3", "1.2.3"), ("1.3.0rc1", "1.3.0rc1"),
    # setuptools_scm's default tag regex takes a prefix ending in '-', as its versions do.
    ("release-1.2.3", "1.2.3"), ("demo-svc-v2.0.0", "2.0.0")])
def test_tag_version(tag: str, version: str) -> None:
    assert str(tag_version(tag)) == version


@pytest.mark.parametrize(("versions", "highest"), [
    ([], None),
    (["2.0.0.dev3", "2.0.0rc1"], None),
    (["1.0.0", "2.0.0rc1", "1.2.3"], "1.2.3"),
    (["1.2.3", "1.2.3.post1", "junk"], "1.2.3.post1"),
])
def test_highest_final(versions: list[str], highest: str | None) -> None:
    top = highest_final(versions)
    assert (None if top is None else str(top)) == highest


# Tags as the service defines them (a monorepo service's tag regex).

SVC_TAGS = TagRule(r"^svc-(?P<version>[vV]?\d+(?:\.\d+){0,2}[^\+]*)$")


@pytest.mark.parametrize("provider", PROVIDERS, ids=ids(PROVIDERS))
def test_a_tag_of_the_service_is_its_release(provider: Provider) -> None:
    plan = make_plan(provider.tag("svc-2.0.0"), "2.0.0", CONFIG, ["1.0.0"], tags=SVC_TAGS)
    assert plan.upload
    assert plan.latest
    assert plan.image("amd64").tags == ("2.0.0", "latest")
    assert plan.image("arm").tags == ("rpi-2.0.0", "rpi-latest")


@pytest.mark.parametrize("provider", PROVIDERS, ids=ids(PROVIDERS))
@pytest.mark.parametrize("tag", ["other-2.0.0", "2.0.0", "v2.0.0", "not-a-version"])
def test_a_tag_of_another_service_builds_only(provider: Provider, tag: str) -> None:
    plan = make_plan(provider.tag(tag), "1.0.1.dev3", CONFIG, tags=SVC_TAGS)
    assert not plan.publishes
    assert plan.reasons == (f"tag {tag} is not a release tag of demo-svc (its tag regex is "
                            f"{SVC_TAGS.regex}): builds only, publishes nothing",)


@pytest.mark.parametrize("provider", PROVIDERS, ids=ids(PROVIDERS))
@pytest.mark.parametrize(("tag", "problem"), [
    ("svc-2.0.0+build5", "has a local part"),
    ("svc-1!2.0.0", "has an epoch"),
    ("svc-2.0.0-final", "is not a version"),
])
def test_a_tag_of_the_service_that_cannot_be_released(provider: Provider, tag: str,
                                                      problem: str) -> None:
    with pytest.raises(VersionError, match=re.escape(f"tag {tag!r} {problem}")):
        make_plan(provider.tag(tag), "2.0.0", CONFIG, tags=SVC_TAGS)


@pytest.mark.parametrize("provider", PROVIDERS, ids=ids(PROVIDERS))
def test_the_race_guard_with_the_service_tags(provider: Provider) -> None:
    # The version is computed with the service's tag regex: a commit carrying another
    # service's tag is a dev version (a dev release), one carrying its own a release.
    dev = make_plan(provider.branch("feature/x"), "1.0.1.dev3", CONFIG, tags=SVC_TAGS)
    assert dev.upload
    guarded = make_plan(provider.branch("feature/x"), "2.0.0", CONFIG, tags=SVC_TAGS)
    assert not guarded.upload
    assert guarded.image("amd64").tags == ("feature-x",)
    assert "the tag's own build publishes it" in guarded.reasons[0]


def test_tag_version_with_the_service_tags() -> None:
    assert str(tag_version("svc-v2.0.0", SVC_TAGS)) == "2.0.0"
    with pytest.raises(VersionError, match=re.escape("this service's tag regex")):
        tag_version("2.0.0", SVC_TAGS)


# Publishing is allowed, not denied: each rule that refuses is a row (deleting one fails one).
SHA, OTHER = "a" * 40, "b" * 40


@pytest.mark.parametrize(("ctx", "reason"), [
    (CiContext("github", Event.BRANCH, branch="x", repository=REPO, doubt="payload in doubt"),
     "payload in doubt: builds only, publishes nothing"),
    (CiContext("github", Event.TAG, tag="1.2.3", repository=REPO, doubt="payload in doubt"),
     "payload in doubt: builds only, publishes nothing"),
    (CiContext("github", Event.BRANCH, branch="x", repository=REPO, refusal="event 'x' ..."),
     "event 'x' ...: builds only, publishes nothing"),
    (CiContext("gitlab", Event.TAG, tag="1.2.3", repository=REPO, refusal="source 'schedule'"),
     "source 'schedule': builds only, publishes nothing"),
    (CiContext("travis", Event.BRANCH, branch="x", repository=REPO, fork=True),
     "a fork's build: publishes nothing"),
    (CiContext("azure", Event.BRANCH, branch="x", commit=SHA).checked_out(OTHER),
     f"HEAD is {OTHER[:12]}, not {SHA[:12]}, the commit azure names for this run: builds only"),
    (CiContext("github", Event.TAG, tag="1.2.3", commit=SHA).checked_out(OTHER),
     f"HEAD is {OTHER[:12]}, not {SHA[:12]}, the commit github names for this run: builds only"),
])
def test_what_is_not_allowed_builds_only(ctx: CiContext, reason: str) -> None:
    version = "1.2.3" if ctx.event is Event.TAG else "1.2.4.dev5"
    plan = make_plan(ctx, version, CONFIG)
    assert not plan.publishes
    assert not plan.upload
    assert not any(image.push for image in plan.images)
    assert any(r.startswith(reason) for r in plan.reasons), plan.reasons


@pytest.mark.parametrize(("commit", "head", "publishes"), [
    (None, OTHER, True),      # the provider names none: nothing to compare
    (SHA, SHA, True),
    (SHA, OTHER, False),
])
def test_the_commit_is_the_one_ci_names(commit: str | None, head: str, publishes: bool) -> None:
    ctx = CiContext("gitlab", Event.BRANCH, branch="x", repository=REPO, commit=commit)
    assert make_plan(ctx.checked_out(head), "1.2.4.dev5", CONFIG).publishes is publishes


@pytest.mark.parametrize(("env", "payload"), [
    ({"GITHUB_EVENT_NAME": "workflow_run", "GITHUB_REF": "refs/heads/main"},
     {"repository": {"full_name": REPO, "fork": False},
      "workflow_run": {"event": "pull_request", "head_branch": "feature-x", "head_sha": OTHER,
                       "head_repository": {"full_name": FORK, "fork": True}}}),
    ({"GITHUB_EVENT_NAME": "pull_request_target", "GITHUB_REF": "refs/heads/main"},
     {"repository": {"full_name": REPO, "fork": False},
      "pull_request": {"head": {"ref": "x", "repo": {"full_name": FORK, "fork": True}}}}),
    ({"GITHUB_EVENT_NAME": "", "GITHUB_REF": "refs/tags/1.2.3"},
     {"repository": {"full_name": REPO, "fork": False}}),
])
def test_a_forks_code_reaches_no_publishing(env: dict[str, str], payload: object) -> None:
    ctx = ci.from_env({"GITHUB_ACTIONS": "true", "GITHUB_REPOSITORY": REPO, **env}, payload)
    version = "1.2.3" if ctx.event is Event.TAG else "1.2.4.dev5"
    assert not make_plan(ctx, version, CONFIG).publishes


def test_a_disagreeing_tag_names_the_table_that_sets_the_rule() -> None:
    """A hatch-vcs service sets its tag rule in [tool.hatch.version], not setuptools_scm's."""
    rule = TagRule(declared_in="[tool.hatch.version]")
    with pytest.raises(VersionError, match=r"does \[tool\.hatch\.version\] accept it\?"):
        make_plan(PROVIDERS[0].tag("1.2.4"), "1.2.3", CONFIG, tags=rule)
