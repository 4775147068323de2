"""A whole release of a sample service, rehearsed on loopback: ``nox -s demo``.

Makes a sample service repository (branch ``develop``, tagged 0.1.0, one commit after it) that
builds on the rig's base images, and runs ``nox -s release -- --rehearse`` in it, as a user
would in their own service: dist, distcopy, both images, upload, push, verify, summary.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.service import RIG_TARGETS, clean_env, make_service


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep", type=Path, help="make the service here and keep it")
    parser.add_argument("args", nargs="*", help="more options for the release session")
    ns = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="brewblox-demo-") as tmp:
        where = ns.keep or Path(tmp) / "demo-svc"
        repo = make_service(where, extra=RIG_TARGETS, branch="develop")
        repo.tag("0.1.0")
        repo.commit("a change after the release", files={"CHANGES.md": "- a change\n"})
        print(f"sample service at {where}: nox -s release -- --rehearse {' '.join(ns.args)}",
              flush=True)
        return subprocess.run([sys.executable, "-m", "nox", "-s", "release", "--",
                               "--rehearse", *ns.args], cwd=where, env=clean_env(),
                              check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
