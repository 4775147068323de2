"""Versions from real git repositories (docs/versions.md)."""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Mapping
from pathlib import Path

import pytest

from brewblox_release import _config as config, _version as version
from brewblox_release._ci import CiContext, Event
from brewblox_release._errors import VersionError
from brewblox_release._plan import make_plan
from brewblox_release._prepared import Options, Run
from brewblox_release._project import VersionSource

from .service import GitRepo, make_service


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    return make_service(tmp_path / "svc")


def commits(repo: GitRepo, n: int) -> None:
    for i in range(n):
        repo.commit(f"change {i}", files={"CHANGES.md": f"change {i}\n"})


def test_release_on_a_tag(repo: GitRepo) -> None:
    repo.tag("1.2.3")
    info = version.read(repo.path)
    assert info.version == "1.2.3"
    assert info.is_release
    assert info.distance == 0
    assert not info.shallow
    assert not info.dirty
    assert info.git.commit == repo.head
    assert info.git.branch == "main"
    assert info.git.head_tags == ("1.2.3",)
    assert info.git.remotes == ()
    assert info.git.commit_time == 1704067200  # the fixed clock of tests/service.py


@pytest.mark.parametrize(("tag", "n", "expected"), [
    ("1.2.3", 1, "1.2.4.dev1"),
    ("1.2.3", 2, "1.2.4.dev2"),
    ("1.2.3", 5, "1.2.4.dev5"),
    ("v1.2.3", 0, "1.2.3"),
    ("v1.2.3", 2, "1.2.4.dev2"),
    ("1.3.0rc1", 0, "1.3.0rc1"),
    ("1.3.0rc1", 3, "1.3.0rc2.dev3"),
])
def test_version_after_commits(repo: GitRepo, tag: str, n: int, expected: str) -> None:
    repo.tag(tag)
    commits(repo, n)
    info = version.read(repo.path)
    assert info.version == expected
    assert info.distance == n
    assert info.is_release is (n == 0)
    assert info.git.head_tags == ((tag,) if n == 0 else ())


def test_the_highest_tag_wins(repo: GitRepo) -> None:
    repo.tag("1.2.3")
    commits(repo, 2)
    repo.tag("1.3.0")
    commits(repo, 1)
    assert version.compute(repo.path) == "1.3.1.dev1"


@pytest.mark.parametrize("other", ["deploy-prod", "staging"])
def test_a_tag_that_is_not_a_version_is_ignored(repo: GitRepo, other: str) -> None:
    repo.tag("1.2.3")
    commits(repo, 1)
    repo.tag(other)
    info = version.read(repo.path)
    assert info.version == "1.2.4.dev1"
    assert info.git.head_tags == (other,)


