"""Building the package: exact version, reproducible files, pkg/ checks."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from brewblox_release import config, dist, version
from brewblox_release.errors import BuildError
from brewblox_release.run import CommandError
from tests.service import GitRepo, make_service


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    repo = make_service(tmp_path / "svc")
    repo.tag("1.2.3")
    repo.commit("one")
    return repo


def _build(path: Path) -> dict[str, str]:
    cfg = config.load(path)
    info = version.read(cfg.root)
    files = dist.build(cfg, info.version, source_date_epoch=info.git.commit_time)
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


def test_two_clones_build_identical_files(repo: GitRepo, tmp_path: Path) -> None:
    clones = []
    for name in ("a", "b"):
        clone = tmp_path / name
        subprocess.run(["git", "clone", "-q", str(repo.path), str(clone)], check=True)
        (clone / "README.md").touch()  # another mtime, as every CI checkout has
        clones.append(_build(clone))
    assert clones[0] == clones[1]
    assert sorted(clones[0]) == ["demo_svc-1.2.4.dev1-py3-none-any.whl",
                                 "demo_svc-1.2.4.dev1.tar.gz"]


def test_check_context_refuses_a_stale_or_missing_wheel(repo: GitRepo) -> None:
    cfg = config.load(repo.path)
    target = cfg.target("amd64")
    with pytest.raises(BuildError, match="holds 0 wheels"):
        dist.check_context(cfg, target, "1.2.4.dev1")
    _build(repo.path)
    dist.copy(cfg)
    assert dist.check_context(cfg, target, "1.2.4.dev1").name.startswith("demo_svc-1.2.4.dev1")
    with pytest.raises(BuildError, match="stale package"):
        dist.check_context(cfg, target, "1.2.4.dev2")


def test_copy_without_dist_says_what_to_run(repo: GitRepo) -> None:
    with pytest.raises(BuildError, match="run `nox -s dist` first"):
        dist.copy(config.load(repo.path))


def test_copy_replaces_a_link_and_never_writes_through_it(repo: GitRepo, tmp_path: Path) -> None:
    # A link under the distribution's own name in pkg/ (a checkout's leftover, or planted):
    # the link goes, what it points at outside the service stays as it was.
    outside = tmp_path / "outside.txt"
    outside.write_text("outside\n")
    built = _build(repo.path)
    pkg = repo.path / "docker" / "pkg"
    pkg.mkdir()
    (pkg / "demo_svc-1.2.4.dev1-py3-none-any.whl").symlink_to(outside)
    (pkg / "other-1.0-py3-none-any.whl").write_bytes(b"not ours")
    dist.copy(config.load(repo.path))
    assert outside.read_text() == "outside\n"
    wheel = pkg / "demo_svc-1.2.4.dev1-py3-none-any.whl"
    assert not wheel.is_symlink()
    assert hashlib.sha256(wheel.read_bytes()).hexdigest() == built[wheel.name]
    assert (pkg / "other-1.0-py3-none-any.whl").read_bytes() == b"not ours", "not ours: kept"


#: A setup.py that records, for each process that runs it (a hook's), its command line and what
#: the hook sees: its directory, backend and version (a line of JSON each); it fails when asked.
RECORDING_SETUP = """\
import json
import os
from pathlib import Path

from setuptools import setup

seen = {"cmdline": Path("/proc/self/cmdline").read_bytes().replace(b"\\0", b" ").decode(),
        "cwd": Path.cwd().name, "backend": os.environ["_PYPROJECT_HOOKS_BUILD_BACKEND"],
        "version": os.environ["SETUPTOOLS_SCM_PRETEND_VERSION_FOR_DEMO_SVC"]}
with open(os.environ["HOOK_LOG"], "a") as log:
    log.write(json.dumps(seen) + "\\n")
if os.environ.get("HOOK_FAILS"):
    raise SystemExit("this hook fails on purpose")
