"""How a push reads docker's answers: retry what may pass, stop at once on what cannot."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from python_on_whales import DockerException

from brewblox_release._docker import retrying_docker as retrying
from brewblox_release._errors import CredentialsError, Interrupted, PublishError
from brewblox_release._run import stop_starting


def _failing(*answers: str) -> tuple[list[int], Callable[[], str]]:
    """An action that fails with docker's ``answers`` in turn, then succeeds."""
    calls: list[int] = []

    def action() -> str:
        calls.append(1)
        if len(calls) <= len(answers):
            raise DockerException(["docker", "push", "x"], 1, b"",
                                  answers[len(calls) - 1].encode())
        return "pushed"

    return calls, action


@pytest.mark.parametrize("answer", [
    "unauthorized: authentication required",
    "denied: requested access to the resource is denied",
    "no basic auth credentials",
])
def test_a_refused_login_stops_at_once_and_names_the_credentials(answer: str) -> None:
    calls, action = _failing(answer)
    with pytest.raises(CredentialsError, match="DOCKER_USERNAME and DOCKER_PASSWORD"):
        retrying("pushing x", action, backoff=0)
    assert len(calls) == 1


@pytest.mark.parametrize("answer", [
    "manifest invalid: manifest invalid",
    "name unknown: repository name not known to registry",
])
def test_a_refused_image_stops_at_once_without_blaming_the_credentials(answer: str) -> None:
    # Found in review: these were reported as refused credentials.
    calls, action = _failing(answer)
    with pytest.raises(PublishError, match="refused the image itself") as info:
        retrying("pushing x", action, backoff=0)
    assert "DOCKER_PASSWORD" not in str(info.value)
    assert len(calls) == 1


def test_a_transient_fault_is_retried() -> None:
    calls, action = _failing("connection reset by peer", "received unexpected HTTP status: 503")
    assert retrying("pushing x", action, backoff=0) == "pushed"
    assert len(calls) == 3


def test_a_lasting_fault_gives_up_and_says_a_rerun_completes_it() -> None:
    calls, action = _failing(*["received unexpected HTTP status: 503"] * 4)
    with pytest.raises(PublishError, match="gave up after 4 attempts; re-run the release"):
        retrying("pushing x", action, backoff=0)
    assert len(calls) == 4


def test_a_retry_names_docker_s_last_line(capsys: pytest.CaptureFixture[str]) -> None:
    _, action = _failing("pushing layer\nreceived unexpected HTTP status: 503")
    from brewblox_release import _run as run

    with run.console(None, verbose=False, terminal=None):
        retrying("pushing x", action, backoff=0)
    assert "pushing x: attempt 1 of 4 failed (received unexpected HTTP status: 503); " \
        "retrying in 0 s" in capsys.readouterr().err


def test_a_stopping_run_waits_for_no_retry() -> None:
    """A stop ends the pushes' retries at once, as the index's: `Interrupted`, which the
    front-ends report as a stop, not as a failed push."""
    calls, action = _failing(*["received unexpected HTTP status: 503"] * 4)
    stop_starting()
    try:
        with pytest.raises(Interrupted, match="stopped: nothing more is published"):
            retrying("pushing x", action, backoff=60)
    finally:
        stop_starting(False)
    assert len(calls) == 1
