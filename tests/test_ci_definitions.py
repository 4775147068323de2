"""The CI definitions `init` ships (docs/adopting.md): each validates against its provider's
published
schema (check-jsonschema's vendored copies), and each says what docs/adopting.md asks of it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from brewblox_release._init import CI_TEMPLATES

TEMPLATES = Path(str(resources.files("brewblox_release").joinpath("templates", "ci")))

#: check-jsonschema's name of each provider's schema. The Azure schema's patterns use escapes
#: that the default (unicode ECMAScript) regex engine refuses; its non-unicode mode is the one
#: Azure's own schema was written for.
SCHEMAS = {
    "github": ("vendor.github-workflows", "default"),
    "gitlab": ("vendor.gitlab-ci", "default"),
    "travis": ("vendor.travis", "default"),
    "azure": ("vendor.azure-pipelines", "nonunicode"),
}


def _check_jsonschema() -> list[str]:
    exe = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "check_jsonschema"]


def _load(provider: str) -> Any:
    return YAML(typ="safe").load((TEMPLATES / CI_TEMPLATES[provider]).read_text())


def test_there_is_one_definition_per_provider() -> None:
    # and a split-build variant (each target on a runner of its own) where the provider has a
    # build matrix: tests/test_multiarch.py validates those
    shipped = sorted(p.name for p in TEMPLATES.iterdir() if "-split." not in p.name)
    assert shipped == sorted(CI_TEMPLATES.values())


@pytest.mark.parametrize("provider", sorted(SCHEMAS))
def test_definition_validates_against_the_providers_schema(provider: str) -> None:
    schema, regex = SCHEMAS[provider]
    path = TEMPLATES / CI_TEMPLATES[provider]
    result = subprocess.run([*_check_jsonschema(), "--builtin-schema", schema,
                             "--regex-variant", regex, str(path)],
                            capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok -- validation done" in result.stdout


@pytest.mark.parametrize("provider", sorted(SCHEMAS))
def test_schema_check_catches_a_broken_definition(provider: str, tmp_path: Path) -> None:
    # The check above could pass by validating against nothing: a definition with a key of the
    # wrong type must fail it.
    schema, regex = SCHEMAS[provider]
    data = _load(provider)
    if provider == "github":
        broken = {**data, "jobs": {"release": {"runs-on": 5, "steps": "none"}}}
    elif provider == "gitlab":
        broken = {**data, "release": {**data["release"], "script": {"x": 1}}}
    elif provider == "travis":
        broken = {**data, "git": {"depth": "all of it"}}
    else:
        broken = {**data, "steps": [{"checkout": ["self"]}]}
    path = tmp_path / CI_TEMPLATES[provider]
    with path.open("w") as f:
        YAML().dump(broken, f)
    result = subprocess.run([*_check_jsonschema(), "--builtin-schema", schema,
                             "--regex-variant", regex, str(path)],
                            capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr


def test_github() -> None:
    data = _load("github")
    triggers = data[True] if True in data else data["on"]  # YAML 1.1 reads `on` as true
    assert triggers["push"] == {"branches": ["**"], "tags": ["**"]}
    assert "pull_request" in triggers
    assert data["concurrency"] == {"group": "${{ github.workflow }}-${{ github.ref }}",
                                   "cancel-in-progress": False}
    assert data["permissions"]["id-token"] == "write"
    steps = data["jobs"]["release"]["steps"]
    assert steps[0] == {"uses": "actions/checkout@v4", "with": {"fetch-depth": 0}}
    release = steps[-1]
    assert release["run"] == "pip install brewblox-release && nox -s release"
    assert release["env"]["TWINE_PASSWORD"] == "${{ secrets.TWINE_PASSWORD }}"
    assert release["env"]["DOCKER_USERNAME"] == "${{ secrets.DOCKER_USERNAME }}"
    assert release["env"]["DOCKER_PASSWORD"] == "${{ secrets.DOCKER_PASSWORD }}"


def test_gitlab() -> None:
    data = _load("gitlab")
    assert data["variables"]["GIT_DEPTH"] == "0"
    assert [r["if"] for r in data["workflow"]["rules"]] == [
        '$CI_PIPELINE_SOURCE == "merge_request_event"', "$CI_COMMIT_TAG", "$CI_COMMIT_BRANCH"]
    job = data["release"]
    assert job["resource_group"] == "release-$CI_COMMIT_REF_SLUG"
    assert job["script"] == ["pip install brewblox-release && nox -s release"]


def test_travis() -> None:
    data = _load("travis")
    assert data["git"] == {"depth": False}
    assert data["script"] == ["nox -s release"]
    assert data["install"] == ["pip install brewblox-release"]
    text = (TEMPLATES / "travis.yml").read_text()
    assert '"Limit concurrent jobs" to 1' in text  # what Travis offers instead of a lock


def test_azure() -> None:
    data = _load("azure")
    assert data["trigger"]["batch"] == "true"
    assert data["trigger"]["tags"] == {"include": ["*"]}
    assert data["pr"] == {"branches": {"include": ["*"]}}
    checkout = data["steps"][0]
    assert checkout["fetchDepth"] == "0"
    assert checkout["fetchTags"] == "true"
    release = data["steps"][-1]
    assert release["script"] == "pip install brewblox-release && nox -s release"
    assert release["env"]["TWINE_PASSWORD"] == "$(TWINE_PASSWORD)"
