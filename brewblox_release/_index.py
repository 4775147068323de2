"""The package index: what it already holds (its simple API), and uploads through twine; the
sha256 rule is the library's own (twine's ``--skip-existing`` knows PyPI and TestPyPI only).
How the simple API is found and where credentials go: docs/sessions.md."""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

from ._errors import ConfigError, CredentialsError, PublishError
from ._hosts import is_loopback, same_origin
from ._run import TransientError, detail, log, mask, redact, retrying
from ._secret import Secret, display_url

if TYPE_CHECKING:  # pypi-simple, requests and twine load on use
    import requests
    from pypi_simple import DistributionPackage, PyPISimple


PYPI_UPLOAD = "https://upload.pypi.org/legacy/"
TESTPYPI_UPLOAD = "https://test.pypi.org/legacy/"
_SIMPLE = {PYPI_UPLOAD: "https://pypi.org/simple/",
           TESTPYPI_UPLOAD: "https://test.pypi.org/simple/"}
_NAMED = {"pypi": PYPI_UPLOAD, "testpypi": TESTPYPI_UPLOAD}
INDEX_URL_ENV = "BREWBLOX_RELEASE_INDEX_URL"
_SIMPLE_TYPES = {"text/html", "application/vnd.pypi.simple.v1+html",
                 "application/vnd.pypi.simple.v1+json"}
UPLOAD_BACKOFF = 1.0


@dataclass(frozen=True)
class Outcome:
    path: Path
    status: str  # "uploaded", "skipped" (same file there), "collision" (dev, different file)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def url_problem(name: str, value: str) -> str | None:
    """What is wrong with the URL ``value`` of the setting ``name``, or None; nothing of what
    urllib said is shown (it can quote a piece of the password).

    >>> url_problem("TWINE_REPOSITORY_URL", "https://user:pw@example.org:99999/").split(" (")[0]
    "TWINE_REPOSITORY_URL='https://****@example.org:99999/' is not a valid URL"
    """
    shown = display_url(value)
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (it raises for a port that is not one)
    except ValueError:
        return (f"{name}={shown!r} is not a valid URL (its host or port cannot be read): check "
                "them, and percent-encode a password's / # ? @ (as %2F %23 %3F %40)")
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        return (f"{name}={shown!r} is not a URL: use http:// or https:// and a host, e.g. "
                "https://upload.example.org/legacy/")
    if any(c.isspace() or not c.isprintable() for c in value):
        return f"{name}={shown!r} holds a space or a control character: remove it"
    return None


def host_auth(base: str, username: str, password: Secret
              ) -> Callable[[requests.PreparedRequest], requests.PreparedRequest]:
    """Basic auth for requests to ``base``'s origin only: a session's ``auth`` goes to every
    request it makes, a file hosted on another host included."""
    import requests

    def auth(r: requests.PreparedRequest) -> requests.PreparedRequest:
        if r.url and same_origin(base, r.url):
            return requests.auth.HTTPBasicAuth(username, password.reveal())(r)
        return r

    return auth


