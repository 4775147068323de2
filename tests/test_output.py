"""What a person sees (docs/sessions.md, output): the tool's own lines; the output of the
programs it runs in a log file, whose last lines (masked) a failing step shows with its path;
all of it as it comes with ``--verbose``; the same through nox and the command line."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.service import SENTINELS, GitRepo, clean_env, leaked_secrets, make_service, nox

pytestmark = pytest.mark.process

#: A setup.py that talks (a line per step, as setuptools does), then fails.
FAILING = """\
import sys
for n in range(40):
    print(f"backend line {n}", flush=True)
print("the key is", "SENTINEL-" + "key-line-Zr8q", flush=True)  # a secret-vars value, as text
sys.exit("BOOM-the-backend-failed")
"""


@pytest.fixture
def failing(tmp_path: Path) -> GitRepo:
    repo = make_service(tmp_path / "demo-svc")
    repo.write("pyproject.toml", (repo.path / "pyproject.toml").read_text().replace(
        'build-backend = "setuptools.build_meta"',
        'build-backend = "setuptools.build_meta:__legacy__"'))
    repo.write("setup.py", FAILING)
    repo.commit("a backend that fails")
    return repo


def _cli(repo: GitRepo, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "brewblox_release", *args], cwd=repo.path,
                          env={**clean_env(), **env}, capture_output=True, text=True,
                          timeout=300, check=False)


@pytest.mark.parametrize("front", ["nox", "cli"])
def test_a_failing_step_shows_its_last_lines_and_the_log(failing: GitRepo, tmp_path: Path,
                                                         front: str) -> None:
    cache = tmp_path / "cache"
    env = {"BREWBLOX_RELEASE_CACHE": str(cache)}
    if front == "nox":
        result = nox(failing, "-s", "dist", env=env)
        output = result.stdout
    else:
        done = _cli(failing, "dist", env={**SENTINELS, **env})
        result, output = done, done.stdout + done.stderr
    assert result.returncode != 0
    # The backend's first lines are in the log only; its last ones are shown under the step.
    assert "backend line 0\n" not in output
    assert "    | " in output
    assert "backend line 39" in output
    assert "BOOM-the-backend-failed" in output
    path = Path(re.search(r"the whole log: (\S+\.log)", output).group(1))  # type: ignore[union-attr]
    assert path.parent == cache / "logs"
    log = path.read_text()
    assert "backend line 0\n" in log
    assert "BOOM-the-backend-failed" in log
    assert "the key is ****" in log  # masked in the log as everywhere
    assert not leaked_secrets(output + log)
    assert "Traceback" not in output
    assert "building the package failed" in output.rstrip().splitlines()[-1]


def test_verbose_shows_everything_as_it_comes(failing: GitRepo, tmp_path: Path) -> None:
    env = {"BREWBLOX_RELEASE_CACHE": str(tmp_path / "cache")}
    result = nox(failing, "-s", "dist", "--", "--verbose", env=env)
    assert result.returncode != 0
    assert "backend line 0\n" in result.stdout
    assert "backend line 39\n" in result.stdout
    assert "its last lines:" not in result.stdout  # shown already


def test_logs_are_kept_to_the_latest(tmp_path: Path) -> None:
    import os

    from brewblox_release import _run as run

    logs = tmp_path / "logs"
    logs.mkdir()
    hour_ago = time.time() - 3600
    for n in range(run.KEPT_LOGS + 4):
        (logs / f"{n:04d}.log").write_text("an old run\n")
        os.utime(logs / f"{n:04d}.log", (hour_ago, hour_ago))
    (logs / "0000-running.log").write_text("another job's, still running\n")
    with run.console(logs / "0100.log"):
        run.detail("this run")
    kept = sorted(p.name for p in logs.iterdir())
    assert "0000-running.log" in kept  # young: another job's, in a shared cache
    assert [name for name in kept if name != "0000-running.log"] == \
        [f"{n:04d}.log" for n in range(5, run.KEPT_LOGS + 4)] + ["0100.log"]
    assert (logs / "0100.log").stat().st_mode & 0o077 == 0  # the runner's user's alone


@pytest.mark.engine
def test_when_both_images_fail_the_last_line_names_both(tmp_path: Path, engine: None) -> None:
    from tests.service import BASE_REPO, RIG_TARGETS

    repo = make_service(tmp_path / "demo-svc", extra=RIG_TARGETS)
    for context, arch in (("docker", "amd64"), ("rpi-docker", "armv7")):
        repo.write(f"{context}/Dockerfile", f"FROM {BASE_REPO}:bookworm-{arch}\n"
                   f"RUN echo failing in {context} && exit 3\n")
    repo.commit("two Dockerfiles that fail")
    result = nox(repo, "-s", "release", env={"BREWBLOX_RELEASE_CACHE": str(tmp_path / "cache")})
    assert result.returncode != 0
    error = result.stdout.rpartition("Session release aborted:")[2]
    assert "building the amd64 image (linux/amd64)" in error, result.stdout[-3000:]
    assert "building the arm image (linux/arm/v7)" in error, result.stdout[-3000:]
    assert "Traceback" not in result.stdout



def test_a_failing_step_shows_its_own_lines_when_steps_run_at_once(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import threading

    from brewblox_release import _run as run

    def arm() -> None:  # the other image, building at the same time: its lines come last
        for n in range(30):
            run.detail(f"[arm] line {n}")

    def amd64() -> None:
        with run.step("image amd64"):
            for n in range(30):
                run.detail(f"[amd64] line {n}")
            other = threading.Thread(target=arm)
            other.start()
            other.join()
            raise run.CommandError(run.Result(("docker",), 1, ""))

    with run.console(tmp_path / "logs" / "one.log"), pytest.raises(run.CommandError):
        amd64()
    err = capsys.readouterr().err
    shown = err.partition("its last lines:")[2]
    assert "[amd64] line 29" in shown, err
    assert "[arm]" not in shown, err
    assert f"the whole log: {tmp_path / 'logs' / 'one.log'}" in err
    assert "[arm] line 29" in (tmp_path / "logs" / "one.log").read_text()
