"""The package index: what it already holds (its simple API), and uploads through twine.

The sha256 rule of SPEC §7 is the library's own, so it works for any index (twine's
``--skip-existing`` only works for PyPI and TestPyPI): a file already there with the same
sha256 is skipped; with a different sha256 it is an error for a release and a reported
"version collision" for a dev build.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from .errors import ConfigError, CredentialsError, PublishError
from .registry import is_loopback
from .run import log, redact

if TYPE_CHECKING:  # pypi-simple and twine load on use
    from pypi_simple import DistributionPackage, PyPISimple

__all__ = ["PYPI_UPLOAD", "Index", "Outcome"]

PYPI_UPLOAD = "https://upload.pypi.org/legacy/"
TESTPYPI_UPLOAD = "https://test.pypi.org/legacy/"
_SIMPLE = {
    PYPI_UPLOAD: "https://pypi.org/simple/",
    TESTPYPI_UPLOAD: "https://test.pypi.org/simple/",
}
#: twine's own names for the indexes it knows without a ~/.pypirc (``TWINE_REPOSITORY``).
_NAMED = {"pypi": PYPI_UPLOAD, "testpypi": TESTPYPI_UPLOAD}
#: Attempts and first pause of the retries of an upload (5xx, connection errors).
UPLOAD_ATTEMPTS = 4
UPLOAD_BACKOFF = 1.0


@dataclass(frozen=True)
class Outcome:
    """What happened to one file."""

    path: Path
    status: str  # "uploaded", "skipped" (same file there), "collision" (dev, different file)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _named(name: str | None) -> str:
    """The upload URL of twine's ``TWINE_REPOSITORY``; a name from ~/.pypirc is refused, since
    the sha256 rule must read the same index that twine uploads to."""
    if not name:
        return PYPI_UPLOAD
    if name in _NAMED:
        return _NAMED[name]
    raise ConfigError(f"TWINE_REPOSITORY={name!r}: brewblox-release knows only 'pypi' and "
                      "'testpypi' by name; set TWINE_REPOSITORY_URL to the index's upload URL "
                      "(and BREWBLOX_RELEASE_INDEX_URL to its simple API if that is not "
                      "<upload URL>/simple/)")


@dataclass(frozen=True)
class Index:
    """A package index, as twine and pip know it.

    Attributes:
        upload_url: ``TWINE_REPOSITORY_URL``, else ``TWINE_REPOSITORY`` (``pypi`` or
            ``testpypi``), else PyPI.
        simple_url: its simple API; ``BREWBLOX_RELEASE_INDEX_URL``, else PyPI's and TestPyPI's
            own, else ``<upload_url>/simple/`` (pypiserver's layout).
        username, password: ``TWINE_USERNAME`` and ``TWINE_PASSWORD`` (an API token with
            user ``__token__``).
        trusted_publishing: uploading to PyPI or TestPyPI from GitHub Actions with an OIDC
            token (``ACTIONS_ID_TOKEN_REQUEST_URL``) and no username other than ``__token__``:
            twine (6.1 and later) exchanges it for an upload token; no password is needed.
            Other indexes know no trusted publishing and need ``TWINE_PASSWORD``.
    """

    upload_url: str = PYPI_UPLOAD
    simple_url: str = "https://pypi.org/simple/"
    username: str | None = None
    password: str | None = None
    trusted_publishing: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Index:
        upload = env.get("TWINE_REPOSITORY_URL") or _named(env.get("TWINE_REPOSITORY"))
        simple = env.get("BREWBLOX_RELEASE_INDEX_URL") or _SIMPLE.get(upload) or (
            upload.rstrip("/") + "/simple/")
        username = env.get("TWINE_USERNAME") or None
        trusted = (bool(env.get("ACTIONS_ID_TOKEN_REQUEST_URL")) and upload in _SIMPLE
                   and username in (None, "__token__"))
        return cls(upload_url=upload, simple_url=simple, username=username,
                   password=env.get("TWINE_PASSWORD") or None, trusted_publishing=trusted)

    @property
    def needs_credentials(self) -> bool:
        return not is_loopback(urlsplit(self.upload_url).netloc.rpartition("@")[2])

    def missing_credentials(self) -> str | None:
        """The variable to set before uploading, or None when the index can be reached."""
        if not self.needs_credentials or self.trusted_publishing or self.password:
            return None
        return "TWINE_PASSWORD"

    @property
    def read_auth(self) -> tuple[str, str] | None:
        """twine's credentials, for reading a private index too: only where the simple API is
        on the upload URL's host, so they never go anywhere twine would not send them."""
        same_host = urlsplit(self.simple_url).netloc == urlsplit(self.upload_url).netloc
        if same_host and self.username and self.password:
            return self.username, self.password
        return None

    def authenticated_simple_url(self) -> str:
        """The simple API's URL with `read_auth` in it, for pip (never log it unmasked)."""
        from urllib.parse import quote

        auth = self.read_auth
        if auth is None:
            return self.simple_url
        parts = urlsplit(self.simple_url)
        user, password = (quote(x, safe="") for x in auth)
        return parts._replace(netloc=f"{user}:{password}@{parts.netloc}").geturl()

    def files(self, name: str) -> dict[str, str | None]:
        """The project's files on the index, yanked ones included: file name -> sha256.

        A file the index lists without a sha256 is downloaded and hashed, so that the sha256
        rule never takes a file for the same one unseen.
        """
        return {filename: digest for filename, (digest, _) in self._listing(name).items()}

    def _listing(self, name: str, *, hashed: bool = True) -> dict[str, tuple[str | None, bool]]:
        """file name -> (sha256, yanked)."""
        from pypi_simple import NoSuchProjectError, PyPISimple

        try:
            with PyPISimple(self.simple_url, auth=self.read_auth) as client:
                page = client.get_project_page(name, timeout=30)
                found = {p.filename: (p.digests.get("sha256"), p.is_yanked)
                         for p in page.packages}
                for package in page.packages if hashed else ():
                    if found[package.filename][0] is None:
                        found[package.filename] = (self._hash(client, package), package.is_yanked)
        except NoSuchProjectError:
            return {}
        except Exception as e:  # requests' and pypi_simple's errors alike
            raise PublishError(redact(f"cannot read {self.simple_url} for {name}: {e}")) from e
        return found

    @staticmethod
    def _hash(client: PyPISimple, package: DistributionPackage) -> str:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "file"
            client.download_package(package, path, verify=False, timeout=60)  # no digest
            return sha256(path)

    def versions(self, name: str) -> set[str]:
        from packaging.utils import (
            InvalidSdistFilename,
            InvalidWheelFilename,
            parse_sdist_filename,
            parse_wheel_filename,
        )

        found = set()
        # What pip can install: a yanked file is left out, as pip leaves it out (PEP 592).
        for filename, (_, yanked) in self._listing(name, hashed=False).items():
            if yanked:
                continue
            try:
                if filename.endswith(".whl"):
                    found.add(str(parse_wheel_filename(filename)[1]))
                elif filename.endswith(".tar.gz"):
                    found.add(str(parse_sdist_filename(filename)[1]))
            except (InvalidWheelFilename, InvalidSdistFilename):
                continue
        return found

    def check(self, name: str, paths: Iterable[Path], *, release: bool) -> None:
        """Before anything is published: the index answers and, for a release, holds no
        different file under the name of one of ``paths`` (the upload would fail after the
        images were pushed)."""
        present = self.files(name)
        for path in paths:
            there = present.get(path.name)
            if release and there is not None and there != sha256(path):
                raise PublishError(self._different(path, there) + "; nothing was published")

    def _different(self, path: Path, there: str | None) -> str:
        return (f"{path.name} is already on {self.simple_url} with different contents "
                f"(sha256 {there}), and an index never replaces a file: release a new "
                "version (tag the next one) instead")

    def upload(self, name: str, paths: Iterable[Path], *, release: bool) -> list[Outcome]:
        """Upload the files that are not there yet; skip those that are, byte for byte."""
        present = self.files(name)
        outcomes = []
        for path in paths:
            there = present.get(path.name, "absent")
            if there == "absent":
                self._upload_one(path)
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

    def _upload_one(self, path: Path) -> None:
        import requests
        from twine import exceptions as twine_errors
        from twine.commands.upload import upload
        from twine.settings import Settings

        username, password = self.username, self.password
        if not self.needs_credentials and not (username and password):
            username, password = "brewblox-release", "rehearsal"  # an index on loopback
        settings = Settings(repository_url=self.upload_url, username=username,
                            password=password, non_interactive=True,
                            disable_progress_bar=True)
        for attempt in range(1, UPLOAD_ATTEMPTS + 1):
            try:
                with _captured(f"twine: {path.name}: "):
                    upload(settings, [str(path)])
            except requests.HTTPError as e:
                status = e.response.status_code if e.response is not None else 0
                if status in {401, 403}:
                    raise CredentialsError(
                        f"{self.upload_url} refused the upload of {path.name} ({status}): check "
                        "TWINE_USERNAME and TWINE_PASSWORD (an API token with username "
                        "__token__) and that the token may upload this project") from e
                if status < 500 or attempt == UPLOAD_ATTEMPTS:
                    raise PublishError(redact(
                        f"uploading {path.name} to {self.upload_url} failed: {e}; re-running "
                        "the release completes it")) from e
                reason = f"{status}"
            except (requests.ConnectionError, requests.Timeout) as e:
                if attempt == UPLOAD_ATTEMPTS:
                    raise PublishError(redact(f"{self.upload_url} is not reachable: {e}")) from e
                reason = type(e).__name__
            except twine_errors.TwineException as e:
                raise PublishError(redact(f"twine could not upload {path.name}: {e}")) from e
            else:
                log(f"uploaded {path.name} to {self.upload_url}")
                return
            pause = UPLOAD_BACKOFF * 2 ** (attempt - 1)
            log(f"uploading {path.name}: attempt {attempt} of {UPLOAD_ATTEMPTS} failed ({reason});"
                f" retrying in {pause:.0f} s")
            time.sleep(pause)


class _LogHandler(logging.Handler):
    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def emit(self, record: logging.LogRecord) -> None:
        log(self.prefix + record.getMessage())


@contextlib.contextmanager
def _captured(prefix: str) -> Iterator[None]:
    """Route twine's prints and log records through the redactor."""
    logger = logging.getLogger("twine")
    handler = _LogHandler(prefix)
    logger.addHandler(handler)
    old_level, old_propagate = logger.level, logger.propagate
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
                log(prefix + line)
