"""Reading a real registry (docker-registry on loopback) through its HTTP API."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from brewblox_release._errors import CredentialsError, PublishError
from brewblox_release._prepared import Pushed
from brewblox_release._registry import Registry
from brewblox_release._secret import Secret
from brewblox_release._servers import RegistryServer
from brewblox_release._sign import references
from tests.conftest import require_or_skip
from tests.service import htpasswd


@pytest.fixture
def bare_registry(tmp_path: Path) -> Iterator[RegistryServer]:
    """A registry without the engine: these tests upload through the HTTP API themselves."""
    if not (shutil.which("docker-registry") or shutil.which("registry")):
        require_or_skip("no registry program: run `bash .ci/provision.sh` as root")
    with RegistryServer(tmp_path) as server:
        assert isinstance(server, RegistryServer)
        yield server


def _basic(auth: tuple[str, str] | None) -> dict[str, str]:
    if auth is None:
        return {}
    return {"Authorization": "Basic " + base64.b64encode(":".join(auth).encode()).decode()}


def _upload(address: str, repo: str, data: bytes, auth: tuple[str, str] | None = None) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    start = urllib.request.Request(f"http://{address}/v2/{repo}/blobs/uploads/", method="POST",
                                   headers=_basic(auth))
    with urllib.request.urlopen(start) as response:
        location = response.headers["Location"]
    if location.startswith("/"):
        location = f"http://{address}{location}"
    sep = "&" if "?" in location else "?"
    put = urllib.request.Request(f"{location}{sep}digest={digest}", data=data, method="PUT",
                                 headers={"Content-Type": "application/octet-stream",
                                          **_basic(auth)})
    urllib.request.urlopen(put).close()
    return digest


def _layer(name: str, version: str) -> bytes:
    """A gzipped layer holding an installed distribution's METADATA, as pip leaves it."""
    import gzip
    import io
    import tarfile

    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        member = tarfile.TarInfo("usr/local/lib/python3.11/site-packages/"
                                 f"{name.replace('-', '_')}-{version}.dist-info/METADATA")
        member.size = len(metadata)
        tar.addfile(member, io.BytesIO(metadata))
    return gzip.compress(out.getvalue(), mtime=0)


