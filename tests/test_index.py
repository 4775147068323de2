"""The package index on a real pypiserver: what it holds, and the sha256 rule of uploads."""

from __future__ import annotations

import contextlib
import http.server
import shutil
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from brewblox_release import _config as config, _dist as dist, _version as version
from brewblox_release._errors import (
    ConfigError,
    CredentialsError,
    Interrupted,
    PublishError,
)
from brewblox_release._index import PYPI_UPLOAD, Index, sha256 as index_sha256
from brewblox_release._run import redact, stop_starting
from brewblox_release._secret import Secret
from brewblox_release._servers import IndexServer
from brewblox_release._verify import pip_resolves
from tests.service import make_service


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    repo = make_service(tmp_path_factory.mktemp("svc") / "svc")
    repo.tag("1.2.3")
    cfg = config.load(repo.path)
    info = version.read(cfg.root)
    return dist.build(cfg, info.version, source_date_epoch=info.git.commit_time)


def _index(server: IndexServer) -> Index:
    return Index.from_env({"TWINE_REPOSITORY_URL": server.url})


def test_from_env() -> None:
    assert Index.from_env({}).upload_url == PYPI_UPLOAD
    assert Index.from_env({}).simple_url == "https://pypi.org/simple/"
    assert Index.from_env({}).missing_credentials() == ("TWINE_PASSWORD",)
    assert Index.from_env({"ACTIONS_ID_TOKEN_REQUEST_URL": "x"}).missing_credentials() == ()
    devpi = Index.from_env({"TWINE_REPOSITORY_URL": "https://devpi.example/u/i/",
                            "BREWBLOX_RELEASE_INDEX_URL": "https://devpi.example/u/i/+simple/"})
    assert devpi.candidates == ("https://devpi.example/u/i/+simple/",)
    assert Index.from_env({"TWINE_REPOSITORY_URL": "http://127.0.0.1:1/"}).candidates == (
        "http://127.0.0.1:1/simple/", "http://127.0.0.1:1/+simple/")
    assert Index.from_env({"TWINE_REPOSITORY_URL": "http://127.0.0.1:1/"}).missing_credentials() \
        == ()


@pytest.mark.parametrize(("env", "config", "expected"), [
    ({}, "https://cfg.example/simple/", "https://cfg.example/simple/"),
    ({"BREWBLOX_RELEASE_INDEX_URL": "http://127.0.0.1:1/simple/"}, "https://cfg.example/simple/",
     "http://127.0.0.1:1/simple/"),  # the environment wins: a rehearsal points it at its own
    ({"TWINE_REPOSITORY": "testpypi"}, None, "https://test.pypi.org/simple/"),
])
def test_index_url_from_the_config_and_the_environment(env: dict[str, str], config: str | None,
                                                       expected: str) -> None:
    assert Index.from_env(env, config).candidates == (expected,)


@pytest.mark.parametrize(("env", "missing"), [
    ({"TWINE_REPOSITORY_URL": "https://pkgs.example/"}, ("TWINE_USERNAME", "TWINE_PASSWORD")),
    ({"TWINE_REPOSITORY_URL": "https://pkgs.example/", "TWINE_PASSWORD": "x"},
     ("TWINE_USERNAME",)),
    ({"TWINE_PASSWORD": "pypi-x"}, ()),  # twine takes __token__ on PyPI
    ({"TWINE_REPOSITORY": "testpypi", "TWINE_USERNAME": "__token__"}, ("TWINE_PASSWORD",)),
])
def test_missing_credentials(env: dict[str, str], missing: tuple[str, ...]) -> None:
    assert Index.from_env(env).missing_credentials() == missing


SECRET = "pa55-Wd9q"


