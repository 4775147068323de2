"""Read an OCI registry through its HTTP API: tags, manifest digests, image configs.

Used to feed the forward-only ``latest`` rule and to verify a release. Registries on loopback
speak plain HTTP (as the engine allows for 127.0.0.0/8); others HTTPS, with the bearer-token
flow of Docker Hub and GHCR (anonymous, or with credentials) or Basic auth (ECR, Nexus, an
htpasswd registry). Credentials: DOCKER_USERNAME/DOCKER_PASSWORD, else ``docker login``'s.

Credentials go only to the registry's own origin and to the token service it names: a
redirect elsewhere (Docker Hub, ECR and GHCR send blob reads to their storage hosts) carries
no ``Authorization`` header. urllib copies every header onto a redirect, wherever it points,
so this module's opener strips it (as requests does).
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.client import HTTPMessage
from pathlib import Path
from typing import IO, Any

from .dockerconfig import config_dir, stored_credentials
from .errors import CredentialsError, PublishError
from .hosts import is_loopback, same_origin, split_image
from .secret import Secret

__all__ = ["MANIFEST_TYPES", "Registry", "is_loopback", "split_image"]

MANIFEST_TYPES = ", ".join((
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
))


class _SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects as urllib does, but drop ``Authorization`` when one leaves the origin
    (scheme, host, port) of the request it answers."""

    def redirect_request(  # noqa: PLR0917 (urllib's own signature)
            self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str,
            headers: HTTPMessage, newurl: str) -> urllib.request.Request | None:
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and not same_origin(req.full_url, new.full_url):
            new.remove_header("Authorization")
        return new


_OPENER = urllib.request.build_opener(_SameOriginRedirects)


