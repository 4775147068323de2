"""The environment snapshot: read once, credentials out of the process environment, masked."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from brewblox_release import _run as run
from brewblox_release._environment import Environment, exposed
from brewblox_release._run import capture, redact


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run, "_captured", None)


def test_the_repr_names_variables_never_values() -> None:
    env = Environment({"TWINE_PASSWORD": "pypi-s3cret", "HOME": "/root", "MY_KEY": "k3y-v"},
                      ["MY_KEY"])
    assert "pypi-s3cret" not in repr(env)
    assert "k3y-v" not in repr(env)
    assert "TWINE_PASSWORD" in repr(env)
    assert env["HOME"] == "/root"


def test_a_service_may_make_any_variable_secret() -> None:
    env = Environment({"DOCKER_USERNAME": "my-user-abc", "TWINE_REPOSITORY_URL":
                       "https://idx.example/legacy/"},
                      ["DOCKER_USERNAME", "TWINE_REPOSITORY_URL"])
    assert set(env.masked_values()) >= {"my-user-abc", "https://idx.example/legacy/"}
    # A registry's user name is masked too (a deploy token's user name is often its half).
    assert "my-user-abc" in Environment({"DOCKER_USERNAME": "my-user-abc"}).masked_values()


@pytest.mark.parametrize(("values", "masked"), [
    ({"TWINE_PASSWORD": "pypi-abc"}, ["pypi-abc"]),
    ({"TWINE_USERNAME": "__token__"}, []),
    ({"TWINE_USERNAME": "alice"}, ["alice"]),
    ({"TWINE_REPOSITORY_URL": "https://u:p%40ss@h/"}, ["p%40ss", "p@ss"]),
    ({"PIP_EXTRA_INDEX_URL": "https://a/ https://u:pw-1@b/"}, ["pw-1"]),
    ({"ACTIONS_ID_TOKEN_REQUEST_TOKEN": "eyJ-token"}, ["eyJ-token"]),
    ({"HOME": "/root"}, []),
])
def test_masked_values(values: dict[str, str], masked: list[str]) -> None:
    assert {v for v in Environment(values).masked_values() if v} == set(masked)


@pytest.mark.parametrize(("values", "kept"), [
    ({"TF_BUILD": "True", "TWINE_PASSWORD": "$(TWINE_PASSWORD)"}, {"TF_BUILD"}),
    ({"TF_BUILD": "True", "DOCKER_PASSWORD": "$(docker.password)", "X": "a$(b)"},
     {"TF_BUILD", "X"}),
    ({"GITLAB_CI": "true", "TWINE_PASSWORD": "$(TWINE_PASSWORD)"},  # a literal, elsewhere
     {"GITLAB_CI", "TWINE_PASSWORD"}),
])
def test_an_unexpanded_azure_macro_is_no_value(values: dict[str, str], kept: set[str]) -> None:
    """Azure keeps ``$(NAME)`` as written where NAME is not defined (an unset secret)."""
    assert set(Environment(values)) == kept


def test_azure_s_unexpanded_macros_are_no_values_however_the_environment_is_read(
        fresh: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TF_BUILD", "True")
    monkeypatch.setenv("TWINE_PASSWORD", "$(TWINE_PASSWORD)")
    monkeypatch.setenv("PIP_INDEX_URL", "$(pipIndex)")
    assert "TWINE_PASSWORD" not in run.environ()  # the library alone: nothing captured yet
    capture(["SERVICE_TOKEN"])  # the first capture names a service's secret-vars
    assert "PIP_INDEX_URL" not in os.environ, "no subprocess gets it"
    assert "PIP_INDEX_URL" not in run.environ()


def test_capture_takes_the_credentials_out_of_the_process(
        fresh: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWINE_PASSWORD", "pypi-captured-1")
    monkeypatch.setenv("SERVICE_TOKEN", "svc-token-2")
    monkeypatch.setenv("PYTHON_ON_WHALES_DEBUG", "1")
    monkeypatch.setenv("BREWBLOX_RELEASE_INDEX_URL", "https://ci:index-pw-3@h/simple/")
    env = capture()
    assert env["TWINE_PASSWORD"] == "pypi-captured-1"
    assert "TWINE_PASSWORD" not in os.environ
    assert "PYTHON_ON_WHALES_DEBUG" not in os.environ
    assert os.environ["SERVICE_TOKEN"] == "svc-token-2"  # not a secret yet
    env = capture(["SERVICE_TOKEN"])
    assert "SERVICE_TOKEN" not in os.environ
    assert env["SERVICE_TOKEN"] == "svc-token-2"
    child = subprocess.run([sys.executable, "-c", "import os; print(sorted(os.environ))"],
                           capture_output=True, text=True, check=True).stdout
    assert "TWINE_PASSWORD" not in child
    assert "SERVICE_TOKEN" not in child
    assert "BREWBLOX_RELEASE_INDEX_URL" not in child  # the tool's own: read in the process
    assert redact("pypi-captured-1 and svc-token-2 and index-pw-3") == "**** and **** and ****"


def test_a_credential_under_another_name_is_kept_from_subprocesses_too(
        fresh: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """GitLab's job token, given as TWINE_PASSWORD, is also CI_JOB_TOKEN and
    CI_REGISTRY_PASSWORD: no subprocess gets it by those names either. A value a user name or
    an ordinary variable shares stays."""
    token = "glcbt-64_job-token-value"
    for name in ("CI_JOB_TOKEN", "CI_REGISTRY_PASSWORD", "TWINE_PASSWORD"):
        monkeypatch.setenv(name, token)
    monkeypatch.setenv("DOCKER_USERNAME", "brewblox-bot")
    monkeypatch.setenv("CI_PROJECT_NAMESPACE", "brewblox-bot")
    monkeypatch.setenv("SERVICE_FLAG", "true")
    monkeypatch.setenv("GITLAB_CI", "true")
    env = capture(["SERVICE_FLAG"])
    child = subprocess.run([sys.executable, "-c", "import os; print(dict(os.environ))"],
                           capture_output=True, text=True, check=True).stdout
    assert token not in child
    assert "'CI_PROJECT_NAMESPACE': 'brewblox-bot'" in child
    assert "'GITLAB_CI': 'true'" in child
    assert env["TWINE_PASSWORD"] == env["CI_JOB_TOKEN"] == token, "the snapshot keeps them"


def test_pip_s_own_index_stays_pip_s_when_it_is_the_one_released_to() -> None:
    url = "https://ci:index-pw-12345@pypi.example/simple/"
    env = Environment({"BREWBLOX_RELEASE_INDEX_URL": url, "PIP_INDEX_URL": url})
    assert env.copies() == ()


def test_exposed_puts_back_and_takes_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", raising=False)
    with exposed({"ACTIONS_ID_TOKEN_REQUEST_TOKEN": "t0k"}, ["ACTIONS_ID_TOKEN_REQUEST_TOKEN"]):
        assert os.environ["ACTIONS_ID_TOKEN_REQUEST_TOKEN"] == "t0k"
    assert "ACTIONS_ID_TOKEN_REQUEST_TOKEN" not in os.environ