@pytest.mark.parametrize(("env", "config", "problem"), [
    ({"TWINE_REPOSITORY_URL": f"upload.example.org:{SECRET}@x/"}, None,
     "TWINE_REPOSITORY_URL='****@x/' is not a URL"),
    ({"TWINE_REPOSITORY_URL": f"https://u:{SECRET}@upload.example.org:99999/"}, None,
     "TWINE_REPOSITORY_URL='https://****@upload.example.org:99999/' is not a valid URL"),
    ({"BREWBLOX_RELEASE_INDEX_URL": "pypi.example/simple/"}, None,
     "BREWBLOX_RELEASE_INDEX_URL='pypi.example/simple/' is not a URL"),
    ({}, "ftp://pypi.example/simple/", "index-url='ftp://pypi.example/simple/' is not a URL"),
    ({"TWINE_REPOSITORY_URL": "https://upload.example.org/a b/"}, None, "holds a space"),
    # A password with a "/" breaks the URL: urllib's complaint quotes what it took for a port.
    ({"TWINE_REPOSITORY_URL": f"http://ci:{SECRET}/x@127.0.0.1:9/"}, None,
     "TWINE_REPOSITORY_URL='http://****@127.0.0.1:9/' is not a valid URL (its host or port "
     "cannot be read): check them, and percent-encode a password's / # ? @"),
])
def test_malformed_urls_are_named_by_their_setting(env: dict[str, str], config: str | None,
                                                   problem: str) -> None:
    idx = Index.from_env(env, config)
    problems = idx.problems()
    assert len(problems) == 1
    assert problem in problems[0]
    assert SECRET not in problems[0]
    with pytest.raises(ConfigError) as info:
        idx.versions("demo-svc")  # the latest decision reads it before preflight runs
    assert str(info.value) == problems[0]


def test_repr_shows_no_secret() -> None:
    idx = Index.from_env({"TWINE_REPOSITORY_URL": f"https://u:{SECRET}@pkgs.example/",
                          "TWINE_USERNAME": "ci", "TWINE_PASSWORD": SECRET})
    assert SECRET not in repr(idx)
    assert SECRET not in str(idx)
    assert "password=Secret('****')" in repr(idx)


OIDC = {"ACTIONS_ID_TOKEN_REQUEST_URL": "https://token.actions.example/"}


@pytest.mark.parametrize(("env", "upload", "trusted"), [
    (OIDC, PYPI_UPLOAD, True),
    ({**OIDC, "TWINE_USERNAME": "__token__"}, PYPI_UPLOAD, True),
    ({**OIDC, "TWINE_REPOSITORY": "testpypi"}, "https://test.pypi.org/legacy/", True),
    ({**OIDC, "TWINE_REPOSITORY": "pypi"}, PYPI_UPLOAD, True),
    # twine exchanges the OIDC token with PyPI and TestPyPI only, and only for __token__.
    ({**OIDC, "TWINE_REPOSITORY_URL": "https://pkgs.example/legacy/"},
     "https://pkgs.example/legacy/", False),
    ({**OIDC, "TWINE_USERNAME": "alice"}, PYPI_UPLOAD, False),
    ({"TWINE_REPOSITORY": "testpypi"}, "https://test.pypi.org/legacy/", False),
])
def test_trusted_publishing_is_for_pypi_and_testpypi(env: dict[str, str], upload: str,
                                                     trusted: bool) -> None:
    idx = Index.from_env(env)
    assert idx.upload_url == upload
    assert idx.trusted_publishing is trusted
    assert ("TWINE_PASSWORD" in idx.missing_credentials()) is not trusted


def test_a_pypirc_repository_name_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match=r"TWINE_REPOSITORY='company'.*TWINE_REPOSITORY_URL"):
        Index.from_env({"TWINE_REPOSITORY": "company"})


def test_upload_then_skip_the_same_files(index: IndexServer, built: list[Path]) -> None:
    idx = _index(index)
    assert idx.files("demo-svc") == {}
    outcomes = idx.upload("demo-svc", built, release=True)
    assert [o.status for o in outcomes] == ["uploaded", "uploaded"]
    assert idx.versions("demo-svc") == {"1.2.3"}
    files = idx.files("demo-svc")
    assert sorted(files) == sorted(p.name for p in built)
    assert all(sha is not None and len(sha) == 64 for sha in files.values())
    again = idx.upload("demo-svc", built, release=True)
    assert [o.status for o in again] == ["skipped", "skipped"]
    assert sorted(p.name for p in index.packages.iterdir()) == sorted(p.name for p in built)


