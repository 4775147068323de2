"""The order of a release (docs/how-it-works.md), row by row: `release.carry_out` with effects
that record each call and fail where a row says. No git, engine or server: milliseconds.

The rules every row obeys are checked on every row, besides its own expected calls: nothing
happens before preflight; everything is built before anything is published; nothing runs
after a step that failed; ``latest`` moves last; verification is given exactly what was pushed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from brewblox_release import _ci as ci
from brewblox_release._config import Config
from brewblox_release._errors import ReleaseError
from brewblox_release._plan import make_plan
from brewblox_release._prepared import Options, Pushed, Run
from brewblox_release._release import Effects, carry_out
from brewblox_release._version import GitState, VersionInfo

#: The steps that change what users can see.
PUBLISHING = ("push", "upload", "sign", "move latest")


class Recorder(Effects):
    """Effects that record their calls; ``fail`` names the one that raises."""

    def __init__(self, fail: str | None = None, overtaken: bool = False) -> None:
        self.fail, self.is_overtaken = fail, overtaken
        self.calls: list[str] = []
        self.pushed = Pushed(images={"1.2.3": "sha256:" + "a" * 64})
        self.verified: Pushed | None = None

    def _do(self, name: str) -> None:
        self.calls.append(name)
        if name == self.fail:
            raise ReleaseError(f"{name} failed")

    def preflight(self) -> None:
        self._do("preflight")

    def build(self) -> list[Path]:
        self._do("build")
        return [Path("dist/demo_svc-1.2.3.tar.gz")]

    def confirm(self) -> None:
        self._do("confirm")

    @contextmanager
    def publishing(self, files: Any) -> Iterator[None]:
        self._do("login")
        try:
            yield
        finally:
            self.calls.append("logout")

    def push(self) -> Pushed:
        self._do("push")
        return self.pushed

    def upload(self, files: Any) -> None:
        self._do("upload")

    def sign(self, files: Any, pushed: Any) -> None:
        self._do("sign")

    def overtaken(self) -> str | None:
        self._do("overtaken")
        return "1.3.0 was published while this release ran" if self.is_overtaken else None

    def move_latest(self) -> None:
        self._do("move latest")

    def verify(self, pushed: Pushed) -> None:
        self.verified = pushed
        self._do("verify")


def _run(event: str, *, version: str = "1.2.3", published: tuple[str, ...] = (),
         **section: Any) -> Run:
    travis = {"CI": "true", "TRAVIS": "true", "TRAVIS_REPO_SLUG": "brewblox/demo-svc",
              "TRAVIS_PULL_REQUEST": "false", "TRAVIS_EVENT_TYPE": "push", "TRAVIS_TAG": ""}
    travis |= {"tag": {"TRAVIS_TAG": version, "TRAVIS_BRANCH": version},
               "branch": {"TRAVIS_BRANCH": "feature-x"},
               "main": {"TRAVIS_BRANCH": "main"},
               "pull request": {"TRAVIS_PULL_REQUEST": "7", "TRAVIS_BRANCH": "main",
                                "TRAVIS_PULL_REQUEST_SLUG": "someone/demo-svc",
                                "TRAVIS_EVENT_TYPE": "pull_request"}}[event]
    config = Config.from_data(Path("/srv/demo-svc"), {"tool": {"brewblox-release": {
        "image": "brewblox/demo-svc", **section}}}, "demo-svc")
    ctx = ci.from_env(travis)
    state = GitState("c0ffee" * 6 + "c0ff", 0, None, (), False, (), ())
    return Run(config, ctx, VersionInfo(version, state),
               make_plan(ctx, version, config, published), Options(), {})


@dataclass(frozen=True)
class Row:
    name: str
    run: Run
    calls: tuple[str, ...]
    fail: str | None = None
    overtaken: bool = False


RELEASE = ("preflight", "build", "confirm", "login", "push", "upload", "overtaken",
           "move latest", "logout", "verify")

ROWS = [
    Row("a release", _run("tag"), RELEASE),
    Row("a dev release: no latest", _run("branch", version="1.2.4.dev1"),
        ("preflight", "build", "confirm", "login", "push", "upload", "logout", "verify")),
    Row("a release behind a higher one: latest stays",
        _run("tag", published=("1.3.0",)),
        ("preflight", "build", "confirm", "login", "push", "upload", "logout", "verify")),
    Row("a higher release finished meanwhile", _run("tag"),
        ("preflight", "build", "confirm", "login", "push", "upload", "overtaken", "logout",
         "verify"), overtaken=True),
    Row("signed: after the upload, before latest", _run("tag", sign=True),
        ("preflight", "build", "confirm", "login", "push", "upload", "sign", "overtaken",
         "move latest", "logout", "verify")),
    Row("images only", _run("tag", pypi=False),
        ("preflight", "build", "confirm", "login", "push", "overtaken", "move latest", "logout",
         "verify")),
    Row("a pull request builds only", _run("pull request"), ("preflight", "build")),
    Row("a push to main builds only", _run("main", version="1.2.4.dev1"),
        ("preflight", "build")),
    Row("preflight refuses: nothing is built", _run("tag"), ("preflight",), fail="preflight"),
    Row("a build fails: nothing is published", _run("tag"), ("preflight", "build"),
        fail="build"),
    Row("the index's answer refuses: nothing is published", _run("tag"),
        ("preflight", "build", "confirm"), fail="confirm"),
    Row("the registry is unreachable: nothing is pushed", _run("tag"),
        ("preflight", "build", "confirm", "login"), fail="login"),
    Row("a push fails: no upload, no latest", _run("tag"),
        ("preflight", "build", "confirm", "login", "push", "logout"), fail="push"),
    Row("the upload fails: latest stays", _run("tag"),
        ("preflight", "build", "confirm", "login", "push", "upload", "logout"), fail="upload"),
    Row("signing fails: latest stays", _run("tag", sign=True),
        ("preflight", "build", "confirm", "login", "push", "upload", "sign", "logout"),
        fail="sign"),
    Row("moving latest fails: still logged out", _run("tag"), (*RELEASE[:-2], "logout"),
        fail="move latest"),
    Row("verification fails last", _run("tag"), RELEASE, fail="verify"),
]


@pytest.mark.parametrize("row", ROWS, ids=[row.name for row in ROWS])
def test_the_order_of_a_release(row: Row) -> None:
    effects = Recorder(row.fail, row.overtaken)
    if row.fail:
        with pytest.raises(ReleaseError, match=f"{row.fail} failed"):
            carry_out(row.run, effects)
    else:
        carry_out(row.run, effects)
    assert tuple(effects.calls) == row.calls
    calls = effects.calls
    # The rules, on every row.
    assert calls[0] == "preflight"
    published = [i for i, call in enumerate(calls) if call in PUBLISHING]
    if published:
        assert calls.index("build") < published[0]
        assert "confirm" in calls[:published[0]]
        assert calls.index("login") < published[0] < calls.index("logout")
    if "move latest" in calls:
        assert calls.index("move latest") == published[-1]
    if row.fail:
        failed = calls.index(row.fail)
        assert calls[failed + 1:] in ([], ["logout"])
    if "verify" in calls:
        assert effects.verified is effects.pushed
        assert calls[-1] == "verify"
    if not row.run.plan.publishes:
        assert not published
        assert "verify" not in calls


def test_a_plan_that_publishes_nothing_has_no_row_that_publishes() -> None:
    # The table's build-only rows are the plan's, not the test's: the plan says so too.
    assert not _run("pull request").plan.publishes
    assert not _run("main", version="1.2.4.dev1").plan.publishes
    assert _run("tag").plan.publishes


def test_a_stop_that_was_swallowed_stops_before_anything_is_published() -> None:
    # A signal's exception can land in a finalizer, where Python drops it; the run is still
    # marked as stopping, and publishing checks the mark before each of its steps.
    from brewblox_release import _run as output
    from brewblox_release._errors import Interrupted

    effects = Recorder()
    output.stop_starting()
    try:
        with pytest.raises(Interrupted, match="nothing more is published"):
            carry_out(_run("tag"), effects)
    finally:
        output.stop_starting(False)
    assert effects.calls == ["preflight", "build", "confirm", "login", "logout"]
