"""docker's credentials: whether an existing ``docker login`` covers the image's registry
(preflight, docs/how-it-works.md), and the run's own login into a temporary docker config."""

from __future__ import annotations

import base64
import io
import json
import stat
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from brewblox_release import _docker as docker, _dockerconfig as dockerconfig
from brewblox_release._dockerconfig import has_login, stored_credentials
from brewblox_release._errors import CredentialsError
from brewblox_release._servers import RegistryServer
from tests.service import htpasswd, registry_tags


def _config(tmp_path: Path, data: dict[str, object]) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    return path


def _helper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, listing: str,
            code: int = 0) -> None:
    """A credential helper on PATH that answers ``list`` as docker's helpers do."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    helper = bin_dir / f"docker-credential-{name}"
    helper.write_text(f"#!/bin/sh\n[ \"$1\" = list ] || exit 2\ncat <<'EOF'\n{listing}\nEOF\n"
                      f"exit {code}\n")
    helper.chmod(helper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}:{Path('/usr/bin')}:{Path('/bin')}")


@pytest.mark.parametrize(("image", "auths", "expected"), [
    ("ghcr.io/org/svc", {"ghcr.io": {}}, True),
    ("ghcr.io/org/svc", {"https://ghcr.io": {}}, True),
    ("brewblox/svc", {"https://index.docker.io/v1/": {}}, True),
    ("ghcr.io/org/svc", {"https://index.docker.io/v1/": {}}, False),
    ("ghcr.io/org/svc", {}, False),
])
def test_auths(tmp_path: Path, image: str, auths: dict[str, object], expected: bool) -> None:
    assert has_login(image, _config(tmp_path, {"auths": auths})) is expected


@pytest.mark.parametrize("config", [{"auths": None}, {"auths": {"ghcr.io": None}},
                                    {"auths": {"ghcr.io": {"auth": 7}}}, {"credHelpers": None},
                                    {"credHelpers": {"ghcr.io": None}}, {"credsStore": None}])
def test_a_login_setting_of_another_shape_is_no_setting(tmp_path: Path,
                                                        config: dict[str, object]) -> None:
    """As docker reads its config.json: ``"auths": null`` is no login, not a traceback."""
    path = _config(tmp_path, config)
    named = isinstance(config.get("auths"), dict)  # an entry for the registry, if empty
    assert has_login("ghcr.io/org/svc", path) is named
    assert stored_credentials("ghcr.io/org/svc", path) is None


def test_a_credential_helper_for_the_registry(tmp_path: Path) -> None:
    config = _config(tmp_path, {"credHelpers": {"123.dkr.ecr.eu-west-1.amazonaws.com": "ecr"}})
    assert has_login("123.dkr.ecr.eu-west-1.amazonaws.com/svc", config)
    assert not has_login("ghcr.io/org/svc", config)


def test_the_credential_store_is_asked_which_registries_it_holds(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Docker Desktop writes credsStore even with no login at all: it is not a login for every
    # registry.
    _helper(tmp_path, monkeypatch, "teststore",
            json.dumps({"https://index.docker.io/v1/": "me", "ghcr.io": "me"}))
    config = _config(tmp_path, {"auths": {}, "credsStore": "teststore"})
    assert has_login("brewblox/svc", config)
    assert has_login("ghcr.io/org/svc", config)
    assert not has_login("registry.example.com/org/svc", config)


def test_a_store_that_cannot_be_asked_is_taken_at_its_word(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _helper(tmp_path, monkeypatch, "broken", "not json", code=1)
    config = _config(tmp_path, {"credsStore": "broken"})
    assert has_login("registry.example.com/org/svc", config)
    config = _config(tmp_path, {"credsStore": "absent"})
    assert has_login("registry.example.com/org/svc", config)


def test_no_config_is_no_login(tmp_path: Path) -> None:
    assert not has_login("ghcr.io/org/svc", tmp_path / "missing.json")


# --- DOCKER_USERNAME/DOCKER_PASSWORD: a login of the run's own, in a temporary config --------

@pytest.fixture
def locked_registry(tmp_path: Path, engine: None) -> Iterator[RegistryServer]:
    """A registry that wants Basic auth for everything (as ECR, Nexus or an htpasswd registry)."""
    users = htpasswd(tmp_path / "htpasswd", "ci", "s3cret-token")
    with RegistryServer(tmp_path / "locked", htpasswd=users) as server:
        assert isinstance(server, RegistryServer)
        yield server


def _tiny_image(ref: str) -> None:
    """An image of one small file, imported into the engine: quick to push."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        member = tarfile.TarInfo("hello.txt")
        member.size = 6
        tar.addfile(member, io.BytesIO(b"hello\n"))
    subprocess.run(["docker", "import", "-", ref], input=out.getvalue(), check=True,
                   capture_output=True)