def test_compute_works_from_any_directory(repo: GitRepo, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    repo.tag("1.2.3")
    commits(repo, 2)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert version.compute(repo.path) == "1.2.4.dev2"


# Shallow clones.


def shallow_clone(source: GitRepo, tmp_path: Path) -> GitRepo:
    GitRepo(tmp_path).git("clone", "-q", "--depth", "1", f"file://{source.path}", "clone")
    return GitRepo(tmp_path / "clone")


def test_a_shallow_clone_is_detected_and_unshallowed(repo: GitRepo, tmp_path: Path) -> None:
    repo.tag("1.2.3")
    commits(repo, 3)
    clone = shallow_clone(repo, tmp_path)
    state = version.git_state(clone.path)
    assert state.shallow
    assert state.remotes == ("origin",)
    assert state.head_tags == ()
    version.unshallow(clone.path, state)
    info = version.read(clone.path)
    assert not info.shallow
    assert info.version == "1.2.4.dev3"
    assert info.git.commit == repo.head


def test_unshallow_fetches_the_tag_of_a_release(repo: GitRepo, tmp_path: Path) -> None:
    repo.tag("1.2.3")
    commits(repo, 1)
    repo.tag("1.2.4")
    clone = shallow_clone(repo, tmp_path)
    clone.git("tag", "-d", "1.2.4")  # as a CI checkout of a branch at that commit
    state = version.git_state(clone.path)
    assert state.shallow
    version.unshallow(clone.path, state)
    info = version.read(clone.path)
    assert info.version == "1.2.4"
    assert info.git.head_tags == ("1.2.4",)


def test_a_shallow_clone_without_a_remote_says_how_to_get_a_full_clone(
        repo: GitRepo, tmp_path: Path) -> None:
    repo.tag("1.2.3")
    commits(repo, 2)
    clone = shallow_clone(repo, tmp_path)
    clone.git("remote", "remove", "origin")
    state = version.git_state(clone.path)
    assert state.shallow
    assert state.remotes == ()
    with pytest.raises(VersionError, match="shallow clone with no remote") as info:
        version.unshallow(clone.path, state)
    assert "fetch-depth: 0" in str(info.value)
    assert "git fetch --unshallow --tags" in str(info.value)


def test_a_shallow_clone_whose_remote_is_gone_says_how_to_get_a_full_clone(
        repo: GitRepo, tmp_path: Path) -> None:
    repo.tag("1.2.3")
    commits(repo, 2)
    clone = shallow_clone(repo, tmp_path)
    clone.git("remote", "set-url", "origin", f"file://{tmp_path / 'gone'}")
    state = version.git_state(clone.path)
    with pytest.raises(VersionError, match="fetching its history failed") as info:
        version.unshallow(clone.path, state)
    assert "fetch-depth: 0" in str(info.value)


# Dirty trees.


def test_a_modified_tracked_file_makes_the_tree_dirty(repo: GitRepo) -> None:
    repo.tag("1.2.3")
    repo.write("README.md", "# changed\n")
    state = version.git_state(repo.path)
    assert len(state.dirty) == 1
    with pytest.raises(VersionError, match="tracked files differ from the commit") as info:
        version.require_clean(repo.path, state)
    assert "--allow-dirty" in str(info.value)


def test_a_changed_tag_checkout_is_refused_whatever_allow_dirty_says(repo: GitRepo) -> None:
    """setuptools_scm counts a changed tree as past its tag, so --allow-dirty cannot make a
    release of it: the refusal says so, not that the tag and the version disagree."""
    from brewblox_release._prepared import Options
    from brewblox_release._release import prepare

    repo.tag("1.2.3")
    repo.write("README.md", "# changed\n")
    for options in (Options(ref="refs/tags/1.2.3"), Options(ref="refs/tags/1.2.3",
                                                             allow_dirty=True),
                    Options(ref="refs/tags/1.2.3", dry_run=True)):  # no plan to show either
        with pytest.raises(VersionError, match=r"README.md. Commit or stash them: a tag is "
                                               r"released as its commit is \(--allow-dirty is "
                                               r"for branch builds\)$"):
            prepare(repo.path, options, {})
    run = prepare(repo.path, Options(ref="refs/heads/feature/x", allow_dirty=True), {})
    assert run.plan.upload  # a branch build of the changed tree, as asked


def test_a_tag_that_is_not_the_services_builds_as_it_is(repo: GitRepo, tmp_path: Path) -> None:
    """A pushed tag no release rule takes (``nightly``) builds only: a changed tree is no
    error, and a shallow clone is not fetched whole, since nothing is published."""
    from brewblox_release._prepared import Options
    from brewblox_release._release import prepare

    repo.tag("1.2.3")
    commits(repo, 2)
    repo.tag("nightly")
    clone = shallow_clone(repo, tmp_path)
    clone.write("README.md", "# changed\n")
    run = prepare(clone.path, Options(ref="refs/tags/nightly"), {})
    assert not run.plan.publishes
    assert version.git_state(clone.path).shallow, "not fetched whole"


def test_require_clean_names_the_modified_file(repo: GitRepo) -> None:
    repo.write("README.md", "# changed\n")
    state = version.git_state(repo.path)
    assert state.dirty == ("README.md",)
    with pytest.raises(VersionError, match=r"README\.md"):
        version.require_clean(repo.path, state)


def test_require_clean_names_staged_and_later_files(repo: GitRepo) -> None:
    repo.write("README.md", "# changed\n")
    repo.git("add", "README.md")
    repo.write("noxfile.py", "# changed\n")
    state = version.git_state(repo.path)
    assert state.dirty == ("README.md", "noxfile.py")
    with pytest.raises(VersionError, match=r"README\.md, noxfile\.py"):
        version.require_clean(repo.path, state)


def test_require_clean_shows_at_most_ten_files(repo: GitRepo) -> None:
    repo.commit("many", files={f"f{i:02}.txt": "x\n" for i in range(12)})
    for i in range(12):
        repo.write(f"f{i:02}.txt", "y\n")
    repo.git("add", "-A")
    state = version.git_state(repo.path)
    assert len(state.dirty) == 12
    with pytest.raises(VersionError, match=r"f09.txt \.\.\.") as info:
        version.require_clean(repo.path, state)
    assert "f10.txt" not in str(info.value)


def test_untracked_files_do_not_count(repo: GitRepo) -> None:
    repo.tag("1.2.3")
    repo.write("dist/demo_svc-1.2.3-py3-none-any.whl", "wheel")
    repo.write("dist/demo_svc-1.2.3.tar.gz", "sdist")
    repo.write("docker/pkg/demo_svc-1.2.3-py3-none-any.whl", "wheel")
    repo.write("rpi-docker/pkg/demo_svc-1.2.3-py3-none-any.whl", "wheel")
    repo.write(".nox/release/log.txt", "log")
    repo.write("notes.txt", "an untracked file that .gitignore does not cover")
    info = version.read(repo.path)
    assert info.git.dirty == ()
    assert not info.dirty
    version.require_clean(repo.path, info.git)
    assert info.version == "1.2.3"


# Detached HEAD, as CI checks out a tag or a pull request.


def test_a_detached_head_has_the_same_version_and_no_branch(repo: GitRepo) -> None:
    repo.tag("1.2.3")
    commits(repo, 2)
    on_branch = version.read(repo.path)
    repo.checkout("--detach")
    detached = version.read(repo.path)
    assert detached.version == on_branch.version == "1.2.4.dev2"
    assert on_branch.git.branch == "main"
    assert detached.git.branch is None
    assert detached.git.commit == on_branch.git.commit


def test_a_detached_head_on_a_tag(repo: GitRepo) -> None:
    repo.tag("1.2.3")
    commits(repo, 2)
    repo.checkout("1.2.3")
    info = version.read(repo.path)
    assert info.version == "1.2.3"
    assert info.git.branch is None
    assert info.git.head_tags == ("1.2.3",)


# The version must agree with the tag being released.


def test_a_tag_build_whose_version_disagrees_stops(repo: GitRepo) -> None:
    repo.tag("1.2.3")
    cfg = config.load(repo.path)
    computed = version.read(repo.path).version
    assert computed == "1.2.3"
    with pytest.raises(VersionError, match=r"tag 1\.2\.4 does not agree .*\(1\.2\.3\)"):
        make_plan(CiContext("github", Event.TAG, tag="1.2.4"), computed, cfg)
    plan = make_plan(CiContext("github", Event.TAG, tag="1.2.3"), computed, cfg)
    assert plan.upload
    assert plan.image("amd64").refs == ("brewblox/demo-svc:1.2.3", "brewblox/demo-svc:latest")


def test_a_tag_build_checked_out_past_the_tag_stops(repo: GitRepo) -> None:
    repo.tag("1.2.3")
    commits(repo, 1)
    cfg = config.load(repo.path)
    with pytest.raises(VersionError, match=r"tag 1\.2\.3 does not agree .*\(1\.2\.4\.dev1\)"):
        make_plan(CiContext("github", Event.TAG, tag="1.2.3"), version.compute(repo.path), cfg)


# Errors.


def test_not_a_git_checkout(tmp_path: Path) -> None:
    with pytest.raises(VersionError, match=r"git cannot read .* as a checkout: not a git"):
        version.git_state(tmp_path)


def test_a_repository_without_commits(tmp_path: Path) -> None:
    GitRepo(tmp_path / "empty").init()
    with pytest.raises(VersionError, match="has no commit yet"):
        version.git_state(tmp_path / "empty")


@pytest.mark.parametrize(("name", "variable"), [
    ("demo-svc", "SETUPTOOLS_SCM_PRETEND_VERSION_FOR_DEMO_SVC"),
    ("brewblox-devcon-spark", "SETUPTOOLS_SCM_PRETEND_VERSION_FOR_BREWBLOX_DEVCON_SPARK"),
    ("demo_svc", "SETUPTOOLS_SCM_PRETEND_VERSION_FOR_DEMO_SVC"),
    ("Demo.Svc", "SETUPTOOLS_SCM_PRETEND_VERSION_FOR_DEMO_SVC"),
    ("a--b__c..d", "SETUPTOOLS_SCM_PRETEND_VERSION_FOR_A_B_C_D"),
    ("svc", "SETUPTOOLS_SCM_PRETEND_VERSION_FOR_SVC"),
])
def test_the_setuptools_scm_override(name: str, variable: str) -> None:
    source = VersionSource("setuptools_scm", "[tool.setuptools_scm]")
    assert source.build_env(name, "1.2.4.dev5") == {
        variable: "1.2.4.dev5", "SETUPTOOLS_SCM_PRETEND_VERSION": "1.2.4.dev5"}


def test_the_setuptools_scm_override_is_what_setuptools_scm_reads(
        repo: GitRepo, monkeypatch: pytest.MonkeyPatch) -> None:
    repo.tag("1.2.3")
    source = VersionSource("setuptools_scm", "[tool.setuptools_scm]")
    for variable, value in source.build_env("demo-svc", "9.9.9").items():
        monkeypatch.setenv(variable, value)
    assert version.compute(repo.path) == "9.9.9"


def test_compute_raises_no_deprecation_warning(repo: GitRepo) -> None:
    repo.tag("1.2.3")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        assert version.compute(repo.path) == "1.2.3"


def test_a_quiet_branch_push_is_not_a_publishing_run(repo: GitRepo, tmp_path: Path) -> None:
    # docs/versions.md's clean-tree rule is for publishing runs; a push to main publishes nothing.
    from brewblox_release._prepared import Options
    from brewblox_release._release import prepare

    from .service import github_env

    repo.tag("1.2.3")
    (repo.path / "README.md").write_text("changed\n")
    run = prepare(repo.path, Options(), github_env(tmp_path, "refs/heads/main"))
    assert run.plan.images
    assert not any(image.push for image in run.plan.images)
    assert not run.plan.upload
    with pytest.raises(VersionError, match=r"README\.md"):
        prepare(repo.path, Options(), github_env(tmp_path, "refs/heads/feature/x"))


# Refs by their full names (docs/versions.md): a branch called like a tag, a tag called like a
# branch.


def test_a_branch_named_like_a_tag_is_the_branch(repo: GitRepo) -> None:
    repo.tag("1.2.3")
    repo.checkout("-b", "1.2.3")  # `git symbolic-ref --short` says heads/1.2.3 here
    repo.commit("on the branch")
    state = version.git_state(repo.path)
    assert state.branch == "1.2.3"
    assert state.head_tags == ()


def test_a_tag_named_like_a_branch_is_a_tag(repo: GitRepo) -> None:
    repo.tag("1.2.3")
    repo.tag("main")  # a tag named like the checked-out branch
    repo.git("tag", "build-7")  # lightweight tags count too
    state = version.git_state(repo.path)
    assert state.branch == "main"
    assert state.head_tags == ("1.2.3", "build-7", "main")
    repo.checkout("--detach")
    assert version.git_state(repo.path).branch is None


def test_a_tag_with_a_local_part_or_an_epoch_is_refused(repo: GitRepo) -> None:
    from brewblox_release._plan import tag_version

    repo.tag("1.2.4+build5")
    with pytest.raises(VersionError, match=re.escape("tag '1.2.4+build5' has a local part")) \
            as info:
        make_plan(CiContext("github", Event.TAG, tag="1.2.4+build5"),
                  version.compute(repo.path), config.load(repo.path))
    assert "\n" not in str(info.value)
    repo.git("tag", "-d", "1.2.4+build5")
    repo.tag("1!2.0.0")
    with pytest.raises(VersionError, match=r"1!2\.0\.0, has an epoch \(a tag such as 1!2\.0\.0\)"
                       ) as info:
        version.compute(repo.path)  # before any plan: the version itself has it
    assert "\n" not in str(info.value)
    with pytest.raises(VersionError, match=re.escape("tag '1!2.0.0' has an epoch")):
        tag_version("1!2.0.0")


def test_a_local_part_never_reaches_a_version(repo: GitRepo,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Past a tag with a local part, and from a pretended version with one: the scheme's
    ``no-local-version`` drops neither, and no index takes either."""
    repo.tag("1.2.3")
    repo.commit("more")
    repo.tag("1.2.4+build5")
    repo.commit("past the tag")
    assert version.compute(repo.path) == "1.2.5.dev1"
    monkeypatch.setenv("SETUPTOOLS_SCM_PRETEND_VERSION", "1.2.5.dev3+ci7")
    assert version.compute(repo.path) == "1.2.5.dev3"


def test_a_tag_named_main_leaves_main_a_quiet_branch(repo: GitRepo) -> None:
    # With git's short names, HEAD on main with a tag `main` read as branch heads/main: no
    # quiet branch, and `--publish` published a dev release.
    from brewblox_release._prepared import Options
    from brewblox_release._release import prepare

    repo.tag("1.2.3")
    repo.commit("more")
    repo.git("tag", "main")
    run = prepare(repo.path, Options(publish=True), {})
    assert run.context.branch == "main"
    assert not run.plan.publishes
    assert "push to main, a quiet branch" in run.plan.reasons[0]


def test_a_branch_named_like_a_release_publishes_as_that_branch(repo: GitRepo) -> None:
    from brewblox_release._prepared import Options
    from brewblox_release._release import prepare

    repo.tag("1.2.3")
    repo.checkout("-b", "1.2.3")
    repo.commit("more")
    run = prepare(repo.path, Options(publish=True), {})
    assert run.context.branch == "1.2.3"
    assert run.plan.version == "1.2.4.dev1"
    assert run.plan.image("amd64").tags == ("branch-1.2.3",)




def _detached_with_a_branch_scheme(repo: GitRepo) -> None:
    """A version scheme that reads the branch, a commit after 1.2.3, checked out as GitLab and
    Travis check a commit out: on no branch."""
    text = (repo.path / "pyproject.toml").read_text().replace(
        "[tool.setuptools_scm]\n", '[tool.setuptools_scm]\nversion_scheme = "semver-pep440"\n')
    repo.commit("a scheme that reads the branch", files={"pyproject.toml": text})
    repo.tag("1.2.3")
    repo.commit("a fix")
    repo.checkout("--detach")


@pytest.mark.parametrize(("ci_branch", "expected"), [
    (None, "1.2.4.dev1"),          # a detached checkout, no branch named: a patch bump
    ("feature/x", "1.3.0.dev1"),   # semver-pep440: a feature branch bumps the minor
    ("master", "1.2.4.dev1"),
])
def test_a_version_scheme_that_reads_the_branch_gets_the_one_ci_names(
        repo: GitRepo, ci_branch: str | None, expected: str) -> None:
    _detached_with_a_branch_scheme(repo)
    assert version.compute(repo.path, branch=ci_branch) == expected


def test_gitlab_names_the_branch_of_a_detached_checkout(repo: GitRepo) -> None:
    from brewblox_release._prepared import Options
    from brewblox_release._release import prepare

    from .service import gitlab_env

    _detached_with_a_branch_scheme(repo)
    run = prepare(repo.path, Options(dry_run=True), gitlab_env(branch="feature/x"))
    assert run.plan.version == "1.3.0.dev1"


def test_a_broken_tag_ref_is_no_tag_at_head(tmp_path: Path) -> None:
    # Found in review: git warns about it on the stream that lists the refs.
    repo = make_service(tmp_path / "svc")
    repo.tag("1.2.3")
    (repo.path / ".git" / "refs" / "tags" / "bad").write_text("not a sha\n")
    assert version.git_state(repo.path).head_tags == ("1.2.3",)


def _github_run(repo: GitRepo, tmp_path: Path, event: str, payload: Mapping[str, object],
                options: Options | None = None) -> Run:
    from brewblox_release._release import prepare

    from .service import github_env

    env = github_env(tmp_path, "refs/heads/main", event=event, payload=json.dumps(
        {**payload, "repository": {"full_name": "brewblox/demo-svc", "fork": False}}))
    return prepare(repo.path, options or Options(), env)


def test_a_workflow_run_of_a_pushed_tag_builds_only(repo: GitRepo, tmp_path: Path) -> None:
    """GitHub names a pushed tag as a workflow_run's head_branch: with that tag on the commit,
    the run is no push of a branch named like it (which pushed image tags branch-1.2.3)."""
    repo.tag("1.2.3")
    pushed = {"event": "push", "head_sha": repo.head,
              "head_repository": {"full_name": "brewblox/demo-svc"}}
    run = _github_run(repo, tmp_path, "workflow_run",
                      {"workflow_run": {**pushed, "head_branch": "1.2.3"}})
    assert not run.plan.publishes
    assert any("release tags from a workflow started by push" in r for r in run.plan.reasons)
    repo.commit("after the release")  # a branch of that name, past the tag: its push publishes
    pushed["head_sha"] = repo.head
    run = _github_run(repo, tmp_path, "workflow_run",
                      {"workflow_run": {**pushed, "head_branch": "1.2.3"}})
    assert run.plan.upload
    assert run.plan.image("amd64").tags == ("branch-1.2.3",)


def test_ref_in_a_pull_request_says_it_changes_nothing(repo: GitRepo, tmp_path: Path) -> None:
    repo.tag("1.2.3")
    pull = {"pull_request": {"head": {"ref": "feature/x", "repo": {
        "full_name": "brewblox/demo-svc", "fork": False}}}}
    run = _github_run(repo, tmp_path, "pull_request", pull,
                      Options(ref="refs/tags/1.2.3", dry_run=True))
    assert not run.plan.publishes
    assert "--ref refs/tags/1.2.3 changes nothing here: a pull request's run builds only" in \
        run.plan.reasons


def test_a_stage_dry_run_notes_only_what_the_stage_would_refuse(tmp_path: Path) -> None:
    """A docker command's dry run is of its share of the plan: one image, no upload, and for a
    stage no signing. Its notes were the whole release's (an upload's missing TWINE_PASSWORD,
    a signing identity) though the real stage would refuse neither."""
    from brewblox_release._release import prepare

    from .service import github_env

    repo = make_service(tmp_path / "svc", extra="sign = true\n")
    repo.tag("1.2.3")
    repo.commit("after the release")
    env = {**github_env(tmp_path, "refs/heads/feature/x"),
           "BREWBLOX_RELEASE_IMAGE": "127.0.0.1:5000/demo/svc",
           "TWINE_REPOSITORY_URL": "https://pkgs.example.invalid/upload/"}
    whole = prepare(repo.path, Options(dry_run=True), env)
    assert any("TWINE_PASSWORD" in note for note in whole.plan.reasons)
    assert any("sign = true" in note for note in whole.plan.reasons)
    stage = prepare(repo.path, Options(dry_run=True, target="arm", stage=str(tmp_path)), env)
    assert [image.target for image in stage.plan.images] == ["arm"]
    assert not stage.plan.upload
    refused = " ".join(note for note in stage.plan.reasons if "would stop" in note)
    assert "TWINE_PASSWORD" not in refused
    assert "sign = true" not in refused


@pytest.mark.parametrize(("table", "hint"), [
    ('[tool.setuptools_scm]\ntag_regex = "^release-(?P<version>.*)$"\n',
     "set [tool.setuptools_scm.tag] prefix"),
    ('[tool.hatch.version]\nsource = "vcs"\ntag-pattern = "^release-(?P<version>.*)$"\n',
     "set git_describe_command = \"git describe --dirty --tags --long --match 'svc-*'\" in "
     "[tool.hatch.version] raw-options"),
])
def test_another_service_s_tag_gets_the_hint_of_the_service_s_own_backend(
        tmp_path: Path, table: str, hint: str) -> None:
    """git describe found a tag the service's rule does not read (another service's): the hint
    says what to set where the service's backend reads it (hatch-vcs takes no tag table)."""
    backend = ('["hatchling", "hatch-vcs"]', "hatchling.build") if "hatch" in table else \
        ('["setuptools>=64", "setuptools-scm>=8"]', "setuptools.build_meta")
    repo = GitRepo(tmp_path / "svc").init()
    repo.write("pyproject.toml", f"[build-system]\nrequires = {backend[0]}\n"
                                 f'build-backend = "{backend[1]}"\n\n[project]\nname = "svc"\n'
                                 f'dynamic = ["version"]\n\n{table}')
    repo.commit("a service of a monorepo")
    repo.tag("other-9.0.0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # setuptools_scm's "no version found": the log's
        with pytest.raises(VersionError, match=re.escape(hint)):
            version.compute(repo.path)


def test_a_tag_a_custom_dunamai_pattern_does_not_match_is_looked_past(tmp_path: Path) -> None:
    """poetry-dynamic-versioning skips a tag its pattern does not match (a deploy tag): so
    does the version, not an error about that tag."""
    repo = GitRepo(tmp_path / "svc").init()
    repo.write("pyproject.toml", '[build-system]\nrequires = ["poetry-core", '
               '"poetry-dynamic-versioning"]\nbuild-backend = "poetry_dynamic_versioning.backend"'
               '\n\n[tool.poetry]\nname = "svc"\nversion = "0.0.0"\n\n'
               "[tool.poetry-dynamic-versioning]\nenable = true\n"
               "pattern = '^rel-(?P<base>\\d+\\.\\d+\\.\\d+)$'\n")
    repo.commit("a poetry service")
    repo.tag("rel-1.2.3")
    repo.commit("one")
    repo.tag("deploy-2024")
    repo.commit("two")
    assert version.compute(repo.path) == "1.2.4.dev2"
