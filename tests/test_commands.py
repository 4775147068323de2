"""The commands' own machinery: how a signal stops a run."""

from __future__ import annotations

import subprocess
import sys

import pytest

#: Enters the commands' signal handling, sends itself a signal and says what happened.
_SCRIPT = """
import os, signal, sys
from brewblox_release import _commands, _run
signum = signal.Signals[sys.argv[1]]
# As Python sets it up from a terminal, or as a job started with nohup has it: ignored.
signal.signal(signum, signal.SIG_IGN if sys.argv[2] == "ignored" else
              signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL)
try:
    with _commands._stopped_by_signals() as received:
        os.kill(os.getpid(), signum)
        signal.pthread_sigmask(signal.SIG_BLOCK, [])  # a bytecode boundary: the handler runs
    print("went on", received, _run._stopping.is_set())
except BaseException as e:
    print(type(e).__name__, received, _run._stopping.is_set())
"""


@pytest.mark.process
@pytest.mark.parametrize(("signum", "disposition", "said"), [
    ("SIGINT", "default", "_Stop [2] True"),
    ("SIGTERM", "default", "_Stop [15] True"),
    ("SIGHUP", "default", "_Stop [1] True"),
    ("SIGINT", "ignored", "went on [] False"),  # nohup's: the release goes on, as asked
    ("SIGHUP", "ignored", "went on [] False"),
])
def test_a_signal_marks_the_run_as_stopping_unless_ignored(signum: str, disposition: str,
                                                           said: str) -> None:
    # An exception a signal raises is dropped by Python where it lands in a finalizer: the
    # mark is what still stops publishing (check_stopping before each publishing step).
    result = subprocess.run([sys.executable, "-c", _SCRIPT, signum, disposition],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.stdout.strip() == said, result.stdout + result.stderr
