"""Signed, attested releases (docs/signing.md), on the real engine, registry and pypiserver on
loopback, with a cosign key pair made here: every published digest verifies with
``cosign verify``, its SBOM (every Python distribution in the image, aiohttp's tree included)
and its provenance (the commit) with ``cosign verify-attestation``; with ``sign`` off nothing
verifies; preflight refuses what cannot sign, before anything is built or pushed; the key's
text and password show nowhere.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from brewblox_release._servers import IndexServer, RegistryServer
from tests import wheels
from tests.conftest import require_or_skip
from tests.service import (
    RIG_TARGETS,
    GitRepo,
    destinations,
    github_env,
    index_files,
    leaked_secrets,
    make_service,
    nox,
    registry_digest,
    registry_list,
    registry_tags,
)
from tests.test_multiarch import _stage_on_runners

pytestmark = [pytest.mark.engine, pytest.mark.e2e]
PASSWORD = "cosign-SENTINEL-pw-Tn4e"
REPO = "brewblox/signed-svc"


@dataclass(frozen=True)
class Key:
    private: str  # the key's text, as a CI secret holds it
    public: Path

    @property
    def env(self) -> dict[str, str]:
        return {"COSIGN_PRIVATE_KEY": self.private, "COSIGN_PASSWORD": PASSWORD}

    @property
    def secrets(self) -> tuple[str, ...]:
        """The values no output may show: the password and every line of the key's body."""
        body = [line for line in self.private.splitlines() if line and "-----" not in line]
        return (PASSWORD, *body)


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> Key:
    require_or_skip(None if shutil.which("cosign") else
                    "no cosign program: run `bash .ci/provision.sh`")
    where = tmp_path_factory.mktemp("key")
    subprocess.run(["cosign", "generate-key-pair"], cwd=where, check=True, capture_output=True,
                   env={"PATH": "/usr/local/bin:/usr/bin:/bin", "COSIGN_PASSWORD": PASSWORD})
    return Key((where / "cosign.key").read_text(), where / "cosign.pub")


def cosign(key: Key, *args: str) -> subprocess.CompletedProcess[str]:
    """``cosign ARGS`` with the public key, offline (a key is its own trust root)."""
    return subprocess.run(["cosign", *args, "--key", str(key.public), "--insecure-ignore-tlog",
                           "--allow-http-registry"], capture_output=True, text=True,
                          check=False, timeout=120)


def predicate(key: Key, ref: str, kind: str) -> dict[str, Any]:
    """The predicate of the attestation of type ``kind`` on ``ref``, once it verifies."""
    result = cosign(key, "verify-attestation", "--type", kind, ref)
    assert result.returncode == 0, result.stderr
    envelope = json.loads(result.stdout.splitlines()[0])
    statement = json.loads(base64.b64decode(envelope["payload"]))
    return dict(statement["predicate"])


@pytest.fixture(scope="module")
def aio_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[wheels.LoggedIndex]:
    files = wheels.fetch(["aiohttp"])
    with wheels.LoggedIndex(tmp_path_factory.mktemp("aio-index")) as index:
        assert isinstance(index, wheels.LoggedIndex)
        for path in files:
            (index.packages / path.name).write_bytes(path.read_bytes())
        yield index


def _service(path: Path, index: IndexServer, *, sign: bool = True, extra: str = "",
             multi_arch: bool = False) -> GitRepo:
    marker = "build-args = { "
    targets = RIG_TARGETS.replace(marker, f'{marker}PIP_INDEX_URL = "{index.simple_url}", ', 1)
    table = 'network = "host"\n' + ("sign = true\n" if sign else "") + \
        ("multi-arch = true\n" if multi_arch else "") + extra
    return make_service(path, "signed-svc", image=REPO, dependencies=["aiohttp"],
                        extra=table + targets)


def _versions(index: IndexServer) -> dict[str, str]:
    """name -> version of the wheels the index holds."""
    found = {}
    for name in index_files(index.packages):
        dist, version = name.split("-")[:2]
        found[dist.lower().replace("_", "-")] = version
    return found


def _check_signed(key: Key, registry: RegistryServer, tag: str, *, version: str, commit: str,
                  deps: dict[str, str]) -> None:
    ref = f"{registry.address}/{REPO}@{registry_digest(registry.address, REPO, tag)}"
    assert cosign(key, "verify", ref).returncode == 0, f"{tag} is not signed"
    bom = predicate(key, ref, "cyclonedx")
    components = {c["name"].lower(): c["version"] for c in bom["components"]}
    assert components["signed-svc"] == version
    for name in ("aiohttp", "multidict", "yarl", "frozenlist"):
        assert components[name] == deps[name], name
    assert bom["metadata"]["component"]["version"] == version
    provenance = predicate(key, ref, "slsaprovenance1")
    assert provenance["buildDefinition"]["externalParameters"]["commit"] == commit
    names = [d.get("name") for d in provenance["buildDefinition"]["resolvedDependencies"]]
    assert f"signed_svc-{version}.tar.gz" in names
    assert f"signed_svc-{version}-py3-none-any.whl" in names


