"""The one subprocess chokepoint: no secret value ever appears in output (docs/how-it-works.md)."""

from __future__ import annotations

import gc
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from brewblox_release import _run as run
from brewblox_release._environment import Environment
from brewblox_release._run import CommandError
from brewblox_release._secret import MASK, Redactor

SECRET = "s3cr3t-Value"
PY = sys.executable


@pytest.mark.parametrize(("secrets", "text", "expected"), [
    ([SECRET], f"login with {SECRET}", "login with ****"),
    ([SECRET], f"{SECRET}{SECRET} and {SECRET}", "******** and ****"),
    ([SECRET], "nothing to hide", "nothing to hide"),
    ([SECRET], SECRET.lower(), SECRET.lower()),  # masking is exact, not case-insensitive
    (["abc"], "xabcx", "x****x"),                # three characters: masked
    (["ab"], "ab cd ab", "ab cd ab"),            # fewer than three: not masked
    (["a"], "a b c", "a b c"),
    ([""], "text", "text"),
    ([], "text", "text"),
    # Percent-encoded, as in a URL with credentials, with and without "/" encoded.
    (["p@ss/w:rd"], "https://user:p%40ss%2Fw%3Ard@pypi.example/", "https://****@pypi.example/"),
    (["p@ss/w:rd"], "https://user:p%40ss/w%3Ard@pypi.example/", "https://****@pypi.example/"),
    (["p@ss/w:rd"], "raw p@ss/w:rd", "raw ****"),
    (["pa ss"], "pa%20ss and pa ss", "**** and ****"),
    # A secret that contains another is masked whole.
    (["abc", "abcdef"], "abcdef abc", "**** ****"),
    (["tok", "token-123"], "token-123", "****"),
    # Form-encoded ("+" for a space), as in a request body or a query string.
    (["p@ss word+1"], "password=p%40ss+word%2B1&x=1", "password=****&x=1"),
    # A multi-line secret (a key in PEM form) is masked line by line, and whole.
    (["-----BEGIN KEY-----\nabcdefSECRET\n-----END KEY-----\n"], "key line abcdefSECRET",
     "key line ****"),
    (["BEGIN\nabcdefSECRET\nEND"], "BEGIN\nabcdefSECRET\nEND", "****"),
])
def test_redactor(secrets: list[str], text: str, expected: str) -> None:
    assert Redactor(secrets)(text) == expected


def test_from_env_masks_every_credential_variable() -> None:
    env = {"TWINE_USERNAME": "alice", "TWINE_PASSWORD": "pypi-AgEIcHlwaS5vcmc",
           "DOCKER_PASSWORD": "dckr_pat_123", "HOME": "/root"}
    redact = Environment(env).redactor()
    assert redact("alice pypi-AgEIcHlwaS5vcmc dckr_pat_123 /root") == "**** **** **** /root"


def test_from_env_ignores_the_token_username() -> None:
    redact = Environment({"TWINE_USERNAME": "__token__",
                                "TWINE_PASSWORD": "pypi-AgEIcHlwaS5vcmc"}).redactor()
    assert redact("twine upload -u __token__ -p pypi-AgEIcHlwaS5vcmc") == (
        "twine upload -u __token__ -p ****")


def test_from_env_masks_extra_variables() -> None:
    env = {"GH_TOKEN": "ghp_abcdef", "OTHER": "visible"}
    assert Environment(env, ["GH_TOKEN", "MISSING"]).redactor()("ghp_abcdef visible") == (
        "**** visible")
    assert Environment(env).redactor()("ghp_abcdef") == "ghp_abcdef"


def test_from_env_without_credentials_masks_nothing() -> None:
    assert Environment({}).redactor()("anything at all") == "anything at all"


@pytest.fixture
def lines() -> Iterator[list[str]]:
    """Capture every line `run` prints, masking SECRET; restore the output afterwards."""
    saved = (run._output.redactor, run._output.sink)
    captured: list[str] = []
    run.configure(redactor=Redactor([SECRET, "p@ss/w:rd", "ab"]), sink=captured.append)
    yield captured
    run.configure(redactor=saved[0], sink=saved[1])


def assert_no_secret(lines: list[str]) -> None:
    for line in lines:
        assert SECRET not in line
        assert "p%40ss" not in line
        assert "p@ss" not in line


def test_output_lines_are_masked(lines: list[str]) -> None:
    script = ("import os; print('token', os.environ['TOKEN']); "
              "print('url https://u:p%40ss%2Fw%3Ard@host/'); print('done')")
    result = run.run([PY, "-c", script], env={"TOKEN": SECRET})
    assert lines[1:] == ["  token ****", "  url https://****@host/", "  done"]
    assert lines[0].startswith("$ ")
    assert_no_secret(lines)
    assert result.returncode == 0
    assert result.lines[-1] == "done"


def test_command_lines_are_masked(lines: list[str]) -> None:
    run.run([PY, "-c", "pass", "--password", SECRET, "https://u:p%40ss%2Fw%3Ard@host/"])
    assert len(lines) == 1
    assert lines[0].startswith("$ ")
    assert lines[0].endswith("--password **** https://****@host/")
    assert_no_secret(lines)


