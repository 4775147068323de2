"""Benchmark: from a fresh service to a rehearsed release with `init`.

Each run makes a service that has never heard of brewblox-release (a commented pyproject.toml,
a package, a tag and a commit after it; a GitHub remote), then times what a user does:

1. ``init``: `brewblox_release._init.init` with the rig's base images (nothing can be pulled
   here; elsewhere the template's default base image needs no option);
2. commit what init wrote (``git add -A && git commit``);
3. ``nox -s release -- --rehearse``: dist, both images (amd64, arm/v7 under qemu), a registry
   and a pypiserver on loopback, push, upload, verify.

Every run's service has its own code (a line with the run's id), so its package and its images'
last layers are built anew; the engine's build cache is kept, as on a developer's machine (pass
``--cold`` to prune it first: that also slows every other build on the machine). The results go
to bench/results/adopt.json and a table on stdout; ``--check`` fails when a run misses 60 s.

    python bench/adopt.py --runs 3
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

# The repository's root: tests.test_init makes the fresh services of the test suite.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from brewblox_release._init import init, render
from tests.service import clean_env
from tests.test_init import RIG_BASE_IMAGES, fresh_service

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_S = 60.0


def one_run(where: Path) -> dict[str, float]:
    """Adopt and rehearse one fresh service; the seconds of each step."""
    repo = fresh_service(where)
    repo.tag("0.1.0")
    repo.commit("work", files={"demo_svc/run.py": f"RUN = {uuid.uuid4().hex!r}\n"})
    times: dict[str, float] = {}
    start = time.monotonic()
    changes = init(repo.path, base_images=RIG_BASE_IMAGES)
    times["init"] = time.monotonic() - start
    print(render(changes), flush=True)
    mark = time.monotonic()
    repo.commit("adopt brewblox-release")
    times["commit"] = time.monotonic() - mark
    mark = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "nox", "-s", "release", "--", "--rehearse"],
                            cwd=repo.path, env=clean_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, check=False, timeout=900)
    times["release --rehearse"] = time.monotonic() - mark
    times["total"] = time.monotonic() - start
    # The release's own step times ("<== publish (26.7 s)"): where its seconds go.
    for step, seconds in re.findall(r"^<== (.+?) \(([0-9.]+) s\)$", result.stdout, re.MULTILINE):
        times[f"  {re.split(r':| [(]', step)[0]}"] = float(seconds)
    verified = re.findall(r"holds demo-svc 0\.1\.1\.dev2 +ok", result.stdout)
    if result.returncode != 0 or len(verified) != 2:  # both images hold the dev release
        print(result.stdout, file=sys.stderr)
        raise SystemExit("the rehearsed release failed: see its output above")
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cold", action="store_true",
                        help="prune the engine's build cache before the first run")
    parser.add_argument("--check", action="store_true", help=f"fail when a run takes over "
                        f"{TARGET_S:.0f} s")
    ns = parser.parse_args()
    if ns.cold:
        subprocess.run(["docker", "builder", "prune", "-af"], check=True,
                       stdout=subprocess.DEVNULL)
    runs = []
    with tempfile.TemporaryDirectory(prefix="brewblox-adopt-") as tmp:
        for i in range(ns.runs):
            runs.append(one_run(Path(tmp) / f"run{i}" / "demo-svc"))
            print(f"run {i + 1}: " + ", ".join(f"{k} {v:.1f} s" for k, v in runs[-1].items()),
                  flush=True)
    steps = list(dict.fromkeys(k for r in runs for k in r))
    medians = {k: statistics.median(r[k] for r in runs if k in r) for k in steps}
    print(f"\n{'step':<22}{'median':>9}{'max':>9}   (over {len(runs)} runs)")
    for k in steps:
        print(f"{k:<22}{medians[k]:>8.1f}s{max(r.get(k, 0.0) for r in runs):>8.1f}s")
    worst = max(r["total"] for r in runs)
    verdict = "met" if worst < TARGET_S else "MISSED"
    print(f"target: fresh service to rehearsed release under {TARGET_S:.0f} s: {verdict}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "adopt.json").write_text(json.dumps(
        {"runs": runs, "median": medians, "target_s": TARGET_S, "cold": ns.cold}, indent=2))
    return 1 if ns.check and worst >= TARGET_S else 0


if __name__ == "__main__":
    sys.exit(main())
