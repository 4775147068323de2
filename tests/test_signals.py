"""Every process and temporary resource the tool starts ends with it (docs/how-it-works.md):
SIGTERM and SIGHUP (a CI cancel, a closed terminal) sent to a running ``--rehearse`` at three
moments; within five seconds nothing it started is alive, no loopback port it opened listens,
its temporary directory is gone, and a re-run succeeds.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.service import RIG_TARGETS, SENTINELS, GitRepo, clean_env, leaked_secrets, make_service

pytestmark = [pytest.mark.engine, pytest.mark.e2e]

#: The moments: a line of the run's output after which the signal is sent.
MOMENTS = {"servers up": "rehearsal: registry at", "building": "==> image",
           "publishing": "==> publish"}


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), list(children.get(pid, []))
    while todo:
        child = todo.pop()
        found.add(child)
        todo += children.get(child, [])
    return found


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.add(pid)
    return alive


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, engine: None) -> GitRepo:
    repo = make_service(tmp_path_factory.mktemp("signals") / "demo-svc",
                        extra='network = "host"\n' + RIG_TARGETS)
    repo.tag("1.0.0")
    repo.commit("a fix")
    return repo


@pytest.fixture(autouse=True)
def _as_from_a_terminal() -> Iterator[None]:
    """Ctrl-C and a closed terminal reach a program started from a terminal. A job started
    with ``nohup cmd &`` inherits SIGINT and SIGHUP ignored, and the tool leaves an ignored signal
    ignored; a handler here is reset to the default in the child instead."""
    saved = {signal.SIGINT: signal.signal(signal.SIGINT, signal.default_int_handler),
             signal.SIGHUP: signal.signal(signal.SIGHUP, signal.SIG_DFL)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


NOX = (sys.executable, "-m", "nox", "-s", "release", "--")
CLI = (sys.executable, "-m", "brewblox_release", "release")
CASES = [(NOX, signum, moment) for signum in (signal.SIGTERM, signal.SIGHUP)
         for moment in MOMENTS] + [(CLI, signal.SIGINT, "building"),  # Ctrl-C
                                   (CLI, signal.SIGTERM, "publishing")]


@pytest.mark.parametrize(("front", "signum", "moment"), CASES,
                         ids=[f"{'nox' if f is NOX else 'cli'}-{s.name}-{m}"
                              for f, s, m in CASES])
def test_a_stopped_rehearsal_leaves_nothing_behind(service: GitRepo, tmp_path: Path,
                                                   front: tuple[str, ...],
                                                   signum: signal.Signals, moment: str) -> None:
    env = {**clean_env(), **SENTINELS, "TMPDIR": str(tmp_path),
           "DOCKER_CONFIG": str(tmp_path / "docker-config")}
    proc = subprocess.Popen(
        [*front, "--rehearse", "--ref", "refs/heads/feature/x"], cwd=service.path, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    assert proc.stdout is not None
    lines, ports, started = [], [], set()
    for line in proc.stdout:
        lines.append(line)
        if found := re.search(r"rehearsal: registry at 127\.0\.0\.1:(\d+), index at "
                              r"http://127\.0\.0\.1:(\d+)/", line):
            ports = [int(found.group(1)), int(found.group(2))]
        if MOMENTS[moment] in line:
            started = _descendants(proc.pid)
            proc.send_signal(signum)
            break
    else:
        pytest.fail("the run ended before the moment came:\n" + "".join(lines[-30:]))
    sent = time.monotonic()
    try:
        rest, _ = proc.communicate(timeout=30)
    finally:  # a run that did not stop is no one's to leave behind
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    output = "".join(lines) + rest
    assert time.monotonic() - sent < 5, output[-3000:]
    assert ports, output
    assert started, "it had started processes (the servers)"
    deadline = time.monotonic() + 5 - (time.monotonic() - sent)
    while (_alive(started) or any(map(_listening, ports))) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(started), f"still alive: {_alive(started)}"
    assert not any(map(_listening, ports)), f"still listening: {ports}"
    assert not list(tmp_path.glob("brewblox-rehearsal-*")), "its temporary directory is gone"
    assert not list(tmp_path.glob("brewblox-release-*")), "and the other temporary ones"
    # nox exits 130 for every stop (its own way out); the command line 128 + the signal.
    assert proc.returncode == (130 if front is NOX else 128 + signum), output[-2000:]
    assert f"stopped by {signal.Signals(signum).name}" in output
    assert "Traceback" not in output
    assert not leaked_secrets(output)
    if moment != "publishing" or front is CLI:
        return
    again = subprocess.run([sys.executable, "-m", "nox", "-s", "release", "--", "--rehearse",
                            "--ref", "refs/heads/feature/x"], cwd=service.path, env=env,
                           capture_output=True, text=True, timeout=600, check=False)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
