"""Preflight (docs/how-it-works.md): what a publishing run would refuse, found before anything is
built.

Each case is a real run prepared for a branch push (a dev release: an upload and a push) of a
real service, against a real pypiserver on loopback; `preflight_problems` is also what
``--dry-run`` shows as notes.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import re
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import ClassVar

import pytest

from brewblox_release._environment import Environment
from brewblox_release._errors import CredentialsError, ReleaseError
from brewblox_release._prepared import Options, Run
from brewblox_release._release import preflight, preflight_problems, prepare
from brewblox_release._run import redact
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
    pytest.param({"TWINE_REPOSITORY_URL": f"https://ci:{SECRET}@[fe80::1/legacy/"},
                 ["TWINE_REPOSITORY_URL='https://****@[fe80::1/legacy/' is not a valid URL",
                  "but TWINE_USERNAME and TWINE_PASSWORD are not set"],  # every problem at once
                 id="TWINE_REPOSITORY_URL that urllib cannot split"),
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


def test_an_azure_secret_that_is_not_defined_is_not_set(service: GitRepo, server: IndexServer,
                                                         tmp_path: Path) -> None:
    """Azure passes ``$(TWINE_PASSWORD)`` as written where the secret is not defined: taken as a
    password, the images would be pushed before the upload failed."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=service.path, capture_output=True,
                          text=True, check=True).stdout.strip()
    env = Environment({**os.environ, "TF_BUILD": "True", "BUILD_REASON": "IndividualCI",
                       "BUILD_SOURCEBRANCH": "refs/heads/feature/x", "BUILD_SOURCEVERSION": head,
                       "BUILD_REPOSITORY_NAME": "brewblox/demo-svc",
                       "BREWBLOX_RELEASE_IMAGE": ELSEWHERE, "DOCKER_CONFIG": str(tmp_path),
                       "TWINE_REPOSITORY_URL": ELSEWHERE_INDEX,
                       **{name: f"$({name})" for name in ("TWINE_USERNAME", "TWINE_PASSWORD",
                                                          "DOCKER_USERNAME", "DOCKER_PASSWORD")}})
    problems = preflight_problems(prepare(service.path, Options(), env))
    assert len(problems) == 2, problems
    assert "but TWINE_USERNAME and TWINE_PASSWORD are not set" in problems[0]
    assert "DOCKER_USERNAME and DOCKER_PASSWORD are not set" in problems[1]


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


# Trusted publishing: GitHub's OIDC issuer and the index's token service cannot run here, so
# both are small servers on loopback that answer as GitHub's and PyPI's do (twine asks the
# index's over HTTPS, so it has a certificate of its own).

MINTED = "pypi-minted-SENTINEL-4Rk9"
#: The OIDC token GitHub's issuer gives the run: a JWT for the index's audience.
JWT = ".".join(base64.urlsafe_b64encode(part).decode().rstrip("=") for part in (
    b'{"alg":"RS256"}', b'{"aud":"testpypi","sub":"repo:brewblox/demo-svc:ref:refs/heads/x"}',
    b"signature"))
REFUSED = {"message": "Token request failed", "errors": [{
    "code": "invalid-publisher",
    "description": "valid token, but no corresponding publisher (All lookup strategies "
                   "exhausted)"}]}


class _OidcHandler(http.server.BaseHTTPRequestHandler):
    """GitHub's issuer (``GET /token?audience=``) and the index's ``/_/oidc/`` endpoints."""

    answer: ClassVar[str] = "mints"  # or "refuses", or "down" (the index's token service)

    def _answer(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.startswith("/token?audience=testpypi"):
            assert self.headers["Authorization"] == "bearer request-SENTINEL-8Lp2"
            self._answer(200, {"value": JWT})
        elif self.path == "/_/oidc/audience":
            self._answer(503 if type(self).answer == "down" else 200, {"audience": "testpypi"})
        else:
            self._answer(404, {})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        assert body == {"token": JWT}
        if type(self).answer == "mints":
            self._answer(200, {"success": True, "token": MINTED, "expires": time.time() + 900})
        else:
            self._answer(422, REFUSED)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(params=["mints", "refuses", "down"])
def oidc(request: pytest.FixtureRequest, tmp_path: Path,
         monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str, str]]:
    """The issuer's URL (HTTP), the index's upload URL (HTTPS), both on loopback, and how the
    index answers: a token (a trusted publisher of the project), a refusal (none), or 503."""
    monkeypatch.setattr(_OidcHandler, "answer", request.param)
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    issuer = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _OidcHandler)
    index = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _OidcHandler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    index.socket = context.wrap_socket(index.socket, server_side=True)
    for server in (issuer, index):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    monkeypatch.setenv("GITHUB_ACTIONS", "true")  # as on GitHub: no credential, so not taken out
    try:
        yield (f"http://127.0.0.1:{issuer.server_port}/token?",
               f"https://127.0.0.1:{index.server_port}/legacy/", request.param)
    finally:
        for server in (issuer, index):
            server.shutdown()
            server.server_close()


def test_trusted_publishing_is_asked_before_anything_is_built(
        service: GitRepo, server: IndexServer, tmp_path: Path,
        oidc: tuple[str, str, str]) -> None:
    """An index that gives the run no upload token stops it before the build (it stopped at the
    upload, after the images were pushed); a token it gives is masked; an index that cannot be
    asked now is asked again by the upload, which retries."""
    issuer, upload, answer = oidc
    run = _run(service, server, tmp_path, {
        "ACTIONS_ID_TOKEN_REQUEST_URL": issuer,
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "request-SENTINEL-8Lp2"})
    # The run's index as PyPI's would be, on loopback: trusted publishing, no password.
    run.__dict__["index"] = replace(run.index, upload_url=upload, trusted_publishing=True)
    assert run.index.missing_credentials() == ()
    if answer != "refuses":
        preflight(run)  # "down": the upload asks again
        if answer == "mints":
            assert redact(f"token {MINTED}") == "token ****"
    else:
        with pytest.raises(CredentialsError) as refused:
            preflight(run)
        assert str(refused.value) == (
            f"trusted publishing to {upload} gave no upload token: The token request failed; "
            "the index server gave the following reasons: * invalid-publisher: valid token, "
            "but no corresponding publisher (All lookup strategies exhausted): add this "
            "repository's workflow as a trusted publisher of demo-svc on the index, or set "
            "TWINE_PASSWORD to an API token. Nothing was built")
    assert "ACTIONS_ID_TOKEN_REQUEST_TOKEN" not in os.environ  # taken out again