@dataclass(frozen=True)
class Index:
    """A package index, as twine and pip know it; ``trusted_publishing``: twine exchanges
    GitHub's OIDC token for an upload token (PyPI and TestPyPI only)."""

    upload_url: str = PYPI_UPLOAD
    index_url: str | None = None
    index_url_source: str = "index-url"
    username: str | None = None
    password: Secret | None = None
    trusted_publishing: bool = False
    #: The simple API found among the `candidates` (asked once per index, so once per run).
    _found: list[str] = field(default_factory=list, init=False, compare=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str], index_url: str | None = None, *,
                 pypirc: Path | None = None) -> Index:
        """The index of twine's variables in ``env`` and the configuration's ``index_url``;
        what they leave unsaid is read from ``pypirc`` (a workstation's) as twine reads it."""
        found: dict[str, str] = {}
        if pypirc is not None and pypirc.is_file() and not env.get("TWINE_REPOSITORY_URL"):
            from twine.exceptions import TwineException
            from twine.utils import get_repository_from_config

            with contextlib.suppress(TwineException, OSError, ValueError, KeyError):
                found = {k: v for k, v in get_repository_from_config(
                    str(pypirc), env.get("TWINE_REPOSITORY") or "pypi").items()
                    if isinstance(v, str) and v}
            if found.get("password"):
                mask(found["password"])
        named = env.get("TWINE_REPOSITORY")
        upload = env.get("TWINE_REPOSITORY_URL") or found.get("repository") or \
            _NAMED.get(named or "pypi")
        if upload is None:  # a name from ~/.pypirc: the sha256 rule must read twine's index
            raise ConfigError(f"TWINE_REPOSITORY={named!r}: brewblox-release knows only 'pypi' "
                              "and 'testpypi' by name; set TWINE_REPOSITORY_URL to the index's "
                              "upload URL (and index-url in [tool.brewblox-release] to its "
                              "simple API)")
        username = env.get("TWINE_USERNAME") or found.get("username") or None
        password = env.get("TWINE_PASSWORD") or found.get("password")
        return cls(upload_url=upload, index_url=env.get(INDEX_URL_ENV) or index_url or None,
                   index_url_source=INDEX_URL_ENV if env.get(INDEX_URL_ENV) else "index-url",
                   username=username, password=Secret(password) if password else None,
                   trusted_publishing=bool(env.get("ACTIONS_ID_TOKEN_REQUEST_URL"))
                   and upload in _SIMPLE and username in (None, "__token__"))

    def __repr__(self) -> str:
        return (f"Index(upload_url={display_url(self.upload_url)!r}, index_url="
                f"{display_url(self.index_url) if self.index_url else None!r}, "
                f"username={self.username!r}, password={self.password!r}, "
                f"trusted_publishing={self.trusted_publishing!r})")

    @property
    def display_upload_url(self) -> str:
        return display_url(self.upload_url)

    @property
    def candidates(self) -> tuple[str, ...]:
        """Where the simple API may be, in the order they are asked."""
        if self.index_url:
            return (self.index_url,)
        if self.upload_url in _SIMPLE:
            return (_SIMPLE[self.upload_url],)
        base = self.upload_url.rstrip("/")
        return (f"{base}/simple/", f"{base}/+simple/")

    @property
    def simple_url(self) -> str:
        """The simple API: the one found, else the first candidate (before any read)."""
        return (self._found or self.candidates)[0]

    @property
    def needs_credentials(self) -> bool:
        try:
            return not is_loopback(urlsplit(self.upload_url).netloc.rpartition("@")[2])
        except ValueError:  # a URL urllib cannot split ([fe80::1): `problems` names it
            return True

    def missing_credentials(self) -> tuple[str, ...]:
        """The variables to set before uploading (PyPI and TestPyPI take ``__token__`` as
        the username)."""
        if not self.needs_credentials or self.trusted_publishing:
            return ()
        return (*(() if self.username or self.upload_url in _SIMPLE else ("TWINE_USERNAME",)),
                *(() if self.password else ("TWINE_PASSWORD",)))

    def problems(self) -> list[str]:
        """What is wrong with the index's settings, found without asking it."""
        found = [url_problem("TWINE_REPOSITORY_URL", self.upload_url),
                 url_problem(self.index_url_source, self.index_url) if self.index_url else None]
        return [problem for problem in found if problem]

    def credentials_for(self, url: str) -> tuple[str, Secret] | None:
        """twine's credentials, for reading ``url`` on the upload URL's origin only."""
        if self.username and self.password and same_origin(url, self.upload_url):
            return self.username, self.password
        return None

    def simple_api(self, name: str) -> str:
        """The simple API's URL, found (asked once per run) as `files` finds it."""
        if not self._found:
            self._listing(name, hashed=False)
        return self._found[0]

    def authenticated_simple_url(self, name: str) -> str:
        """The simple API's URL with its credentials in it, for pip (never log it unmasked)."""
        url = self.simple_api(name)
        if (credentials := self.credentials_for(url)) is None:
            return url
        user, password = quote(credentials[0], safe=""), quote(credentials[1].reveal(), safe="")
        parts = urlsplit(url)
        return parts._replace(netloc=f"{user}:{password}@{parts.netloc}").geturl()

    def files(self, name: str) -> dict[str, str | None]:
        """file name -> sha256 (of the download where the index lists none), yanked files too."""
        return {filename: digest for filename, (digest, _) in self._listing(name).items()}

    def _listing(self, name: str, *, hashed: bool = True) -> dict[str, tuple[str | None, bool]]:
        """file name -> (sha256, yanked); {} only where the simple API is known to be there."""
        from pypi_simple import NoSuchProjectError, PyPISimple

        if problems := self.problems():  # named by their setting, before any request
            raise ConfigError(problems[0])
        candidates = tuple(self._found) or self.candidates
        certain = bool(self._found) or (self.upload_url in _SIMPLE and not self.index_url)
        for url in candidates:
            credentials = self.credentials_for(url)
            auth = None if credentials is None else host_auth(url, *credentials)
            try:
                with PyPISimple(url, auth=auth) as client:
                    try:
                        packages = client.get_project_page(name, timeout=30).packages
                    except NoSuchProjectError:
                        if not (certain or self._answers(client, url)):
                            continue
                        packages = []
                    self._found[:] = [url]
                    return {p.filename: (self._sha256(client, p, hashed), p.is_yanked)
                            for p in packages}
            except Exception as e:  # requests' and pypi_simple's errors alike
                status = getattr(getattr(e, "response", None), "status_code", None)
                if status in {401, 403}:
                    raise CredentialsError(
                        f"{display_url(url)} refused to list {name} ({status}): check "
                        "TWINE_USERNAME and TWINE_PASSWORD, which read a private index on "
                        "the upload URL's host") from e
                if status in {400, 404, 405, 406} and len(candidates) > 1:
                    continue  # not this layout
                raise PublishError(redact(f"cannot read {display_url(url)} for {name}: "
                                          f"{e}")) from e
        if self.index_url:
            raise ConfigError(
                f"{self.index_url_source}={display_url(self.index_url)!r} is not a simple API "
                f"(PEP 503) of a package index: set {self.index_url_source} to the index's "
                "simple API, e.g. https://pkgs.example.org/org/_packaging/feed/pypi/simple/")
        raise ConfigError(
            f"the simple API (PEP 503) of the index {display_url(self.upload_url)} is not at "
            f"{', '.join(display_url(url) for url in candidates)}: set index-url in "
            f"[tool.brewblox-release] (or {INDEX_URL_ENV}) to it, "
            "e.g. index-url = \"https://pkgs.example.org/org/_packaging/feed/pypi/simple/\"")

    @staticmethod
    def _answers(client: PyPISimple, url: str) -> bool:
        """Whether ``url`` is the root of a simple API (a wrong URL and a new project both
        lack the page); the long list of projects is not read."""
        from pypi_simple import ACCEPT_ANY

        with client.s.get(url, stream=True, timeout=30, headers={"Accept": ACCEPT_ANY}) as r:
            if r.status_code in {401, 403}:
                r.raise_for_status()
            kind = r.headers.get("Content-Type", "").split(";")[0].strip().lower()
            return r.status_code == 200 and kind in _SIMPLE_TYPES

    @staticmethod
    def _sha256(client: PyPISimple, package: DistributionPackage, hashed: bool) -> str | None:
        """The sha256 the index lists; where it lists none, with ``hashed``, the file's own."""
        digest = package.digests.get("sha256")
        if digest is not None or not hashed:
            return digest
        with tempfile.TemporaryDirectory() as tmp:
            client.download_package(package, Path(tmp) / "file", verify=False, timeout=60)
            return sha256(Path(tmp) / "file")

    def versions(self, name: str) -> set[str]:
        """The versions pip can install: yanked files are left out (PEP 592)."""
        from packaging import utils

        found = set()
        for filename, (_, yanked) in self._listing(name, hashed=False).items():
            with contextlib.suppress(utils.InvalidWheelFilename, utils.InvalidSdistFilename):
                if not yanked and filename.endswith(".whl"):
                    found.add(str(utils.parse_wheel_filename(filename)[1]))
                elif not yanked and filename.endswith(".tar.gz"):
                    found.add(str(utils.parse_sdist_filename(filename)[1]))
        return found

    def check(self, name: str, paths: Iterable[Path], *, release: bool) -> None:
        """Before anything is published: the index answers and, for a release, holds no
        different file under the name of one of ``paths``."""
        present = self.files(name)
        for path in paths:
            there = present.get(path.name)
            if release and there is not None and there != sha256(path):
                raise PublishError(self._different(path, there) + "; nothing was published")

    def _different(self, path: Path, there: str | None) -> str:
        return (f"{path.name} is already on {display_url(self.simple_url)} with different "
                f"contents (sha256 {there}), and an index never replaces a file: release a new "
                "version (tag the next one) instead")

    def trusted_publishing_problem(self, name: str) -> str | None:
        """Why the index gives this run no upload token for its OIDC identity (twine's trusted
        publishing, which the upload asks again), and what to do; None when it gives one (then
        masked) or cannot be asked now (the upload, which retries, asks again). GitHub's OIDC
        variables must be in the process environment: twine reads them there."""
        import requests
        from twine.auth import CredentialInput, Resolver
        from twine.exceptions import TrustedPublishingFailure

        resolver = Resolver({"repository": self.upload_url}, CredentialInput("__token__"))
        try:
            with _captured("twine: "):
                token = resolver.make_trusted_publishing_token()
        except TrustedPublishingFailure as e:
            why = " ".join(str(e).replace("`", "").split())
            if "token request failed" in why:  # the index refused this identity
                return (f"{why}: add this repository's workflow as a trusted publisher of "
                        f"{name} on the index, or set TWINE_PASSWORD to an API token")
            return f"{why}: re-run the release, or set TWINE_PASSWORD to an API token"
        except (requests.RequestException, ValueError, KeyError, TypeError) as e:
            log(f"trusted publishing: {self.display_upload_url} could not be asked for an "
                f"upload token now ({type(e).__name__}); the upload asks again")
            return None
        if not token:
            return ("twine finds no OIDC token of GitHub Actions here: set TWINE_PASSWORD to "
                    "an API token")
        mask(token)
        return None

    def upload(self, name: str, paths: Iterable[Path], *, release: bool,
               attestations: bool = False) -> list[Outcome]:
        """Upload the files that are not there yet; skip those that are, byte for byte; with
        ``attestations``, each with its ``FILE.publish.attestation``."""

        def read() -> dict[str, str | None]:  # tried again as an upload is (an index restarting)
            try:
                return self.files(name)
            except PublishError as e:  # not a refusal of the credentials, nor a setting
                failed = PublishError(f"{e}; re-running the release completes it")
                raise TransientError(failed, str(e)) from e

        present = retrying(f"reading the files of {name}", read, backoff=UPLOAD_BACKOFF)
        outcomes = []
        for path in paths:
            there = present.get(path.name, "absent")
            if there == "absent":
                self._upload_one(path, attestations=attestations)
                outcomes.append(Outcome(path, "uploaded"))
            elif there == sha256(path):
                log(f"{path.name}: already on the index with the same sha256, skipped")
                outcomes.append(Outcome(path, "skipped"))
            elif release:
                raise PublishError(self._different(path, there))
            else:
                log(f"{path.name}: version collision: the index holds a different file of this "
                    "dev version (two branches at the same distance from a tag); skipped")
                outcomes.append(Outcome(path, "collision"))
        return outcomes

    def _upload_one(self, path: Path, *, attestations: bool = False) -> None:
        import requests
        from twine import exceptions as twine_errors
        from twine.commands.upload import upload
        from twine.settings import Settings

        username = self.username
        password = self.password.reveal() if self.password else None
        if not self.needs_credentials and not (username and password):
            username, password = "brewblox-release", "rehearsal"  # an index on loopback
        settings = Settings(repository_url=self.upload_url, username=username,
                            password=password, non_interactive=True,
                            disable_progress_bar=True, attestations=attestations)
        dists = [str(path), *([f"{path}.publish.attestation"] if attestations else [])]

        def attempt() -> None:
            try:
                with _captured(f"twine: {path.name}: "):
                    upload(settings, dists)
            except requests.HTTPError as e:
                status = e.response.status_code if e.response is not None else 0
                if status in {401, 403}:
                    raise CredentialsError(
                        f"{self.display_upload_url} refused the upload of {path.name} "
                        f"({status}): check TWINE_USERNAME and TWINE_PASSWORD (an API token "
                        "with username __token__) and that the token may upload this "
                        "project") from e
                failed = PublishError(redact(
                    f"uploading {path.name} to {self.display_upload_url} failed: {e}; "
                    "re-running the release completes it"))
                if status < 500:
                    raise failed from e
                raise TransientError(failed, str(status)) from e
            except (requests.ConnectionError, requests.Timeout) as e:
                raise TransientError(PublishError(redact(
                    f"{self.display_upload_url} is not reachable: {e}")), type(e).__name__) from e
            except twine_errors.TwineException as e:
                raise PublishError(redact(f"twine could not upload {path.name}: {e}")) from e

        retrying(f"uploading {path.name}", attempt, backoff=UPLOAD_BACKOFF)
        log(f"uploaded {path.name} to {self.display_upload_url}")


@contextlib.contextmanager
def _captured(prefix: str) -> Iterator[None]:
    """Route twine's prints and log records through the redactor."""

    class Handler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            detail(prefix + record.getMessage())

    logger, handler = logging.getLogger("twine"), Handler()
    old_level, old_propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    logger.propagate = False
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        logger.propagate = old_propagate
        for line in out.getvalue().splitlines():
            if line.strip():
                detail(prefix + line)
