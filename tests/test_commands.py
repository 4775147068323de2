"""The commands' own machinery: how a signal stops a run."""

from __future__ import annotations

import subprocess
import sys

import pytest

#: Enters the commands' signal handling, sends itself SIGINT and says what happened.
_SCRIPT = """
import os, signal, sys
from brewblox_release import _commands, _run
# As Python sets it up from a terminal, or as a job started in the background (nohup) has it.
signal.signal(signal.SIGINT, signal.SIG_IGN if sys.argv[1] == "ignored"
              else signal.default_int_handler)
try:
    with _commands._stopped_by_signals() as received:
        os.kill(os.getpid(), signal.SIGINT)
        signal.pthread_sigmask(signal.SIG_BLOCK, [])  # a bytecode boundary: the handler runs
    print("went on", received, _run._stopping.is_set())
except BaseException as e:
    print(type(e).__name__, received, _run._stopping.is_set())
"""


@pytest.mark.process
@pytest.mark.parametrize(("ctrl_c", "said"), [
    ("default", "_Stop [2] True"),
    ("ignored", "went on [] False"),  # a job started in the background ignores it: so do we
])
def test_ctrl_c_marks_the_run_as_stopping_as_sigterm_does(ctrl_c: str, said: str) -> None:
    # A KeyboardInterrupt that lands in a finalizer is dropped by Python: the mark is what
    # still stops publishing (check_stopping before each publishing step).
    result = subprocess.run([sys.executable, "-c", _SCRIPT, ctrl_c], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.stdout.strip() == said, result.stdout + result.stderr
