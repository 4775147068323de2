"""Read an OCI registry through its HTTP API (plain HTTP on loopback, as the engine allows, else
HTTPS); credentials as docs/sessions.md says, sent to its origin and token service only."""

from __future__ import annotations

import base64
import contextlib
import email.parser
import io
import json
import re
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from email.message import Message
from http.client import HTTPMessage
from pathlib import Path
from typing import IO, Any

from ._dockerconfig import config_dir, stored_credentials
from ._errors import CredentialsError, PublishError
from ._hosts import is_loopback, same_origin, split_image
from ._secret import Secret

MANIFEST_TYPES = ", ".join(f"application/vnd.{kind}+json" for kind in (
    "oci.image.index.v1", "docker.distribution.manifest.list.v2", "oci.image.manifest.v1",
    "docker.distribution.manifest.v2"))
#: A ``*.dist-info`` (or its METADATA) in site-packages or dist-packages; ``.wh.``: a whiteout.
_DIST_INFO = re.compile(
    r"^((?:.*/)?(?:site|dist)-packages/)(\.wh\.)?(([^/]+?)-[^/-]+\.dist-info)(/METADATA)?$")


class _SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects as urllib does, but drop ``Authorization`` when one leaves the origin:
    urllib copies it wherever a redirect points (blob reads go to storage hosts)."""

    def redirect_request(  # noqa: PLR0917 (urllib's own signature)
            self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str,
            headers: HTTPMessage, newurl: str) -> urllib.request.Request | None:
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and not same_origin(req.full_url, new.full_url):
            new.remove_header("Authorization")
        return new


_OPENER = urllib.request.build_opener(_SameOriginRedirects)


def _next_page(link: str) -> str | None:
    """The path of the next page of a tag list, from its ``Link`` header; None on the last.

    >>> _next_page('</v2/o/r/tags/list?last=b&n=2>; rel="next"')
    'tags/list?last=b&n=2'
    """
    found = re.search(r'<([^>]*)>\s*;\s*rel="?next"?', link)
    query = urllib.parse.urlsplit(found.group(1)).query if found else None
    return f"tags/list?{query}" if query else None


def _dist_infos(blob: bytes) -> Iterator[tuple[str, str, Message | None]]:
    """The ``*.dist-info`` of a layer, in its order: its path, its project name, and its
    METADATA's headers, or None for a whiteout (the layer removes it)."""
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:*") as tar:
        for member in tar:
            if not (match := _DIST_INFO.match(member.name)):
                continue
            key, project = match[1] + match[3], match[4]
            if match[2]:
                yield key, project, None
            elif match[5] and (data := tar.extractfile(member)) is not None:
                yield key, project, email.parser.BytesHeaderParser().parsebytes(data.read())


