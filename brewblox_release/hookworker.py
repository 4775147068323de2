"""A build backend's hook process, started before it is needed (`dist.HookProcesses`).

pypa/build calls each PEP 517 hook in a new process of the build environment's Python:
``python _in_process.py HOOK CONTROL_DIR`` (pyproject_hooks), which first imports the backend,
a tenth of a second for setuptools. This script is that process started ahead: it imports the
backend while the release computes its version or builds the sdist, then reads one request on
standard input (the hook's command line, directory and environment, as JSON) and runs
pyproject_hooks' own script for it, as that process would have. It runs one hook and exits; on
an empty input it exits without running any.

Where importing the backend ahead would not be the same as the hook importing it (the import
warns, whose warnings pyproject_hooks records inside the hook and the front-end raises again,
or fails), it exits with `FALL_BACK` without running the hook: the front-end then runs the hook
in a process of its own.

It runs in the build environment's Python, which has none of brewblox-release: standard
library only.
"""

import os
import sys

if __name__ == "__main__":
    # First of all, as pyproject_hooks' script does: this script's directory (brewblox-release's
    # package) is no one's to import from, not the backend's nor this script's own imports.
    _HERE = os.path.normcase(os.path.realpath(os.path.dirname(__file__)))  # noqa: PTH120
    sys.path[:] = [p for p in sys.path if os.path.normcase(os.path.realpath(p)) != _HERE]

# The rest only after sys.path is clean.
import importlib
import json
import runpy
import warnings

#: The exit code that asks the front-end to run the hook in a process of its own.
FALL_BACK = 75


def main() -> None:
    with warnings.catch_warnings(record=True) as caught:  # as pyproject_hooks' script does
        try:
            importlib.import_module(sys.argv[1].partition(":")[0])
        except Exception:  # the hook's own process imports it, and says why
            sys.exit(FALL_BACK)
    if caught:  # the hook's own import records them, for the front-end to raise
        sys.exit(FALL_BACK)
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