def test_a_different_file_under_the_same_name(index: IndexServer, built: list[Path],
                                              tmp_path: Path) -> None:
    idx = _index(index)
    idx.upload("demo-svc", built, release=True)
    other = tmp_path / built[0].name
    shutil.copy(built[0], other)
    with other.open("ab") as f:
        f.write(b"\0")  # same name, other bytes: another branch at the same distance
    with pytest.raises(PublishError, match="different contents"):
        idx.upload("demo-svc", [other], release=True)
    outcomes = idx.upload("demo-svc", [other], release=False)
    assert [o.status for o in outcomes] == ["collision"]
    assert (index.packages / built[0].name).read_bytes() == built[0].read_bytes()


def test_unreachable_index_is_a_publish_error() -> None:
    with pytest.raises(PublishError, match="cannot read"):
        Index.from_env({"TWINE_REPOSITORY_URL": "http://127.0.0.1:9/"}).files("demo-svc")


@pytest.mark.process
def test_a_file_listed_without_a_sha256_is_hashed_not_trusted(built: list[Path],
                                                              tmp_path: Path) -> None:
    # Found in review: a file the index listed without a digest counted as the same file.
    with IndexServer(tmp_path / "nohash", hash_algo="off") as server:
        assert isinstance(server, IndexServer)
        idx = _index(server)
        shutil.copy2(built[0], server.packages / built[0].name)
        assert idx.files("demo-svc") == {built[0].name: index_sha256(built[0])}
        assert [o.status for o in idx.upload("demo-svc", built[:1], release=True)] == ["skipped"]
        other = tmp_path / "other" / built[0].name
        other.parent.mkdir()
        other.write_bytes(built[0].read_bytes() + b"\0")
        with pytest.raises(PublishError, match="different contents"):
            idx.upload("demo-svc", [other], release=True)


@pytest.mark.process
def test_a_private_index_is_read_with_twines_credentials(built: list[Path],
                                                         tmp_path: Path) -> None:
    with warnings.catch_warnings():  # passlib imports crypt, deprecated since Python 3.11
        warnings.simplefilter("ignore", DeprecationWarning)
        from passlib.apache import HtpasswdFile  # type: ignore[import-untyped]

    users = HtpasswdFile(str(tmp_path / "htpasswd"), new=True)
    users.set_password("ci", "s3cret-token")
    users.save()
    with IndexServer(tmp_path / "private", password_file=tmp_path / "htpasswd",
                     authenticate="update,list,download") as server:
        assert isinstance(server, IndexServer)
        creds = {"TWINE_USERNAME": "ci", "TWINE_PASSWORD": "s3cret-token"}
        idx = Index.from_env({"TWINE_REPOSITORY_URL": server.url, **creds})
        assert [o.status for o in idx.upload("demo-svc", built, release=True)] == [
            "uploaded", "uploaded"]
        assert idx.versions("demo-svc") == {"1.2.3"}
        anonymous = Index.from_env({"TWINE_REPOSITORY_URL": server.url})
        with pytest.raises(CredentialsError, match=r"refused to list demo-svc \(401\)"):
            anonymous.files("demo-svc")
        elsewhere = Index.from_env({"TWINE_REPOSITORY_URL": server.url, **creds,
                                    "BREWBLOX_RELEASE_INDEX_URL": "http://localhost:1/simple/"})
        assert elsewhere.credentials_for("http://localhost:1/simple/") is None, \
            "credentials go only to the upload URL's origin"
        assert pip_resolves(idx, "demo-svc") == "1.2.3", "verification reads it too"
        with pytest.raises(CredentialsError, match=r"refused to list demo-svc \(401\)"):
            pip_resolves(anonymous, "demo-svc")
    # An index that lists its files to anyone but gives them only to its users.
    with IndexServer(tmp_path / "private", password_file=tmp_path / "htpasswd",
                     authenticate="update,download") as server:
        assert isinstance(server, IndexServer)
        anonymous = Index.from_env({"TWINE_REPOSITORY_URL": server.url})
        assert anonymous.versions("demo-svc") == {"1.2.3"}
        # pip decides by the listing (verification builds and downloads nothing)
        assert pip_resolves(anonymous, "demo-svc") == "1.2.3"