def _next_page(link: str) -> str | None:
    """The path of the next page of a tag list, from its ``Link`` header, relative to the
    repository (``tags/list?n=100&last=x``); None on the last page.

    >>> _next_page('</v2/o/r/tags/list?last=b&n=2>; rel="next"')
    'tags/list?last=b&n=2'
    """
    found = re.search(r'<([^>]*)>\s*;\s*rel="?next"?', link)
    if found is None:
        return None
    query = urllib.parse.urlsplit(found.group(1)).query
    return f"tags/list?{query}" if query else None


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
    #: docker's config directory, where ``docker login``'s credentials are looked up.
    docker_config: Path | None = None
    _authorization: Secret | None = field(default=None, repr=False)
    _challenge: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, image: str, env: Mapping[str, str]) -> Registry:
        password = env.get("DOCKER_PASSWORD")
        return cls(image, env.get("DOCKER_USERNAME") or None,
                   Secret(password) if password else None, docker_config=config_dir(env))

    @property
    def host(self) -> str:
        return split_image(self.image)[0]

    @property
    def base(self) -> str:
        host, path = split_image(self.image)
        scheme = "http" if is_loopback(host) else "https"
        return f"{scheme}://{host}/v2/{path}"

    def _credentials(self) -> tuple[str, Secret] | None:
        """DOCKER_USERNAME and DOCKER_PASSWORD, else what ``docker login`` stored."""
        if self.username and self.password:
            return self.username, self.password
        config = self.docker_config / "config.json" if self.docker_config else None
        return stored_credentials(self.image, config)

    def _authenticate(self, challenge: str) -> None:
        """Answer a 401's challenge: Basic (ECR, Nexus, an htpasswd registry) with the
        credentials, or Bearer (Docker Hub, GHCR) with a token from the realm."""
        params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        realm = params.pop("realm", None)
        scheme = challenge.split(maxsplit=1)[0].lower() if challenge else "unknown"
        credentials = self._credentials()
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
        url = realm + "?" + urllib.parse.urlencode(params)
        request = urllib.request.Request(url)
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
                 content_type: str | None = None) -> tuple[Mapping[str, str], bytes] | None:
        """GET (or HEAD, or PUT ``data``) a path under the repository; None for 404.

        A 401 is answered once per challenge: a token for pulling does not push, so a PUT's
        challenge (a wider scope) is answered again."""
        for _ in range(3):
            request = urllib.request.Request(f"{self.base}/{path}", method=method, data=data)
            if accept:
                request.add_header("Accept", accept)
            if content_type:
                request.add_header("Content-Type", content_type)
            if self._authorization:
                request.add_header("Authorization", self._authorization.reveal())
            try:
                with _OPENER.open(request, timeout=self.timeout) as response:
                    return dict(response.headers.items()), response.read()
            except urllib.error.HTTPError as e:
                if e.code == 404:
                    return None
                challenge = e.headers.get("WWW-Authenticate", "")
                if e.code == 401 and challenge != self._challenge:
                    self._challenge = challenge
                    self._authenticate(challenge)
                    continue
                if e.code == 401:
                    break
                raise PublishError(f"registry {self.host}: {method} {path} answered {e.code} "
                                   f"{e.reason}") from e
            except OSError as e:
                raise PublishError(f"registry {self.host} is not reachable ({e}); "
                                   "check the image name and the network") from e
        raise CredentialsError(f"registry {self.host} refused the credentials for {self.image}: "
                               "check DOCKER_USERNAME and DOCKER_PASSWORD (or `docker login`)")

    def tags(self, page: int = 1000) -> list[str]:
        """The repository's tags (empty when the repository does not exist yet), every page of
        them: the registry answers ``page`` at a time and names the next in its ``Link``."""
        found: set[str] = set()
        path: str | None = f"tags/list?n={page}"
        for _ in range(10_000):
            if path is None:
                break
            answer = self._request(path)
            if answer is None:
                break
            tags = self._json(answer[1], "tags/list").get("tags") or []
            found |= {t for t in tags if isinstance(t, str)} if isinstance(tags, list) else set()
            path = _next_page({k.lower(): v for k, v in answer[0].items()}.get("link", ""))
        return sorted(found)

    def digest(self, tag: str) -> str | None:
        """The manifest digest a tag points at, or None when the tag does not exist."""
        found = self._request(f"manifests/{tag}", MANIFEST_TYPES, method="HEAD")
        if found is None:
            return None
        headers = {k.lower(): v for k, v in found[0].items()}
        return headers.get("docker-content-digest")

    def tag(self, source: str, tag: str) -> str:
        """Point ``tag`` at the manifest ``source`` points at, in the registry itself (as
        ``crane tag`` does: the manifest's own bytes put under the new tag), so that ``tag``
        is exactly what this run pushed, whatever an engine's local tags say meanwhile.
        Returns the digest."""
        found = self._request(f"manifests/{source}", MANIFEST_TYPES)
        if found is None:
            raise PublishError(f"{self.image}:{source} is not in the registry, so {tag} cannot "
                               "point at it: re-run the release to complete it")
        headers = {k.lower(): v for k, v in found[0].items()}
        kind = headers.get("content-type") or self._json(found[1], source).get("mediaType")
        self._request(f"manifests/{tag}", method="PUT", data=found[1], content_type=kind)
        return headers.get("docker-content-digest", "")

    def manifest(self, reference: str) -> dict[str, Any] | None:
        found = self._request(f"manifests/{reference}", MANIFEST_TYPES)
        return None if found is None else self._json(found[1], f"manifests/{reference}")

    def _json(self, body: bytes, what: str) -> dict[str, Any]:
        """A JSON object the registry answered, or a PublishError naming it."""
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise PublishError(f"registry {self.host}: {what} did not answer with a JSON "
                               "object: is the image's registry an OCI registry?")
        return data

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
        """The version of the distribution ``name`` installed in the image, read from the
        registry without pulling or running the image (no emulation for arm): the METADATA of
        its ``.dist-info`` in a site-packages or dist-packages directory, in the topmost layer
        that has one. None when the top layers (up to ``budget`` compressed bytes) do not tell,
        or cannot be read: then the image has to be run."""
        import email.parser
        import io
        import tarfile
        import zlib

        def canonical(text: str) -> str:
            return re.sub(r"[-_.]+", "_", text).lower()

        want = canonical(name)
        info = re.compile(r"(?:^|/)(?:site|dist)-packages/(\.wh\.)?([^/]+)-[^/-]+\.dist-info"
                          r"(/METADATA)?$")
        try:
            manifest = self.manifest(reference)
        except PublishError:
            return None
        spent = 0
        for layer in reversed((manifest or {}).get("layers") or []):
            spent += int(layer.get("size", 0))
            try:  # blobs may redirect to storage that refuses the registry's token
                found = self._request(f"blobs/{layer['digest']}") if spent <= budget else None
            except PublishError:
                return None
            if found is None:
                return None
            try:
                with tarfile.open(fileobj=io.BytesIO(found[1]), mode="r:*") as tar:
                    for member in tar:
                        match = info.search(member.name)
                        if not match or canonical(match.group(2)) != want:
                            continue
                        if match.group(1):  # a whiteout: this layer removed an installation
                            return None
                        data = tar.extractfile(member) if match.group(3) else None
                        if data is not None:
                            version = email.parser.BytesHeaderParser().parsebytes(
                                data.read()).get("Version")
                            return str(version).strip() if version else None
            except (tarfile.TarError, OSError, EOFError, zlib.error):
                return None
        return None

    def distributions(self, reference: str, cache: Path | None = None) -> dict[str, str]:
        """Every Python distribution installed in a single-platform image, name to version,
        read from its layers' ``*.dist-info/METADATA`` (site-packages and dist-packages), the
        layers applied in order (a whiteout removes an installation): what the image holds, not
        what was meant to go in. For the SBOM of a signed image. What a layer holds is kept in
        ``cache`` by the layer's digest (the base image's layers are read once)."""
        manifest = self.manifest(reference) or {}
        if "manifests" in manifest:
            raise PublishError(f"{self.image}@{reference} is a list: ask each of its images")
        installed: dict[str, tuple[str, str]] = {}  # the dist-info's path -> (name, version)
        for layer in manifest.get("layers") or []:
            added, removed = self._layer_distributions(str(layer["digest"]), cache)
            for key in removed:
                installed.pop(key, None)
            installed |= {key: (name, version) for key, (name, version) in added.items()}
        return dict(sorted(installed.values()))

    def _layer_distributions(self, digest: str, cache: Path | None
                             ) -> tuple[dict[str, tuple[str, str]], list[str]]:
        """The dist-infos one layer adds (path -> (name, version)) and removes (whiteouts)."""
        import email.parser
        import io
        import tarfile

        kept = cache / f"{digest.replace(':', '-')}.json" if cache is not None else None
        if kept is not None:
            try:
                data = json.loads(kept.read_text())
                return {k: (v[0], v[1]) for k, v in data["added"].items()}, data["removed"]
            except (OSError, ValueError, KeyError, TypeError, IndexError):
                pass
        info = re.compile(r"(?:^|/)((?:site|dist)-packages)/(\.wh\.)?([^/]+?)-([^/-]+)"
                          r"\.dist-info(/METADATA)?$")
        found = self._request(f"blobs/{digest}")
        if found is None:
            raise PublishError(f"{self.image}: layer {digest} is missing")
        added: dict[str, tuple[str, str]] = {}
        removed: list[str] = []
        with tarfile.open(fileobj=io.BytesIO(found[1]), mode="r:*") as tar:
            for member in tar:
                match = info.search(member.name)
                if not match:
                    continue
                key = member.name[:match.start(2) if match.group(2) else match.start(3)] + \
                    f"{match.group(3)}-{match.group(4)}.dist-info"
                if match.group(2):
                    removed.append(key)
                    continue
                data_file = tar.extractfile(member) if match.group(5) else None
                if data_file is not None:
                    headers = email.parser.BytesHeaderParser().parsebytes(data_file.read())
                    if headers.get("Name") and headers.get("Version"):
                        added[key] = (str(headers["Name"]).strip(),
                                      str(headers["Version"]).strip())
        if kept is not None:
            with contextlib.suppress(OSError):  # a cache that cannot be written costs time only
                kept.parent.mkdir(parents=True, exist_ok=True)
                kept.write_text(json.dumps({"added": added, "removed": removed}))
        return added, removed