def test_a_signed_branch_push_and_tag_push(key: Key, registry: RegistryServer,
                                           index: IndexServer, aio_index: wheels.LoggedIndex,
                                           tmp_path: Path) -> None:
    repo = _service(tmp_path / "signed-svc", aio_index)
    repo.tag("1.0.0")
    repo.commit("a fix")
    repo.checkout("-b", "feature/x")
    dest = destinations(registry.address, index.url, image=REPO)
    deps = _versions(aio_index)
    out = nox(repo, "-s", "release", env={**github_env(tmp_path, "refs/heads/feature/x",
                                                       repository=REPO), **dest, **key.env})
    assert out.returncode == 0, out.stdout[-4000:]
    assert not leaked_secrets(out.stdout, key.secrets)
    for tag in ("feature-x", "rpi-feature-x"):
        _check_signed(key, registry, tag, version="1.0.1.dev1", commit=repo.head, deps=deps)
    assert "verify signature" in out.stdout

    # A re-run of the completed release signs nothing again.
    again = nox(repo, "-s", "release", env={**github_env(tmp_path, "refs/heads/feature/x",
                                                         repository=REPO), **dest, **key.env})
    assert again.returncode == 0, again.stdout[-4000:]
    assert "already signed" in again.stdout

    repo.checkout("1.0.0")
    out = nox(repo, "-s", "release", env={**github_env(tmp_path, "refs/tags/1.0.0",
                                                       repository=REPO), **dest, **key.env})
    assert out.returncode == 0, out.stdout[-4000:]
    assert not leaked_secrets(out.stdout, key.secrets)
    for tag in ("1.0.0", "rpi-1.0.0", "latest", "rpi-latest"):
        _check_signed(key, registry, tag, version="1.0.0", commit=repo.head, deps=deps)


def test_a_rerun_completes_a_signing_that_failed_halfway(
        key: Key, registry: RegistryServer, index: IndexServer, aio_index: wheels.LoggedIndex,
        tmp_path: Path) -> None:
    """A signing that failed after the signature (the registry refused the SBOM) is completed
    by a re-run. A re-run found the signature, said "already signed" and attached nothing, so
    the release failed its verification at every re-run."""
    repo = _service(tmp_path / "signed-svc", aio_index)
    repo.tag("1.0.0")
    repo.commit("a fix")
    repo.checkout("-b", "feature/y")
    refused, shim = tmp_path / "refuse-attestations", tmp_path / "shim"
    shim.mkdir()
    (shim / "cosign").write_text(
        f'#!/bin/sh\nif [ "$1" = attest ] && [ -e {refused} ]; then\n'
        '  echo "Error: MANIFEST_INVALID: the registry says why" >&2\n'
        '  echo "Error: PUT ...: unexpected status code 503" >&2; exit 1\nfi\n'
        f'exec {shutil.which("cosign")} "$@"\n')
    (shim / "cosign").chmod(0o755)
    refused.touch()
    env = {**github_env(tmp_path, "refs/heads/feature/y", repository=REPO),
           **destinations(registry.address, index.url, image=REPO), **key.env,
           "PATH": f"{shim}:{os.environ['PATH']}"}
    first = nox(repo, "-s", "release", env=env)
    assert first.returncode != 0
    assert "attaching the SBOM to" in first.stdout, first.stdout[-3000:]
    assert "re-run the release to complete it" in first.stdout
    # cosign's own lines are in the log, and the failing step's tail shows them (the publish
    # step around it shows no tail of its own: twine's lines are not why it failed).
    assert "|   Error: MANIFEST_INVALID: the registry says why" in first.stdout
    assert "its last lines" not in first.stdout.split("<== publish: failed")[1]
    refused.unlink()
    again = nox(repo, "-s", "release", env=env)
    assert again.returncode == 0, again.stdout[-4000:]
    assert "completed: SBOM, provenance" in again.stdout
    for tag in ("feature-y", "rpi-feature-y"):
        _check_signed(key, registry, tag, version="1.0.1.dev1", commit=repo.head,
                      deps=_versions(aio_index))