@dataclass
class Registry:
    """One image repository on its registry.

    >>> Registry("127.0.0.1:5000/demo/svc").base
    'http://127.0.0.1:5000/v2/demo/svc'
    """

    image: str
    username: str | None = None
    password: Secret | None = None
    timeout: float = 15.0
    docker_config: Path | None = None  # its config.json, else `dockerconfig.config_dir`'s
    _authorization: Secret | None = field(default=None, repr=False)
    _challenge: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, image: str, env: Mapping[str, str]) -> Registry:
        return cls(image, env.get("DOCKER_USERNAME") or None,
                   Secret(env.get("DOCKER_PASSWORD") or "") or None,
                   docker_config=config_dir(env) / "config.json")

    @property
    def host(self) -> str:
        return split_image(self.image)[0]

    @property
    def base(self) -> str:
        host, path = split_image(self.image)
        return f"{'http' if is_loopback(host) else 'https'}://{host}/v2/{path}"

    def _authenticate(self, challenge: str) -> None:
        """Answer a 401's challenge: Basic with the credentials, or Bearer with a token."""
        params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        realm = params.pop("realm", None)
        scheme = challenge.split(maxsplit=1)[0].lower() if challenge else "unknown"
        credentials = (self.username, self.password) if self.username and self.password else \
            stored_credentials(self.image, self.docker_config)
        basic = None if credentials is None else base64.b64encode(
            f"{credentials[0]}:{credentials[1].reveal()}".encode()).decode()
        if scheme == "basic":
            if basic is None:
                raise CredentialsError(
                    f"registry {self.host} asks for credentials: set DOCKER_USERNAME and "
                    f"DOCKER_PASSWORD, or run `docker login {self.host}`")
            self._authorization = Secret(f"Basic {basic}")
            return
        if scheme != "bearer" or not realm:
            raise PublishError(f"registry {self.host} wants {scheme} auth, which "
                               "brewblox-release cannot speak")
        request = urllib.request.Request(realm + "?" + urllib.parse.urlencode(params))
        if basic is not None:
            request.add_header("Authorization", f"Basic {basic}")
        try:
            with _OPENER.open(request, timeout=self.timeout) as response:
                data = json.load(response)
        except urllib.error.HTTPError as e:
            raise CredentialsError(
                f"registry {self.host} refused a token for {self.image} ({e.code} {e.reason}): "
                "check DOCKER_USERNAME and DOCKER_PASSWORD") from e
        except OSError as e:
            raise PublishError(f"registry {self.host}: its token service is not reachable "
                               f"({e})") from e
        self._authorization = Secret(f"Bearer {data.get('token') or data.get('access_token')}")

    def _request(self, path: str, accept: str | None = None, method: str = "GET", *,
                 data: bytes | None = None,
                 content_type: str | None = None) -> tuple[HTTPMessage, bytes] | None:
        """GET (or HEAD, or PUT ``data``) a path under the repository; None for 404. A 401 is
        answered once per challenge: a PUT's wider scope is answered again."""
        for _ in range(3):
            headers = {"Accept": accept, "Content-Type": content_type, "Authorization":
                       self._authorization.reveal() if self._authorization else None}
            request = urllib.request.Request(f"{self.base}/{path}", data, method=method,
                                             headers={k: v for k, v in headers.items() if v})
            try:
                with _OPENER.open(request, timeout=self.timeout) as response:
                    return response.headers, response.read()
            except urllib.error.HTTPError as e:
                if e.code == 404:
                    return None
                if e.code != 401:
                    raise PublishError(f"registry {self.host}: {method} {path} answered "
                                       f"{e.code} {e.reason}") from e
                if (challenge := e.headers.get("WWW-Authenticate", "")) == self._challenge:
                    break
                self._challenge = challenge
                self._authenticate(challenge)
            except OSError as e:
                raise PublishError(f"registry {self.host} is not reachable ({e}); "
                                   "check the image name and the network") from e
        raise CredentialsError(f"registry {self.host} refused the credentials for {self.image}: "
                               "check DOCKER_USERNAME and DOCKER_PASSWORD (or `docker login`)")

    def tags(self, page: int = 1000) -> list[str]:
        """The repository's tags (none for a new repository), read ``page`` at a time."""
        found: set[str] = set()
        path: str | None = f"tags/list?n={page}"
        for _ in range(10_000):
            if path is None or (answer := self._request(path)) is None:
                break
            tags = self._json(answer[1], "tags/list").get("tags") or []
            found |= {t for t in tags if isinstance(t, str)} if isinstance(tags, list) else set()
            path = _next_page(answer[0].get("link", ""))
        return sorted(found)

    def digest(self, tag: str) -> str | None:
        """The manifest digest a tag points at, or None when the tag does not exist."""
        found = self._request(f"manifests/{tag}", MANIFEST_TYPES, method="HEAD")
        return None if found is None else found[0].get("docker-content-digest")

    def tag(self, source: str, tag: str) -> str:
        """Point ``tag`` at the manifest ``source`` points at, in the registry itself (as
        ``crane tag`` does), whatever an engine's local tags say meanwhile; its digest."""
        found = self._request(f"manifests/{source}", MANIFEST_TYPES)
        if found is None:
            at = "@" if source.startswith("sha256:") else ":"
            raise PublishError(f"{self.image}{at}{source} is not in the registry, so {tag} "
                               "cannot point at it: re-run the release to complete it")
        kind = found[0].get("content-type") or self._json(found[1], source).get("mediaType")
        self._request(f"manifests/{tag}", method="PUT", data=found[1], content_type=kind)
        return found[0].get("docker-content-digest", "")

    def manifest(self, reference: str) -> dict[str, Any] | None:
        found = self._request(f"manifests/{reference}", MANIFEST_TYPES)
        return None if found is None else self._json(found[1], f"manifests/{reference}")

    def _json(self, body: bytes, what: str) -> dict[str, Any]:
        """A JSON object the registry answered, or a PublishError naming it."""
        with contextlib.suppress(ValueError):
            if isinstance(data := json.loads(body), dict):
                return data
        raise PublishError(f"registry {self.host}: {what} did not answer with a JSON "
                           "object: is the image's registry an OCI registry?")

    def config(self, reference: str) -> dict[str, Any]:
        """The image config (platform, labels) of a single-platform manifest."""
        manifest = self.manifest(reference)
        if manifest is None:
            raise PublishError(f"{self.image}:{reference} does not exist")
        if "manifests" in manifest:  # an index: take the first image
            manifest = self.manifest(manifest["manifests"][0]["digest"]) or {}
        found = self._request(f"blobs/{manifest['config']['digest']}")
        if found is None:
            raise PublishError(f"{self.image}:{reference}: config blob is missing")
        return self._json(found[1], "the image config")

    def package_version(self, reference: str, name: str, *,
                        budget: int = 16 << 20) -> str | None:
        """The version of ``name`` in the image, from its topmost layer with its ``.dist-info``
        (no run, no emulation); None when the top ``budget`` bytes do not tell."""
        from packaging.utils import canonicalize_name

        spent = 0
        try:  # blobs may redirect to storage that refuses the registry's token
            for layer in reversed((self.manifest(reference) or {}).get("layers") or []):
                spent += int(layer.get("size", 0))
                if spent > budget or (found := self._request(f"blobs/{layer['digest']}")) is None:
                    return None
                for _, project, headers in _dist_infos(found[1]):
                    if canonicalize_name(project) == canonicalize_name(name):
                        # None: a whiteout, this layer removed the installation
                        version = None if headers is None else headers.get("Version")
                        return str(version).strip() if version else None
        except (PublishError, tarfile.TarError, OSError, EOFError, zlib.error):
            return None
        return None

    def distributions(self, reference: str, cache: Path | None = None) -> dict[str, str]:
        """Every Python distribution in a single-platform image, name to version (for the SBOM);
        each layer's kept in ``cache``."""
        manifest = self.manifest(reference) or {}
        if "manifests" in manifest:
            raise PublishError(f"{self.image}@{reference} is a list: ask each of its images")
        installed: dict[str, tuple[str, str]] = {}  # the dist-info's path -> (name, version)
        for layer in manifest.get("layers") or []:
            added, removed = self._layer_distributions(str(layer["digest"]), cache)
            for key in removed:
                installed.pop(key, None)
            installed |= added
        return dict(sorted(installed.values()))

    def _layer_distributions(self, digest: str, cache: Path | None
                             ) -> tuple[dict[str, tuple[str, str]], list[str]]:
        """The dist-infos one layer adds (path -> (name, version)) and removes (whiteouts)."""
        kept = cache / f"{digest.replace(':', '-')}.json" if cache is not None else None
        if kept is not None:
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError, IndexError):
                data = json.loads(kept.read_text())
                return {k: (v[0], v[1]) for k, v in data["added"].items()}, data["removed"]
        found = self._request(f"blobs/{digest}")
        if found is None:
            raise PublishError(f"{self.image}: layer {digest} is missing")
        added: dict[str, tuple[str, str]] = {}
        removed: list[str] = []
        for key, _, headers in _dist_infos(found[1]):
            if headers is None:
                removed.append(key)
            elif headers.get("Name") and headers.get("Version"):
                added[key] = (str(headers["Name"]).strip(), str(headers["Version"]).strip())
        if kept is not None:
            with contextlib.suppress(OSError):  # a cache that cannot be written costs time only
                kept.parent.mkdir(parents=True, exist_ok=True)
                kept.write_text(json.dumps({"added": added, "removed": removed}))
        return added, removed