def test_stderr_is_merged_and_masked(lines: list[str]) -> None:
    run.run([PY, "-c", f"import sys; print('oops {SECRET}', file=sys.stderr)"], echo=False)
    assert lines == ["  oops ****"]


def test_echo_and_stream_off_print_nothing(lines: list[str]) -> None:
    result = run.run([PY, "-c", "print('quiet')"], echo=False, stream=False)
    assert lines == []
    assert result.output == "quiet"


def test_a_short_secret_is_not_masked(lines: list[str]) -> None:
    run.run([PY, "-c", "print('ab cd')"], echo=False)
    assert lines == ["  ab cd"]


def test_a_multi_line_secret_never_reaches_output() -> None:
    captured: list[str] = []
    saved = (run._output.redactor, run._output.sink)
    key = "-----BEGIN KEY-----\nMIIEabcdefSECRETline\nMoreSECRETline2\n-----END KEY-----"
    run.configure(redactor=Environment({"DEPLOY_KEY": key}, ["DEPLOY_KEY"]).redactor(),
                  sink=captured.append)
    try:
        run.log(f"key is {key}")
        run.run([PY, "-c", "import os; print(os.environ['K'])"], env={"K": key}, echo=False)
    finally:
        run.configure(redactor=saved[0], sink=saved[1])
    assert captured
    assert not any("SECRET" in line for line in captured), captured


def test_log_masks_every_line(lines: list[str]) -> None:
    run.log(f"first {SECRET}\nsecond p@ss/w:rd\nthird")
    run.log("")
    assert lines == ["first ****", "second ****", "third", ""]
    assert run.redact(f"x {SECRET}") == f"x {MASK}"


def test_command_error_is_masked(lines: list[str]) -> None:
    script = f"print('failing with {SECRET}'); raise SystemExit(3)"
    with pytest.raises(CommandError) as info:
        run.run([PY, "-c", script, SECRET])
    message = str(info.value)
    assert "exit code 3" in message
    assert "failing with ****" in message
    assert SECRET not in message
    assert info.value.result.returncode == 3
    assert_no_secret(lines)


def test_command_error_keeps_the_last_20_lines(lines: list[str]) -> None:
    script = "for i in range(30): print(f'line {i}')\nraise SystemExit(1)"
    with pytest.raises(CommandError) as info:
        run.run([PY, "-c", script], echo=False, stream=False)
    message = str(info.value)
    assert "line 29" in message
    assert "line 10" in message
    assert "line 9\n" not in message


def test_check_false_returns_the_exit_code(lines: list[str]) -> None:
    result = run.run([PY, "-c", "raise SystemExit(4)"], check=False, echo=False)
    assert result.returncode == 4


def test_a_missing_program_is_a_command_error(lines: list[str], tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="not found") as info:
        run.run([tmp_path / "no-such-program", SECRET], echo=False)
    assert info.value.result.returncode == 127


def test_the_whales_debug_variable_never_reaches_a_command(lines: list[str]) -> None:
    script = "import os; print(os.environ.get('PYTHON_ON_WHALES_DEBUG', 'unset'))"
    result = run.run([PY, "-c", script], env={"PYTHON_ON_WHALES_DEBUG": "1"}, echo=False)
    assert result.output == "unset"


def test_input_and_cwd(lines: list[str], tmp_path: Path) -> None:
    script = "import os, sys; print(sys.stdin.read().upper(), os.getcwd())"
    result = run.run([PY, "-c", script], input="login", cwd=tmp_path, echo=False, stream=False)
    assert result.output == f"LOGIN {tmp_path}"


def test_run_leaves_no_open_pipe(lines: list[str]) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run.run([PY, "-c", "print('x')"], echo=False, stream=False)
        gc.collect()
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []


def test_input_and_output_before_it_are_masked(lines: list[str]) -> None:
    script = (f"import sys; print('early {SECRET}', flush=True); "
              "print('got', sys.stdin.readline().strip())")
    result = run.run([PY, "-c", script], input=f"late {SECRET}\n", echo=False)
    assert result.lines == [f"early {SECRET}", f"got late {SECRET}"]
    assert lines == ["  early ****", "  got late ****"]


def test_a_command_that_ends_without_its_input_is_finished_without_error(
        lines: list[str]) -> None:
    # More input than a pipe holds: the write meets the ended process (a broken pipe).
    exits = [PY, "-c", "import sys; sys.exit(3)"]
    assert run.run(exits, input="x" * 2**20, check=False, echo=False).returncode == 3
    with pytest.raises(CommandError, match="exit code 3"):
        run.run(exits, input="x\n", echo=False)


def test_a_library_s_warning_goes_into_the_log(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """setuptools_scm warns of a shallow clone in Python's own way; the user reads the tool's
    line about it, and the log keeps the library's."""

    log_path = tmp_path / "logs" / "run.log"
    with run.console(log_path), run.warnings_into_log(), warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("/srv/svc is shallow and may cause errors", UserWarning, stacklevel=1)
    assert "shallow" not in capsys.readouterr().err
    assert "UserWarning: /srv/svc is shallow and may cause errors" in log_path.read_text()
