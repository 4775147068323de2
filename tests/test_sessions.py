"""The sessions as a service uses them: its whole noxfile is the one import line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.service import NOXFILE, GitRepo, clean_env, make_service, nox

pytestmark = pytest.mark.process  # the command line, through nox and python -m


def _service(tmp_path: Path) -> GitRepo:
    repo = make_service(tmp_path / "svc")
    assert (repo.path / "noxfile.py").read_text() == NOXFILE
    repo.tag("1.2.3")
    repo.commit("one")
    repo.commit("two")
    return repo


def test_nox_lists_the_sessions_and_selects_only_version(tmp_path: Path) -> None:
    result = nox(_service(tmp_path), "-l")
    assert result.returncode == 0, result.stdout
    listed = {line.split()[1]: line.split()[0] for line in result.stdout.splitlines()
              if line[:2] in {"* ", "- "}}
    assert listed == {"version": "*", "dist": "-", "distcopy": "-", "docker": "-",
                      "docker-amd64": "-", "docker-arm": "-", "release": "-", "init": "-"}


def test_dist_and_distcopy(tmp_path: Path) -> None:
    repo = _service(tmp_path)
    for context in ("docker", "rpi-docker"):
        (repo.path / context / "pkg").mkdir()
        (repo.path / context / "pkg" / "demo_svc-0.9.0-py3-none-any.whl").write_text("stale")
    result = nox(repo, "-s", "dist", "distcopy")
    assert result.returncode == 0, result.stdout
    expected = ["demo_svc-1.2.4.dev2-py3-none-any.whl", "demo_svc-1.2.4.dev2.tar.gz"]
    assert sorted(p.name for p in (repo.path / "dist").iterdir()) == expected
    for context in ("docker", "rpi-docker"):
        pkg = repo.path / context / "pkg"
        dist_files = sorted(p.name for p in pkg.iterdir() if p.name.startswith("demo_svc-"))
        assert dist_files == expected, "the distribution's stale files are removed"
        for name in expected:
            assert (pkg / name).read_bytes() == (repo.path / "dist" / name).read_bytes()


def test_version_prints_the_version_and_the_plan(tmp_path: Path) -> None:
    repo = _service(tmp_path)
    result = nox(repo, "-s", "version")
    assert result.returncode == 0, result.stdout
    assert "\n1.2.4.dev2\n" in result.stdout
    assert "amd64:   build and load brewblox/demo-svc:local" in result.stdout
    result = nox(repo, "-s", "release", "--", "--dry-run", "--ref", "refs/heads/feature/X")
    assert result.returncode == 0, result.stdout
    assert "index:   upload sdist and wheel of 1.2.4.dev2" in result.stdout
    assert "arm:     push brewblox/demo-svc:rpi-feature-x" in result.stdout
    assert not (repo.path / "dist").exists(), "a dry run builds nothing"


def test_bad_option_is_a_clear_error(tmp_path: Path) -> None:
    result = nox(_service(tmp_path), "-s", "release", "--", "--dryrun")
    assert result.returncode != 0
    assert "unknown option '--dryrun'; the options of release are: --dry-run" in result.stdout


def test_an_abbreviated_option_is_not_taken_for_another(tmp_path: Path) -> None:
    # argparse would read --pub as --publish, and stop with SystemExit on --re.
    repo = _service(tmp_path)
    for option in ("--pub", "--re"):
        result = nox(repo, "-s", "release", "--", "--dry-run", option)
        assert result.returncode != 0
        assert f"unknown option {option!r}; the options of release are" in result.stdout
        assert "Traceback" not in result.stdout


def _three(repo: GitRepo, command: str, *words: str) -> dict[str, tuple[int, str]]:
    """``command`` with ``words`` through nox, invoke and the command line: exit status, output."""
    argv = {"nox": ["-m", "nox", "-s", command, "--", *words],
            "invoke": ["-m", "invoke", command, *words],
            "cli": ["-m", "brewblox_release", command, *words]}
    found = {}
    for name, args in argv.items():
        result = subprocess.run([sys.executable, *args], cwd=repo.path, env=clean_env(),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                timeout=120, check=False)
        found[name] = (result.returncode, result.stdout)
    return found


def test_every_front_end_takes_help_and_verbose_and_names_a_usage_error_once(
        tmp_path: Path) -> None:
    repo = _service(tmp_path)
    repo.commit("invoke tasks", files={"tasks.py": "from brewblox_release.invoke import "
                                                    "namespace  # noqa: F401\n"})
    for name, (code, output) in _three(repo, "version", "--verbose").items():
        assert code == 0, (name, output)
        assert "1.2.4.dev3" in output, name
    for name, (code, output) in _three(repo, "release", "--help").items():
        assert code == 0, (name, output)
        assert "--dry-run" in output, name
        assert "--verbose" in output, name
    usage = _three(repo, "version", "--ref")
    code, output = usage.pop("cli")
    assert code == 2, output
    assert output.count("brewblox-release version") == 1, output
    assert "argument --ref: expected one argument; the options of version are" in output
    code, output = usage["nox"]  # nox's own exit status; invoke reads its flags itself
    assert code == 1, output
    assert "argument --ref: expected one argument" in output
    assert usage["invoke"][0] != 0