@contextlib.contextmanager
def _static_index(tmp_path: Path, files: dict[str, Path], page: str,
                  host: str = "127.0.0.1") -> Iterator[Index]:
    """A static PEP 503 index of demo-svc (as on a plain web server on ``host``): ``files``
    under their names, listed by ``page``; the index as the tool reads it."""
    from functools import partial

    project = tmp_path / "static" / "demo-svc"
    project.mkdir(parents=True)
    for name, path in files.items():
        shutil.copy2(path, project / name)
    project.joinpath("index.html").write_text(page)
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "static"))
    with http.server.ThreadingHTTPServer((host, 0), handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://{host}:{server.server_address[1]}/"
        try:
            yield Index.from_env({"TWINE_REPOSITORY_URL": url, "BREWBLOX_RELEASE_INDEX_URL": url})
        finally:
            server.shutdown()


@pytest.mark.process
def test_a_yanked_release_is_not_a_version_pip_installs(built: list[Path],
                                                        tmp_path: Path) -> None:
    # A static PEP 503 index (as on a plain web server) whose 1.3.0 is yanked (PEP 592).
    wheel = built[[p.name.endswith(".whl") for p in built].index(True)]
    yanked = wheel.name.replace("1.2.3", "1.3.0")
    page = (f'<a href="{wheel.name}#sha256={index_sha256(wheel)}">{wheel.name}</a>\n'
            f'<a href="{yanked}#sha256={index_sha256(wheel)}" data-yanked="broken">{yanked}</a>\n')
    with _static_index(tmp_path, {wheel.name: wheel, yanked: wheel}, page) as idx:
        assert set(idx.files("demo-svc")) == {wheel.name, yanked}, "the sha256 rule sees it"
        assert idx.versions("demo-svc") == {"1.2.3"}
        assert pip_resolves(idx, "demo-svc") == "1.2.3"


@pytest.mark.process
def test_pip_decides_without_building_and_whatever_python_runs_it(built: list[Path],
                                                                  tmp_path: Path) -> None:
    """A release on the index as an sdist alone (an older hand upload), for a Python newer than
    the one verifying (its image's): pip's choice is still 1.2.3, not the dev wheel beside it."""
    sdist = next(p for p in built if p.name.endswith(".tar.gz"))
    wheel = next(p for p in built if p.name.endswith(".whl"))
    dev = wheel.name.replace("1.2.3", "1.2.4.dev1")
    page = (f'<a href="{sdist.name}" data-requires-python="&gt;=99">{sdist.name}</a>\n'
            f'<a href="{dev}">{dev}</a>\n')
    with _static_index(tmp_path, {sdist.name: sdist, dev: wheel}, page) as idx:
        assert pip_resolves(idx, "demo-svc") == "1.2.3"


@pytest.mark.process
def test_pip_reads_a_plain_http_index_on_another_host(built: list[Path], tmp_path: Path) -> None:
    """An index the release uploaded to over plain HTTP, not on loopback (a CI service's own
    host): pip ignores such a host unless trusted, so verification trusts the one it checks."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("10.255.255.255", 1))  # no packet: the address of the default route
        host = probe.getsockname()[0]
    assert not host.startswith("127."), "this machine has an address beside loopback"
    wheel = next(p for p in built if p.name.endswith(".whl"))
    page = f'<a href="{wheel.name}">{wheel.name}</a>\n'
    with _static_index(tmp_path, {wheel.name: wheel}, page, host=host) as idx:
        assert pip_resolves(idx, "demo-svc") == "1.2.3"


def test_verification_reads_only_the_index_it_verifies(index: IndexServer, built: list[Path],
                                                       tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # Found in review: pip's own config (Raspberry Pi OS ships one naming piwheels) could add an
    # index, and verification would see versions the verified index does not hold.
    import http.server
    import threading
    from functools import partial

    idx = _index(index)
    idx.upload("demo-svc", built, release=True)
    repo = make_service(tmp_path / "svc")  # the same project, built as 9.9.9 for the other index
    files = dist.build(config.load(repo.path), "9.9.9", twine=False)
    newer = next(p for p in files if p.name.endswith(".whl"))
    project = tmp_path / "other" / "demo-svc"
    project.mkdir(parents=True)
    shutil.copy2(newer, project / newer.name)
    project.joinpath("index.html").write_text(f'<a href="{newer.name}">{newer.name}</a>\n')
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "other"))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        home = tmp_path / "home"
        (home / ".config" / "pip").mkdir(parents=True)
        (home / ".config" / "pip" / "pip.conf").write_text(
            f"[global]\nextra-index-url = http://127.0.0.1:{server.server_address[1]}/\n")
        monkeypatch.setenv("HOME", str(home))
        monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
        assert pip_resolves(idx, "demo-svc") == "1.2.3"
        server.shutdown()


@pytest.mark.process
def test_files_on_another_host_get_no_credentials(built: list[Path], tmp_path: Path) -> None:
    # A private index whose files are served by another host (a redirect to storage): the
    # index's credentials go to the index only, from the sha256 rule's download and from pip.
    from brewblox_release._index import host_auth
    from brewblox_release._secret import Secret
    from tests.proxy import RedirectingFront
    from tests.service import htpasswd

    creds = {"TWINE_USERNAME": "ci", "TWINE_PASSWORD": "s3cret-token"}
    users = htpasswd(tmp_path / "htpasswd", "ci", "s3cret-token")
    with IndexServer(tmp_path / "private", password_file=users, hash_algo="off",
                     authenticate="update,list,download") as server:
        assert isinstance(server, IndexServer)
        Index.from_env({"TWINE_REPOSITORY_URL": server.url, **creds}).upload(
            "demo-svc", built, release=True)
        with RedirectingFront(server.url, r"^/packages/",
                              storage_auth=("ci", "s3cret-token")) as front:
            idx = Index.from_env({"TWINE_REPOSITORY_URL": front.url, **creds})
            assert idx.files("demo-svc") == {p.name: index_sha256(p) for p in built}
            assert pip_resolves(idx, "demo-svc") == "1.2.3"
            assert front.redirected == 2, "both files hashed; pip decides by the listing"
            assert front.leaked() == []
    import requests

    auth = host_auth("http://127.0.0.1:8080/simple/", "ci", Secret("s3cret-token"))
    same = requests.Request("GET", "http://127.0.0.1:8080/packages/x.whl", auth=auth).prepare()
    other = requests.Request("GET", "http://127.0.0.2:8080/packages/x.whl", auth=auth).prepare()
    assert "Authorization" in same.headers
    assert "Authorization" not in other.headers
    assert "s3cret-token" not in repr(auth)


def test_a_simple_api_that_cannot_be_found_names_index_url(index: IndexServer,
                                                           tmp_path: Path) -> None:
    # Found in review: a 404 for the project at a guessed <upload URL>/simple/ was read as "no
    # files yet", which turned off the sha256 rule, the latest decision and verification.
    guessed = Index.from_env({"TWINE_REPOSITORY_URL": f"{index.url}upload/"})
    with pytest.raises(ConfigError, match=r"simple API .* is not at .*/upload/simple/, "
                                          r".*/upload/\+simple/: set index-url"):
        guessed.versions("demo-svc")
    given = Index.from_env({"TWINE_REPOSITORY_URL": index.url,
                            "BREWBLOX_RELEASE_INDEX_URL": f"{index.url}nothing/"})
    with pytest.raises(ConfigError, match=r"^BREWBLOX_RELEASE_INDEX_URL='http://.*/nothing/' "
                                          "is not a simple API"):
        given.files("demo-svc")
    configured = Index.from_env({"TWINE_REPOSITORY_URL": index.url}, f"{index.url}nothing/")
    with pytest.raises(ConfigError, match=r"^index-url='http://.*/nothing/' is not a simple"):
        configured.files("demo-svc")
    found = _index(index)
    assert found.files("demo-svc") == {}, "the index answers: a new project has no files yet"
    assert found.simple_api("demo-svc") == index.simple_url


def test_devpi_layout_is_found_by_asking(built: list[Path], tmp_path: Path) -> None:
    # devpi serves the simple API of user/index at user/index/+simple/ (a static copy here).
    import http.server
    import threading
    from functools import partial

    project = tmp_path / "web" / "u" / "i" / "+simple" / "demo-svc"
    project.mkdir(parents=True)
    wheel = next(p for p in built if p.name.endswith(".whl"))
    shutil.copy2(wheel, project / wheel.name)
    project.joinpath("index.html").write_text(
        f'<a href="{wheel.name}#sha256={index_sha256(wheel)}">{wheel.name}</a>\n')
    (project.parent / "index.html").write_text('<a href="demo-svc/">demo-svc</a>\n')
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "web"))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        upload = f"http://127.0.0.1:{server.server_address[1]}/u/i/"
        idx = Index.from_env({"TWINE_REPOSITORY_URL": upload})
        assert idx.versions("demo-svc") == {"1.2.3"}
        assert idx.simple_url == f"{upload}+simple/"
        assert idx.versions("other") == set(), "the root answers: a project with no files"
        server.shutdown()


def test_a_workstation_reads_its_pypirc_as_twine_does(tmp_path: Path) -> None:
    pypirc = tmp_path / ".pypirc"
    pypirc.write_text("[distutils]\nindex-servers =\n    pypi\n    private\n\n"
                      "[pypi]\nusername = __token__\npassword = pypi-SENTINEL-rc-token\n\n"
                      "[private]\nrepository = https://pkgs.example.invalid/legacy/\n"
                      "username = me\npassword = private-SENTINEL-pw\n")
    index = Index.from_env({}, pypirc=pypirc)
    assert (index.username, index.password) == ("__token__", Secret("pypi-SENTINEL-rc-token"))
    assert index.missing_credentials() == ()
    private = Index.from_env({"TWINE_REPOSITORY": "private"}, pypirc=pypirc)
    assert private.upload_url == "https://pkgs.example.invalid/legacy/"
    assert (private.username, private.password) == ("me", Secret("private-SENTINEL-pw"))
    # The variables come first, as for twine; CI (no pypirc given) reads none of it.
    assert Index.from_env({"TWINE_PASSWORD": "from-env"}, pypirc=pypirc).password == \
        Secret("from-env")
    assert Index.from_env({}).password is None
    assert "private-SENTINEL-pw" not in redact("the password private-SENTINEL-pw")


class _Unavailable(http.server.BaseHTTPRequestHandler):
    """An index that lists nothing and answers every upload with 503."""

    def do_GET(self) -> None:
        body = b"<!DOCTYPE html><html><body></body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


class _SlowToList(_Unavailable):
    """An index whose simple API answers 503 twice (a restart), then lists nothing; it takes
    every upload."""

    answered = 0

    def do_GET(self) -> None:
        type(self).answered += 1
        if type(self).answered <= 2:
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            super().do_GET()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.mark.process
def test_the_read_before_an_upload_is_retried(built: list[Path],
                                              monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """After the images are pushed, an index that does not answer for a moment is asked again,
    as the upload is, before the release fails half-published."""
    from brewblox_release import _index

    monkeypatch.setattr(_index, "UPLOAD_BACKOFF", 0.01)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowToList)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/"
    index = Index.from_env({"TWINE_REPOSITORY_URL": url, "BREWBLOX_RELEASE_INDEX_URL": url})
    try:
        outcomes = index.upload("demo-svc", built[:1], release=True)
    finally:
        server.shutdown()
        server.server_close()
    assert [o.status for o in outcomes] == ["uploaded"]
    shown = capsys.readouterr().err
    assert "reading the files of demo-svc: attempt 2 of 4 failed (cannot read " in shown


@pytest.mark.process
def test_a_stop_ends_the_upload_retries(built: list[Path]) -> None:
    """An upload that failed with a 5xx is retried after a pause, unless the run is stopping:
    then it ends at once as stopped, not after its retries."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Unavailable)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    index = Index.from_env({"TWINE_REPOSITORY_URL": f"http://127.0.0.1:{server.server_port}/"})
    stop_starting()
    try:
        with pytest.raises(Interrupted, match="stopped"):
            index.upload("demo-svc", built[:1], release=True)
    finally:
        stop_starting(False)
        server.shutdown()
        server.server_close()
