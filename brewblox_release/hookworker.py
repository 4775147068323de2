"""A build backend's hook process, started before it is needed (`dist.HookProcesses`).

pypa/build calls each PEP 517 hook in a new process of the build environment's Python:
``python _in_process.py HOOK CONTROL_DIR`` (pyproject_hooks), which first imports the backend,
a tenth of a second for setuptools. This script is that process started ahead: it imports the
backend while the release computes its version or builds the sdist, then reads one request on
standard input (the hook's command line, directory and environment, as JSON) and runs
pyproject_hooks' own script for it, as that process would have. It runs one hook and exits; on
an empty input it exits without running any.

It runs in the build environment's Python, which has none of brewblox-release: standard
library only.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import runpy
import sys
from pathlib import Path


def main() -> None:
    # As pyproject_hooks' script does: this script's directory is not the backend's to import.
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    # A backend that fails to import fails in the hook's own import, in the hook's words.
    with contextlib.suppress(Exception):
        importlib.import_module(sys.argv[1].partition(":")[0])
    line = sys.stdin.readline()
    if not line:
        return  # not needed after all
    request = json.loads(line)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = list(request["argv"])
    runpy.run_path(sys.argv[0], run_name="__main__")


if __name__ == "__main__":
    main()