def test_with_sign_off_nothing_verifies(key: Key, registry: RegistryServer,
                                        index: IndexServer, aio_index: wheels.LoggedIndex,
                                        tmp_path: Path) -> None:
    repo = _service(tmp_path / "signed-svc", aio_index, sign=False)
    repo.tag("2.0.0")
    dest = destinations(registry.address, index.url, image=REPO)
    out = nox(repo, "-s", "release", env={**github_env(tmp_path, "refs/tags/2.0.0",
                                                       repository=REPO), **dest, **key.env})
    assert out.returncode == 0, out.stdout[-4000:]
    ref = f"{registry.address}/{REPO}@{registry_digest(registry.address, REPO, '2.0.0')}"
    assert cosign(key, "verify", ref).returncode != 0
    assert cosign(key, "verify-attestation", "--type", "cyclonedx", ref).returncode != 0


@pytest.mark.parametrize(("env", "says"), [
    ({}, "sign = true but COSIGN_PRIVATE_KEY is not set"),
    ({"COSIGN_PASSWORD": "not-the-password"},
     "COSIGN_PASSWORD does not open COSIGN_PRIVATE_KEY"),
    # The right password, and a key that is no key: not the password's fault.
    ({"COSIGN_PRIVATE_KEY": "/nonexistent/cosign.key", "COSIGN_PASSWORD": PASSWORD},
     "cosign cannot read COSIGN_PRIVATE_KEY as a key (error during command execution: invalid "
     "pem block): give the text of cosign.key, a path to it, or a KMS reference"),
    ({"COSIGN_PRIVATE_KEY": "bm90IGEga2V5", "COSIGN_PASSWORD": PASSWORD},
     "cosign cannot read COSIGN_PRIVATE_KEY as a key (error during command execution: invalid "
     "pem block)"),
])
def test_preflight_refuses_what_cannot_sign(key: Key, registry: RegistryServer,
                                            index: IndexServer, tmp_path: Path, *,
                                            env: dict[str, str], says: str) -> None:
    repo = make_service(tmp_path / "signed-svc", image=REPO, extra="sign = true\n" + RIG_TARGETS)
    repo.tag("3.0.0")
    key_env = {"COSIGN_PRIVATE_KEY": key.private, **env} if env else {}
    out = nox(repo, "-s", "release", env={**github_env(tmp_path, "refs/tags/3.0.0",
                                                       repository=REPO),
                                          **destinations(registry.address, index.url,
                                                         image=REPO), **key_env})
    assert out.returncode != 0
    assert says in out.stdout
    assert "Traceback" not in out.stdout
    assert "==> image" not in out.stdout, "nothing was built"
    assert registry_tags(registry.address, REPO) == []
    assert index_files(index.packages) == []
    assert not leaked_secrets(out.stdout, key.secrets)


def test_a_split_builds_merge_signs_its_list(key: Key, registry: RegistryServer,
                                             index: IndexServer, aio_index: wheels.LoggedIndex,
                                             tmp_path: Path) -> None:
    origin = _service(tmp_path / "origin", aio_index, multi_arch=True)
    origin.tag("4.0.0")
    records = tmp_path / "records"
    env = {**github_env(tmp_path, "refs/tags/4.0.0", repository=REPO),
           **destinations(registry.address, index.url, image=REPO), **key.env}
    # The stages run without a signing identity (the merge signs): they stopped in preflight.
    _stage_on_runners(origin, "4.0.0", {k: v for k, v in env.items()
                                         if not k.startswith("COSIGN_")}, records)
    merger = GitRepo(tmp_path / "runner-merge")
    subprocess.run(["git", "clone", "-q", str(origin.path), str(merger.path)], check=True)
    merger.checkout("4.0.0")
    out = nox(merger, "-s", "release", "--", "--merge", str(records), env=env)
    assert out.returncode == 0, out.stdout[-4000:]
    digest, platforms = registry_list(registry.address, REPO, "4.0.0")
    assert platforms == ["linux/amd64", "linux/arm/v7"]
    ref = f"{registry.address}/{REPO}@{digest}"
    assert cosign(key, "verify", ref).returncode == 0, "the list is signed"
    bom = predicate(key, ref, "cyclonedx")
    assert {c["name"].lower() for c in bom["components"]} >= {"signed-svc", "aiohttp"}
    commit = predicate(key, ref, "slsaprovenance1")["buildDefinition"]["externalParameters"]
    assert commit["commit"] == merger.head
    assert re.search(r"signed .*@sha256:", out.stdout)


