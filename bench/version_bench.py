"""Benchmark: `nox -s version` on a setup.py-only service against a PEP 621 service.

A setup.py service of 2018 (no ``[project]``; pyproject.toml holds only
``[tool.brewblox-release]``) has no static name: the build backend says it once (PEP 517
``prepare_metadata_for_build_wheel``), and the answer is cached under the hash of the files that
decide it. With that cache warm, ``nox -s version`` on it must cost at most 1.5 times what it
costs on a PEP 621 service, whose name is read from pyproject.toml.

Both services are the test suite's samples (tests/samples.py, tests/service.py), each a git
repository tagged 1.0.0 with two commits after. Each is run once to warm it (the first run of
the setup.py service asks the backend, and shows what that costs cold), then ``--runs`` times
alternately; medians go to stdout and to bench/results/version.json.

    python bench/version_bench.py --runs 15 [--check]

``--check`` exits non-zero when the ratio exceeds 1.5. It is a benchmark, not a timed test:
the machine's load moves both numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

# The repository's root: tests.samples and tests.service make the sample services.
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.samples import setup_py_service  # noqa: E402 (after the path above)
from tests.service import GitRepo, clean_env, make_service  # noqa: E402

RESULTS = ROOT / "bench" / "results"
LIMIT = 1.5


def _session(path: Path) -> float:
    """Seconds of one ``nox -s version`` in ``path``, as a user runs it."""
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "nox", "-s", "version"], cwd=path,
                            env=clean_env(), capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"nox -s version failed in {path}:\n{result.stdout}{result.stderr}")
    return elapsed


def _prepare(repo: GitRepo) -> GitRepo:
    repo.tag("1.0.0")
    repo.commit("one")
    repo.commit("two")
    return repo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="timed runs of each (default 15)")
    parser.add_argument("--check", action="store_true",
                        help=f"fail when the ratio exceeds {LIMIT}")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="version-bench-") as tmp:
        legacy = _prepare(setup_py_service(Path(tmp) / "legacy-svc", name="bench-legacy-svc"))
        pep621 = _prepare(make_service(Path(tmp) / "pep621-svc", name="bench-pep621-svc"))
        # The name cache is keyed by the deciding files' contents, which are the same on every
        # run of this script: drop the entry, so that the cold run is cold.
        from brewblox_release._buildenv import cache_dir, files_key

        (cache_dir() / "names" / f"{files_key(legacy.path)}.json").unlink(missing_ok=True)
        cold = _session(legacy.path)
        _session(pep621.path)
        times: dict[str, list[float]] = {"setup.py": [], "pep621": []}
        for _ in range(args.runs):
            times["setup.py"].append(_session(legacy.path))
            times["pep621"].append(_session(pep621.path))

    medians = {k: statistics.median(v) for k, v in times.items()}
    ratio = medians["setup.py"] / medians["pep621"]
    print(f"nox -s version, median of {args.runs} runs each")
    print(f"  setup.py-only service, cold name cache (one run): {cold:6.3f} s")
    print(f"  setup.py-only service, warm name cache:           {medians['setup.py']:6.3f} s")
    print(f"  PEP 621 service:                                   {medians['pep621']:6.3f} s")
    print(f"  ratio: {ratio:.2f} (target <= {LIMIT})")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "version.json").write_text(json.dumps({
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
                   f"{platform.python_version()}",
        "runs": args.runs, "cold_setup_py": cold, "median": medians, "ratio": ratio,
        "times": times}, indent=2) + "\n")
    if args.check and ratio > LIMIT:
        print(f"ratio {ratio:.2f} exceeds {LIMIT}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
