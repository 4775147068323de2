"""Preflight (docs/how-it-works.md): what a publishing run would refuse, found before anything is
built.

Each case is a real run prepared for a branch push (a dev release: an upload and a push) of a
real service, against a real pypiserver on loopback; `preflight_problems` is also what
``--dry-run`` shows as notes.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from brewblox_release._errors import CredentialsError, ReleaseError
from brewblox_release._prepared import Options, Run
from brewblox_release._release import preflight, preflight_problems, prepare
from brewblox_release._servers import IndexServer
from tests.service import GitRepo, github_env, make_service

SECRET = "Sentinel-pw-7Hq2"
ONE_TARGET = """\
[[tool.brewblox-release.targets]]
name = "amd64"
context = "docker"
platform = "linux/amd64"
"""
ELSEWHERE = "registry.example.invalid/demo/svc"

pytestmark = pytest.mark.process  # the module's pypiserver


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> GitRepo:
    repo = make_service(tmp_path_factory.mktemp("preflight") / "demo-svc", extra=ONE_TARGET)
    repo.tag("1.2.3")
    repo.commit("after the release")
    return repo


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IndexServer]:
    with IndexServer(tmp_path_factory.mktemp("index")) as index:
        assert isinstance(index, IndexServer)
        yield index


def _run(service: GitRepo, server: IndexServer, tmp_path: Path, changes: dict[str, str],
         *, login: str | None = None) -> Run:
    """A branch push to loopback destinations, with ``changes`` to its environment."""
    docker_config = tmp_path / "docker-config"
    docker_config.mkdir(parents=True)
    if login:
        auth = base64.b64encode(b"ci:x").decode()
        (docker_config / "config.json").write_text(json.dumps({"auths": {login: {"auth": auth}}}))
    env = {**github_env(tmp_path, "refs/heads/feature/x"),
           "BREWBLOX_RELEASE_IMAGE": "127.0.0.1:5000/demo/svc",
           "TWINE_REPOSITORY_URL": server.url, "DOCKER_CONFIG": str(docker_config), **changes}
    return prepare(service.path, Options(), {k: v for k, v in env.items() if v})


ELSEWHERE_INDEX = "https://pkgs.example.invalid/upload/"


@pytest.mark.parametrize(("changes", "expected"), [
    pytest.param({}, [], id="loopback index and registry: nothing to refuse"),
    pytest.param({"TWINE_REPOSITORY_URL": ELSEWHERE_INDEX, "TWINE_PASSWORD": SECRET},
                 ["TWINE_USERNAME is not set: add it to the CI secrets"],
                 id="TWINE_USERNAME on a private index"),
    pytest.param({"TWINE_REPOSITORY_URL": ELSEWHERE_INDEX},
                 ["but TWINE_USERNAME and TWINE_PASSWORD are not set"], id="no twine creds"),
    pytest.param({"TWINE_REPOSITORY_URL": ELSEWHERE_INDEX, "TWINE_USERNAME": "ci"},
                 ["TWINE_PASSWORD is not set"], id="TWINE_PASSWORD"),
    pytest.param({"TWINE_REPOSITORY_URL": f"https://ci:{SECRET}@pkgs.example.invalid:99999/",
                  "TWINE_USERNAME": "ci", "TWINE_PASSWORD": SECRET},
                 ["TWINE_REPOSITORY_URL='https://****@pkgs.example.invalid:99999/' is not a "
                  "valid URL"], id="malformed TWINE_REPOSITORY_URL"),
    pytest.param({"TWINE_REPOSITORY_URL": "pkgs.example.invalid/upload/",
                  "TWINE_USERNAME": "ci", "TWINE_PASSWORD": SECRET},
                 ["TWINE_REPOSITORY_URL='pkgs.example.invalid/upload/' is not a URL: use "
                  "http:// or https://"], id="TWINE_REPOSITORY_URL without a scheme"),
    pytest.param({"BREWBLOX_RELEASE_INDEX_URL": "127.0.0.1/simple/"},
                 ["BREWBLOX_RELEASE_INDEX_URL='127.0.0.1/simple/' is not a URL"],
                 id="malformed index URL"),
    pytest.param({"TWINE_REPOSITORY": "company", "TWINE_REPOSITORY_URL": ""},
                 ["TWINE_REPOSITORY='company': brewblox-release knows only"],
                 id="a ~/.pypirc name"),
    pytest.param({"BREWBLOX_RELEASE_IMAGE": ELSEWHERE, "DOCKER_USERNAME": "ci"},
                 ["DOCKER_PASSWORD is not set but its partner is"], id="DOCKER_PASSWORD"),
    pytest.param({"BREWBLOX_RELEASE_IMAGE": ELSEWHERE, "DOCKER_PASSWORD": SECRET},
                 ["DOCKER_USERNAME is not set but its partner is"], id="DOCKER_USERNAME"),
    pytest.param({"BREWBLOX_RELEASE_IMAGE": ELSEWHERE},
                 ["pushes to registry.example.invalid but DOCKER_USERNAME and DOCKER_PASSWORD "
                  "are not set and there is no `docker login` for it"], id="no docker login"),
    pytest.param({"BREWBLOX_RELEASE_IMAGE": ELSEWHERE, "DOCKER_USERNAME": "ci",
                  "DOCKER_PASSWORD": SECRET}, [], id="docker credentials"),
])
def test_problems(service: GitRepo, server: IndexServer, tmp_path: Path,
                  changes: dict[str, str], expected: list[str]) -> None:
    problems = preflight_problems(_run(service, server, tmp_path, changes))
    assert len(problems) == len(expected), problems
    for problem, want in zip(problems, expected, strict=True):
        assert want in problem
        assert "\n" not in problem
        assert SECRET not in problem


def test_an_existing_docker_login_counts(service: GitRepo, server: IndexServer,
                                         tmp_path: Path) -> None:
    run = _run(service, server, tmp_path, {"BREWBLOX_RELEASE_IMAGE": ELSEWHERE},
               login="registry.example.invalid")
    assert preflight_problems(run) == []


@pytest.mark.parametrize(("changes", "expected"), [
    pytest.param({"upload": "upload/"},
                 r"simple API \(PEP 503\) of the index http://127\.0\.0\.1:\d+/upload/ is not at "
                 r"\S+/upload/simple/, \S+/upload/\+simple/: set index-url", id="derived"),
    pytest.param({"index": "nothing/"},
                 r"BREWBLOX_RELEASE_INDEX_URL='http://127\.0\.0\.1:\d+/nothing/' is not a simple "
                 "API", id="given"),
])
def test_a_simple_api_that_is_not_there(service: GitRepo, server: IndexServer, tmp_path: Path,
                                        changes: dict[str, str], expected: str) -> None:
    # Found in review: read as "no files yet", which turned the sha256 rule, the latest
    # decision and verification off.
    env = {"TWINE_REPOSITORY_URL": server.url + changes.get("upload", "")}
    if "index" in changes:
        env["BREWBLOX_RELEASE_INDEX_URL"] = server.url + changes["index"]
    problems = preflight_problems(_run(service, server, tmp_path, env))
    assert len(problems) == 1
    assert re.search(expected, problems[0]), problems[0]


def test_index_url_from_the_configuration(server: IndexServer, tmp_path: Path) -> None:
    repo = make_service(tmp_path / "svc", extra=f'index-url = "{server.url}nothing/"\n'
                        f"{ONE_TARGET}")
    problems = preflight_problems(_run(repo, server, tmp_path, {}))
    assert len(problems) == 1
    assert problems[0].startswith(f"index-url='{server.url}nothing/' is not a simple API")


def test_preflight_stops_with_every_problem(service: GitRepo, server: IndexServer,
                                            tmp_path: Path) -> None:
    one = _run(service, server, tmp_path / "one", {"TWINE_REPOSITORY_URL": ELSEWHERE_INDEX,
                                                    "TWINE_USERNAME": "ci"})
    with pytest.raises(CredentialsError, match=r"TWINE_PASSWORD is not set.*Nothing was built$"):
        preflight(one)
    two = _run(service, server, tmp_path / "two", {"TWINE_REPOSITORY_URL": ELSEWHERE_INDEX,
                                                    "TWINE_USERNAME": "ci",
                                                    "BREWBLOX_RELEASE_IMAGE": ELSEWHERE})
    with pytest.raises(ReleaseError) as info:
        preflight(two)
    lines = str(info.value).splitlines()
    assert len(lines) == 2
    assert "TWINE_PASSWORD is not set" in lines[0]
    assert "there is no `docker login` for it" in lines[1]
    assert lines[1].endswith("the CI secrets. Nothing was built")


def test_the_simple_api_is_asked_while_building_and_waited_for_before_publishing(
        service: GitRepo, server: IndexServer, tmp_path: Path) -> None:
    # Settings and credentials are read before anything is built; the index is asked in a
    # thread (its client takes a quarter of a second to import) and answers before publishing.
    run = _run(service, server, tmp_path,
               {"TWINE_REPOSITORY_URL": server.url, "TWINE_USERNAME": "ci",
                "TWINE_PASSWORD": SECRET, "BREWBLOX_RELEASE_INDEX_URL": server.url + "nothing/"})
    confirm = preflight(run)  # returns at once: the settings are whole
    with pytest.raises(ReleaseError, match=r"is not a simple API.*Nothing was published$"):
        confirm()
    found = _run(service, server, tmp_path / "ok", {
        "TWINE_REPOSITORY_URL": server.url, "TWINE_USERNAME": "ci", "TWINE_PASSWORD": SECRET})
    preflight(found)()


def test_dry_run_notes_are_the_real_refusal_in_its_order(tmp_path_factory: pytest.TempPathFactory,
                                                         server: IndexServer,
                                                         tmp_path: Path) -> None:
    """``--dry-run`` shows what the real run stops with, line for line and in the same order
    (a signing problem before the index's API, which the real run asks last)."""
    service = make_service(tmp_path_factory.mktemp("signed") / "demo-svc",
                           extra=ONE_TARGET.replace("[[tool.brewblox-release.targets]]",
                                                    "sign = true\n\n"
                                                    "[[tool.brewblox-release.targets]]"))
    run = _run(service, server, tmp_path, {"BREWBLOX_RELEASE_INDEX_URL": server.url + "nothing/",
                                           "BREWBLOX_RELEASE_IMAGE": ELSEWHERE})
    notes = preflight_problems(run)
    assert len(notes) == 3, notes
    assert "sign = true" in notes[1]
    assert "not a simple API" in notes[2]
    with pytest.raises(ReleaseError) as refused:
        preflight(run)
    assert str(refused.value).removesuffix(". Nothing was built").splitlines() == notes