def test_a_login_of_the_runs_own_is_removed_and_the_users_config_untouched(
        locked_registry: RegistryServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    user_dir = tmp_path / "user-docker"
    (user_dir / "contexts").mkdir(parents=True)
    (user_dir / "config.json").write_text(json.dumps(
        {"auths": {"ghcr.io": {"auth": "bWU6eA=="}}, "detachKeys": "ctrl-z,z"}))
    before = (user_dir / "config.json").read_bytes()
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    image = f"{locked_registry.address}/demo/svc"
    _tiny_image(f"{image}:login")
    env = {"DOCKER_USERNAME": "ci", "DOCKER_PASSWORD": "s3cret-token",
           "DOCKER_CONFIG": str(user_dir)}

    with dockerconfig.login(image, env) as config:
        assert config.path is not None
        assert config.path.parent == temp
        data = json.loads((config.path / "config.json").read_text())
        assert set(data["auths"]) == {locked_registry.address}, "the user's logins are not in it"
        assert data["detachKeys"] == "ctrl-z,z", "the user's other settings are"
        assert (config.path / "contexts").is_symlink()
        docker.push([f"{image}:login"], config)
    assert list(temp.iterdir()) == []
    assert (user_dir / "config.json").read_bytes() == before
    assert registry_tags(locked_registry.address, "demo/svc", auth=("ci", "s3cret-token")) == [
        "login"]
    # The push had the run's login, and nothing else: the user's config has none for it.
    with pytest.raises(CredentialsError, match="refused the credentials"):
        docker.push([f"{image}:login"], dockerconfig.DockerConfig(user_dir))

    with pytest.raises(RuntimeError, match="a failed push"), dockerconfig.login(image, env):
        raise RuntimeError("a failed push")
    assert list(temp.iterdir()) == [], "removed on failure too"
    with pytest.raises(CredentialsError, match=r"docker login to \S+ failed"), \
            dockerconfig.login(image, {**env, "DOCKER_PASSWORD": "wrong"}):
        pass
    assert list(temp.iterdir()) == []
    assert (user_dir / "config.json").read_bytes() == before


def test_without_the_variables_an_existing_login_is_used(
        locked_registry: RegistryServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capfd: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PYTHON_ON_WHALES_DEBUG", "1")  # it prints the environment of each call
    user_dir = tmp_path / "user-docker"
    user_dir.mkdir()
    auth = base64.b64encode(b"ci:s3cret-token").decode()
    (user_dir / "config.json").write_text(
        json.dumps({"auths": {locked_registry.address: {"auth": auth}}}))
    image = f"{locked_registry.address}/demo/svc"
    _tiny_image(f"{image}:existing")
    with dockerconfig.login(image, {"DOCKER_CONFIG": str(user_dir)}) as config:
        assert config.path == user_dir
        docker.push([f"{image}:existing"], config)
    assert registry_tags(locked_registry.address, "demo/svc",
                         auth=("ci", "s3cret-token")) == ["existing"]
    printed = capfd.readouterr()
    assert "Env:" not in printed.out + printed.err
    stored = dockerconfig.stored_credentials(image, env={"DOCKER_CONFIG": str(user_dir)})
    assert stored is not None
    assert repr(stored) == "('ci', Secret('****'))"
