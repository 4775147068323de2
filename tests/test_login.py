"""Whether an existing ``docker login`` covers the image's registry (preflight, SPEC §7)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from brewblox_release.dockerconfig import has_login


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