setup()
"""


def _recorded(log: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


@pytest.fixture
def recording(repo: GitRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    repo.commit("a setup.py that records its processes", files={"setup.py": RECORDING_SETUP})
    log = tmp_path / "hooks.log"
    monkeypatch.setenv("HOOK_LOG", str(log))
    return log


def test_hooks_run_in_the_processes_started_ahead_and_build_the_same_files(
        repo: GitRepo, recording: Path) -> None:
    cfg = config.load(repo.path)
    info = version.read(cfg.root)
    plain = _build(repo.path)  # also makes the kept build environment, for this project
    # (Before the build's hooks, the first build of this setup.py asks for its requirements.)
    own = _recorded(recording)[-2:]
    assert [seen["cmdline"].split()[2] for seen in own] == ["build_sdist", "build_wheel"]
    assert all("_in_process.py" in seen["cmdline"] for seen in own)

    hooks = dist.HookProcesses.start(cfg.root)
    assert hooks is not None
    try:
        files = dist.build(cfg, info.version, source_date_epoch=info.git.commit_time,
                           hooks=hooks)
    finally:
        hooks.close()
    assert {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in files} == plain
    ahead = _recorded(recording)[-2:]
    # Both hooks ran in the processes started ahead, one each, and saw what pypa/build's own
    # processes saw: the same directories (the project, then the unpacked sdist), backend and
    # version.
    assert all("hookworker.py" in seen["cmdline"] for seen in ahead), ahead
    strip = [{k: v for k, v in seen.items() if k != "cmdline"} for seen in (*own, *ahead)]
    assert strip[2:] == strip[:2]
    assert strip[0]["cwd"] == "svc"
    assert strip[1]["cwd"] == "demo_svc-1.2.4.dev2"
    assert hooks.ahead is None, "both taken, none left"
    assert hooks.left == 0


def test_a_failing_hook_in_a_process_started_ahead_fails_in_its_own_words(
        repo: GitRepo, recording: Path, monkeypatch: pytest.MonkeyPatch,
        capfd: pytest.CaptureFixture[str]) -> None:
    cfg = config.load(repo.path)
    info = version.read(cfg.root)
    _build(repo.path)
    hooks = dist.HookProcesses.start(cfg.root)
    assert hooks is not None
    monkeypatch.setenv("HOOK_FAILS", "1")  # set after the process started: it gets the env
    try:
        with pytest.raises(BuildError, match="exited with 1") as failed:
            dist.build(cfg, info.version, hooks=hooks)
    finally:
        hooks.close()
    assert "hookworker.py" in _recorded(recording)[-1]["cmdline"]
    assert "this hook fails on purpose" in capfd.readouterr().err
    cause = failed.value.__cause__
    assert isinstance(cause, CommandError)
    assert cause.result.argv[1].endswith("_in_process.py")
    assert cause.result.argv[2] == "build_sdist"


def test_hook_processes_only_where_the_environment_is_ready(
        repo: GitRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BREWBLOX_RELEASE_CACHE", str(tmp_path / "cache"))
    assert dist.HookProcesses.start(repo.path) is None, "no kept build environment yet"
    _build(repo.path)
    hooks = dist.HookProcesses.start(repo.path)
    assert hooks is not None
    assert hooks.ahead is not None
    waiting = hooks.ahead.proc
    hooks.close()  # the process not taken ends, and is collected
    assert waiting.returncode is not None
    # New dynamic requirements may be installed into it before the hooks run.
    repo.write("setup.cfg", "[metadata]\n")
    assert dist.HookProcesses.start(repo.path) is None
    (repo.path / "setup.cfg").unlink()
    # PYTHONPATH's relative entries are resolved where the interpreter starts.
    monkeypatch.setenv("PYTHONPATH", "relative/dir")
    assert dist.HookProcesses.start(repo.path) is None
    monkeypatch.delenv("PYTHONPATH")
    # An in-tree backend (backend-path) is imported from the tree by the hook itself.
    pyproject = (repo.path / "pyproject.toml").read_text()
    (repo.path / "pyproject.toml").write_text(pyproject.replace(
        'build-backend = "setuptools.build_meta"',
        'build-backend = "setuptools.build_meta"\nbackend-path = ["."]'))
    assert dist.HookProcesses.start(repo.path) is None


# --- HookProcesses.take, with this Python as a made environment's ------------------------------

#: A stand-in for pyproject_hooks' script: it records what it was given.
HOOK_SCRIPT = """\
import json, os, sys
from pathlib import Path
Path(os.environ["HOOK_OUT"]).write_text(json.dumps(
    {"argv": sys.argv[1:], "cwd": os.getcwd(), "mark": os.environ.get("MARK")}))
"""


@pytest.fixture
def made(tmp_path: Path) -> dist.KeptEnv:
    kept = dist.KeptEnv(tmp_path / "env")
    (kept.path / "bin").mkdir(parents=True)
    kept.python.symlink_to(sys.executable)
    (kept.path / "brewblox-release-ready").touch()
    return kept


def _hook(tmp_path: Path) -> tuple[Path, Path]:
    script, out = tmp_path / "hook.py", tmp_path / "hook.json"
    script.write_text(HOOK_SCRIPT)
    return script, out


def test_take_runs_the_hook_with_its_own_arguments_directory_and_environment(
        made: dist.KeptEnv, tmp_path: Path) -> None:
    script, out = _hook(tmp_path)
    hooks = dist.HookProcesses(made, "json", 1)
    cmd = [str(made.python), str(script), "build_wheel", "/control"]
    assert hooks.take(cmd, str(tmp_path), {"HOOK_OUT": str(out), "MARK": "given late"})
    assert json.loads(out.read_text()) == {"argv": ["build_wheel", "/control"],
                                           "cwd": str(tmp_path), "mark": "given late"}
    assert hooks.ahead is None
    assert not hooks.take(cmd, str(tmp_path), {}), "one hook was asked for"


@pytest.mark.parametrize("why", ["warns", "fails", "other python", "ended", "startup var",
                                 "made again"])
def test_take_leaves_the_hook_to_its_own_process(made: dist.KeptEnv, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 why: str) -> None:
    script, out = _hook(tmp_path)
    (tmp_path / "noisy.py").write_text("import warnings\nwarnings.warn('noisy', UserWarning)\n")
    (tmp_path / "broken.py").write_text("raise ImportError('broken')\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    backend = {"warns": "noisy", "fails": "broken"}.get(why, "json")
    hooks = dist.HookProcesses(made, backend, 1)
    assert hooks.ahead is not None
    worker = hooks.ahead
    python, env = str(made.python), {"HOOK_OUT": str(out)}
    if why == "other python":
        python = sys.executable
    elif why == "ended":
        worker.proc.kill()
        worker.proc.wait()
    elif why == "startup var":
        env["PYTHONHASHSEED"] = "7"
    elif why == "made again":
        ready = made.path / "brewblox-release-ready"
        os.utime(ready, (ready.stat().st_mtime + 10,) * 2)
    assert not hooks.take([python, str(script), "build_sdist"], str(tmp_path), env)
    assert not out.exists(), "it ran nothing"
    assert worker.proc.returncode is not None, "and it was collected"