def test_a_dry_run_shows_the_signing_steps(key: Key, registry: RegistryServer,
                                           index: IndexServer, tmp_path: Path) -> None:
    repo = make_service(tmp_path / "signed-svc", image=REPO, extra="sign = true\n" + RIG_TARGETS)
    repo.tag("5.0.0")
    env = {**github_env(tmp_path, "refs/tags/5.0.0", repository=REPO),
           **destinations(registry.address, index.url, image=REPO)}
    out = nox(repo, "-s", "release", "--", "--dry-run", env={**env, **key.env})
    assert out.returncode == 0, out.stdout
    assert "sign: every pushed image digest is signed with cosign (the key in " \
        "COSIGN_PRIVATE_KEY)" in out.stdout
    assert "the real run would stop" not in out.stdout
    refused = nox(repo, "-s", "release", "--", "--dry-run", env=env)
    assert "the real run would stop: sign = true but COSIGN_PRIVATE_KEY is not set" in \
        refused.stdout


def test_preflight_refuses_when_there_is_no_cosign(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from brewblox_release._prepared import Options
    from brewblox_release._release import prepare

    repo = make_service(tmp_path / "signed-svc", image=REPO, extra="sign = true\n" + RIG_TARGETS)
    repo.tag("6.0.0")
    # A PATH with git alone (the run reads the checkout with it), wherever cosign is installed.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "git").symlink_to(shutil.which("git") or "/usr/bin/git")
    monkeypatch.setenv("PATH", str(bin_dir))
    env = {"TRAVIS": "true", "TRAVIS_TAG": "6.0.0", "TRAVIS_BRANCH": "6.0.0",
           "TRAVIS_EVENT_TYPE": "push", "TRAVIS_PULL_REQUEST": "false",
           "COSIGN_PRIVATE_KEY": "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nx\n",
           "BREWBLOX_RELEASE_IMAGE": f"127.0.0.1:9/{REPO}", "TWINE_REPOSITORY_URL":
           "http://127.0.0.1:9/", "BREWBLOX_RELEASE_INDEX_URL": "http://127.0.0.1:9/simple/"}
    run = prepare(repo.path, Options(dry_run=True), env)
    assert any("sign = true but there is no cosign program on PATH" in reason
               for reason in run.plan.reasons), run.plan.reasons


def test_a_key_s_text_never_goes_on_a_command_line(tmp_path: Path) -> None:
    """Only a KMS reference or a key file is passed to ``--key`` as it is (a command line is
    readable by every local user); any other value goes through the variable."""
    from brewblox_release._identity import Identity
    from brewblox_release._secret import Secret

    (tmp_path / "cosign.key").write_text("the key\n")
    for value, ref in (("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nx\n", "env://"),
                       ("LS0tLS1CRUdJTiBFTkNSWVBURUQ=", "env://"), (" bm90", "env://"),
                       (str(tmp_path / "cosign.key"), str(tmp_path / "cosign.key")),
                       ("awskms:///alias/release", "awskms:///alias/release"),
                       ("pkcs11:token=release", "pkcs11:token=release")):
        assert Identity(Secret(value)).key_ref.startswith(ref), value


def test_keyless_trust_names_the_repository_and_no_other() -> None:
    """The identity cosign accepts is a workflow of this repository: a dot in its name is no
    wildcard (``org/my.svc`` does not trust ``org/myXsvc``)."""
    from brewblox_release._sign import keyless_trust

    pattern = keyless_trust("org/my.svc")[-1]
    workflow = "/.github/workflows/release.yml@refs/tags/1.2.3"
    assert re.match(pattern, f"https://github.com/org/my.svc{workflow}")
    for other in ("org/myXsvc", "org/my.svc-fork", "other/my.svc"):
        assert not re.match(pattern, f"https://github.com/{other}{workflow}"), other
    assert not re.match(keyless_trust(None)[-1], f"https://github.com/org/my.svc{workflow}")


def test_a_kms_key_s_provider_credentials_reach_cosign_alone(tmp_path: Path) -> None:
    """The service's ``secret-vars`` (a KMS provider's credentials) are cosign's where the key
    is a KMS reference, and nobody's where it is not: the run's signer, as prepared."""
    from brewblox_release._prepared import Options
    from brewblox_release._release import prepare

    repo = make_service(tmp_path / "svc", extra="sign = true\n")
    text = (repo.path / "pyproject.toml").read_text()  # its secret-vars, a KMS provider's too
    repo.write("pyproject.toml", text.replace('secret-vars = ["SERVICE_SIGNING_KEY"]',
                                              'secret-vars = ["AWS_SECRET_ACCESS_KEY"]'))
    repo.commit("signed with a KMS key")
    values = {"AWS_SECRET_ACCESS_KEY": "aws-secret-value-1", "OTHER": "x"}
    for key, given in (("awskms:///alias/release", True),
                       ("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nx\n", False)):
        run = prepare(repo.path, Options(), {**values, "COSIGN_PRIVATE_KEY": key})
        assert run.signer is not None
        cosign = run.signer.env()
        assert ("AWS_SECRET_ACCESS_KEY" in cosign) is given, key
        assert "OTHER" not in cosign