def push_image(address: str, repo: str, tag: str, labels: dict[str, str], *,
          layers: tuple[bytes, ...] = (), auth: tuple[str, str] | None = None) -> str:
    config = json.dumps({"architecture": "arm", "variant": "v7", "os": "linux",
                         "config": {"Labels": labels}, "rootfs": {"type": "layers",
                                                                  "diff_ids": []}}).encode()
    config_digest = _upload(address, repo, config, auth)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": _upload(address, repo, layer, auth), "size": len(layer)}
                   for layer in layers]}).encode()
    put = urllib.request.Request(
        f"http://{address}/v2/{repo}/manifests/{tag}", data=manifest, method="PUT",
        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json", **_basic(auth)})
    urllib.request.urlopen(put).close()
    return "sha256:" + hashlib.sha256(manifest).hexdigest()


def test_tags_digests_and_configs(bare_registry: RegistryServer) -> None:
    image = f"{bare_registry.address}/demo/svc"
    registry = Registry(image)
    assert registry.base == f"http://{bare_registry.address}/v2/demo/svc"
    assert registry.tags() == []
    assert registry.digest("1.2.3") is None
    digest = push_image(bare_registry.address, "demo/svc", "1.2.3", {"v": "1.2.3"})
    push_image(bare_registry.address, "demo/svc", "latest", {"v": "1.2.3"})
    assert registry.tags() == ["1.2.3", "latest"]
    assert registry.digest("1.2.3") == digest == registry.digest("latest")
    config = registry.config("1.2.3")
    assert (config["architecture"], config["variant"]) == ("arm", "v7")
    assert config["config"]["Labels"] == {"v": "1.2.3"}


def test_unreachable_registry() -> None:
    with pytest.raises(PublishError, match="not reachable"):
        Registry("127.0.0.1:9/demo/svc").tags()


def test_docker_hub_names() -> None:
    assert Registry("brewblox/svc").base == "https://registry-1.docker.io/v2/brewblox/svc"
    assert Registry("python").base == "https://registry-1.docker.io/v2/library/python"
    assert Registry("ghcr.io/org/svc").base == "https://ghcr.io/v2/org/svc"


class _TokenRegistry(BaseHTTPRequestHandler):
    """Docker Hub's token flow, which no registry here speaks: the one thing these tests mock."""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        assert isinstance(self.server, ThreadingHTTPServer)
        port = self.server.server_port
        if self.path.startswith("/token"):
            ok = self.headers.get("Authorization") == "Basic " + base64.b64encode(
                b"user:s3cret-token").decode()
            self._send(200 if ok else 401, {"token": "T0K"} if ok else {})
        elif self.headers.get("Authorization") == "Bearer T0K":
            self._send(200, {"name": "org/svc", "tags": ["1.0.0"]})
        else:
            self.send_response(401)
            self.send_header("WWW-Authenticate", f'Bearer realm="http://127.0.0.1:{port}/token",'
                             'service="registry",scope="repository:org/svc:pull"')
            self.send_header("Content-Length", "0")
            self.end_headers()

    def _send(self, status: int, body: dict[str, object]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def test_bearer_token_flow_with_credentials() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _TokenRegistry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        image = f"127.0.0.1:{server.server_address[1]}/org/svc"
        assert Registry(image, "user", Secret("s3cret-token")).tags() == ["1.0.0"]
        with pytest.raises(CredentialsError, match=r"refused a token for \S+ \(401"):
            Registry(image, "user", Secret("wrong")).tags()
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def locked_registry(tmp_path: Path) -> Iterator[RegistryServer]:
    """A registry that wants Basic auth for everything (as ECR, Nexus or an htpasswd registry)."""
    if not (shutil.which("docker-registry") or shutil.which("registry")):
        require_or_skip("no registry program: run `bash .ci/provision.sh` as root")
    users = htpasswd(tmp_path / "htpasswd", "ci", "s3cret-token")
    with RegistryServer(tmp_path / "locked", htpasswd=users) as server:
        assert isinstance(server, RegistryServer)
        yield server


def test_basic_auth_with_credentials(locked_registry: RegistryServer, tmp_path: Path) -> None:
    # Found in review: a Basic challenge was "auth brewblox-release cannot read".
    no_login = {"DOCKER_CONFIG": str(tmp_path / ".docker")}
    image = f"{locked_registry.address}/demo/svc"
    registry = Registry.from_env(image, {**no_login, "DOCKER_USERNAME": "ci",
                                         "DOCKER_PASSWORD": "s3cret-token"})
    assert registry.tags() == []
    assert "s3cret-token" not in repr(registry), "the password and the token are Secrets"
    assert "password=Secret('****')" in repr(registry)
    with pytest.raises(CredentialsError, match=r"asks for credentials.*DOCKER_USERNAME"):
        Registry.from_env(image, no_login).tags()
    with pytest.raises(CredentialsError, match="refused the credentials"):
        Registry.from_env(image, {**no_login, "DOCKER_USERNAME": "ci",
                                  "DOCKER_PASSWORD": "wrong"}).tags()


def test_basic_auth_with_docker_logins_credentials(locked_registry: RegistryServer,
                                                   tmp_path: Path) -> None:
    # What `docker login` writes without a credential store: auths.<host>.auth.
    env = {"DOCKER_CONFIG": str(tmp_path / ".docker")}
    (tmp_path / ".docker").mkdir()
    auth = base64.b64encode(b"ci:s3cret-token").decode()
    (tmp_path / ".docker" / "config.json").write_text(
        json.dumps({"auths": {locked_registry.address: {"auth": auth}}}))
    registry = Registry.from_env(f"{locked_registry.address}/demo/svc", env)
    assert registry.tags() == []
    assert "s3cret-token" not in repr(registry), "a Secret in its repr"
    from brewblox_release._run import redact

    assert "s3cret-token" not in redact("password s3cret-token"), "it is masked once read"


ONE_TARGET = """\
[[tool.brewblox-release.targets]]
name = "amd64"
context = "docker"
platform = "linux/amd64"
"""


def test_blob_reads_redirected_to_storage_carry_no_credentials(
        locked_registry: RegistryServer, tmp_path: Path) -> None:
    # Docker Hub, ECR and GHCR answer blob reads with a redirect to their storage hosts; urllib
    # copied the registry's Authorization header onto it.
    from brewblox_release._prepared import Options, Summary
    from brewblox_release._release import prepare
    from brewblox_release._verify import verify
    from tests.proxy import RedirectingFront
    from tests.service import make_service, travis_env

    auth = ("ci", "s3cret-token")
    push_image(locked_registry.address, "demo/svc", "1.2.3", {"v": "1.2.3"},
          layers=(_layer("demo-svc", "1.2.3"),), auth=auth)
    with RedirectingFront(f"http://{locked_registry.address}/", r"^/v2/.+/blobs/sha256:",
                          storage_auth=auth) as front:
        registry = Registry(f"{front.address}/demo/svc", "ci", Secret("s3cret-token"))
        assert registry.config("1.2.3")["config"]["Labels"] == {"v": "1.2.3"}
        assert registry.package_version("1.2.3", "demo-svc") == "1.2.3"
        # Verification of a release of 1.2.3 to that registry reads the same blobs.
        repo = make_service(tmp_path / "svc", extra=f"pypi = false\n{ONE_TARGET}")
        repo.tag("1.2.3")
        env = {**travis_env(tag="1.2.3"), "BREWBLOX_RELEASE_IMAGE": f"{front.address}/demo/svc",
               "DOCKER_USERNAME": "ci", "DOCKER_PASSWORD": "s3cret-token",
               "DOCKER_CONFIG": str(tmp_path / "docker-config")}
        summary = Summary()
        verify(prepare(repo.path, Options(), env), summary)
        assert re.search(rf"{re.escape(front.address)}/demo/svc:1\.2\.3 holds demo-svc 1\.2\.3 +ok",
                         summary.render())
        assert front.redirected >= 3, "the blob reads went to storage"
        assert len(front.storage_requests) == front.redirected
        assert front.leaked() == []
        # The check itself: a client that copies its headers onto a redirect is caught.
        blob = front.storage_requests[0][0]
        urllib.request.urlopen(urllib.request.Request(f"{front.url}{blob.lstrip('/')}",
                                                      headers=_basic(auth))).close()
        assert front.leaked() == [blob]


def test_tag_points_a_tag_at_the_same_manifest(bare_registry: RegistryServer) -> None:
    registry = Registry(f"{bare_registry.address}/demo/svc")
    digest = push_image(bare_registry.address, "demo/svc", "1.2.3", {"v": "1.2.3"})
    push_image(bare_registry.address, "demo/svc", "latest", {"v": "1.0.0"})
    assert registry.digest("latest") != digest
    assert registry.tag("1.2.3", "latest") == digest
    assert registry.digest("latest") == digest
    with pytest.raises(PublishError, match=r"9\.9\.9 is not in the registry"):
        registry.tag("9.9.9", "latest")


def _whiteout(name: str, version: str) -> bytes:
    """A gzipped layer that removes an installed distribution (an OCI whiteout)."""
    import gzip
    import io
    import tarfile

    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        member = tarfile.TarInfo("usr/local/lib/python3.11/site-packages/"
                                 f".wh.{name.replace('-', '_')}-{version}.dist-info")
        tar.addfile(member, io.BytesIO(b""))
    return gzip.compress(out.getvalue(), mtime=0)


def test_the_distributions_an_image_holds(bare_registry: RegistryServer, tmp_path: Path) -> None:
    # Layers in order: two installed, one of them removed again, another installed after.
    push_image(bare_registry.address, "demo/svc", "1.0.0", {}, layers=(
        _layer("aiohttp", "3.9.5"), _layer("old-dep", "1.0"), _whiteout("old-dep", "1.0"),
        _layer("demo-svc", "1.0.0")))
    registry = Registry(f"{bare_registry.address}/demo/svc")
    cache = tmp_path / "layers"
    assert registry.distributions("1.0.0", cache=cache) == {"aiohttp": "3.9.5",
                                                           "demo-svc": "1.0.0"}
    assert len(list(cache.glob("sha256-*.json"))) == 4, "each layer's reading is kept"
    assert registry.distributions("1.0.0", cache=cache) == registry.distributions("1.0.0")


def test_signing_names_what_this_run_pushed(bare_registry: RegistryServer) -> None:
    """Another run may push to a tag between this run's push and its signing (two branches
    whose names clean to one tag): what is signed is the digest this run's push gave, and a
    manifest list only while it holds this run's images."""
    address, registry = bare_registry.address, Registry(f"{bare_registry.address}/demo/svc")
    mine = push_image(address, "demo/svc", "feature-x", {"run": "this"})
    theirs = push_image(address, "demo/svc", "feature-x", {"run": "another"})
    assert registry.digest("feature-x") == theirs
    assert references(registry, Pushed({"feature-x": mine}), ["feature-x"]) == \
        [f"{registry.image}@{mine}"]
    index = json.dumps({"schemaVersion": 2,
                        "mediaType": "application/vnd.oci.image.index.v1+json",
                        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                       "digest": mine, "size": 1, "platform": {
                                           "os": "linux", "architecture": "arm",
                                           "variant": "v7"}}]}).encode()
    urllib.request.urlopen(urllib.request.Request(
        f"http://{address}/v2/demo/svc/manifests/1.2.3", data=index, method="PUT",
        headers={"Content-Type": "application/vnd.oci.image.index.v1+json"})).close()
    listed = "sha256:" + hashlib.sha256(index).hexdigest()
    assert references(registry, Pushed(lists={"1.2.3": {"linux/arm/v7": mine}}), ["1.2.3"]) == \
        [f"{registry.image}@{listed}", f"{registry.image}@{mine}"]
    with pytest.raises(PublishError, match=r"1\.2\.3 is not the list this run made"):
        references(registry, Pushed(lists={"1.2.3": {"linux/arm/v7": theirs}}), ["1.2.3"])
