"""Benchmark: a multi-arch release against the per-target one, and the merge step.

One sample service (the test suite's, on the rig's base images; amd64 and arm/v7) is released as
a dev release of a branch through ``nox -s release`` in a GitHub Actions environment, to a fresh
registry and pypiserver on loopback each run: (a) per target (``rpi-`` tags), (b) with
``multi-arch = true`` (one manifest list under both names). Each run changes one line of code
first, so both rebuild as a real push does; the two kinds alternate, so both see the same cache.

Then a split build: both targets staged (``--stage DIR``), and ``nox -s release -- --merge DIR``
timed whole and by its ``publish`` step (index upload, the lists, ``latest``), as the release
prints it (``<== publish (N s)``).

    python bench/multiarch.py --runs 3 [--check]

Targets: (b)/(a) <= 1.2, the merge's publish step <= 2 s. Medians go to stdout and to
bench/results/multiarch.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from brewblox_release._servers import IndexServer, RegistryServer  # noqa: E402
from tests.service import (  # noqa: E402
    RIG_TARGETS,
    GitRepo,
    clean_env,
    destinations,
    github_env,
    make_service,
)

RESULTS = ROOT / "bench" / "results"
LIMITS = {"ratio": 1.2, "merge_publish": 2.0}
_STEP = re.compile(r"<== publish \((?P<seconds>[0-9.]+) s\)")


def _nox(repo: GitRepo, env: dict[str, str], *args: str) -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "nox", *args], cwd=repo.path,
                            env={**clean_env(), **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, check=False)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"nox {' '.join(args)} failed in {repo.path}:\n{result.stdout}")
    return elapsed, result.stdout


def _service(path: Path, *, multi_arch: bool) -> GitRepo:
    extra = ("multi-arch = true\n" if multi_arch else "") + RIG_TARGETS
    repo = make_service(path, extra=extra)
    repo.tag("1.0.0")
    repo.checkout("-b", "feature/bench")
    return repo


def _release(repo: GitRepo, tmp: Path, run: int) -> float:
    repo.commit(f"change {run}", files={"demo_svc/change.py": f"N = {run}\n"})
    with RegistryServer(tmp / f"registry-{repo.path.name}-{run}") as registry, \
            IndexServer(tmp / f"index-{repo.path.name}-{run}") as index:
        assert isinstance(registry, RegistryServer)
        assert isinstance(index, IndexServer)
        env = {**github_env(tmp, "refs/heads/feature/bench"),
               **destinations(registry.address, index.url)}
        return _nox(repo, env, "-s", "release")[0]


def _merge(repo: GitRepo, tmp: Path) -> tuple[float, float]:
    """(the merge command, its publish step) of a split build of ``repo``."""
    records = tmp / "records"
    with RegistryServer(tmp / "registry-split") as registry, \
            IndexServer(tmp / "index-split") as index:
        assert isinstance(registry, RegistryServer)
        assert isinstance(index, IndexServer)
        env = {**github_env(tmp, "refs/heads/feature/bench"),
               **destinations(registry.address, index.url)}
        _nox(repo, env, "-s", "dist", "distcopy")
        for target in ("amd64", "arm"):
            _nox(repo, env, "-s", "docker", "--", "--target", target, "--stage", str(records))
        whole, out = _nox(repo, env, "-s", "release", "--", "--merge", str(records))
    found = _STEP.search(out)
    if found is None:
        raise SystemExit(f"the merge printed no publish step:\n{out}")
    return whole, float(found["seconds"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--check", action="store_true", help="fail when a target is missed")
    args = parser.parse_args(argv)
    times: dict[str, list[float]] = {"per_target": [], "multi_arch": []}
    merges: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory(prefix="multiarch-bench-") as name:
        tmp = Path(name)
        per_target = _service(tmp / "per-target", multi_arch=False)
        multi = _service(tmp / "multi-arch", multi_arch=True)
        _release(per_target, tmp, 0)  # warm the build cache of both kinds alike
        _release(multi, tmp, 0)
        for run in range(1, args.runs + 1):
            for key, repo in (("per_target", per_target), ("multi_arch", multi)):
                times[key].append(_release(repo, tmp, run))
                print(f"[bench] {key} run {run}: {times[key][-1]:.2f} s", file=sys.stderr)
        for run in range(args.runs):
            merge_repo = _service(tmp / f"split-{run}", multi_arch=True)
            merges.append(_merge(merge_repo, tmp / f"split-{run}-work"))
    median = {k: statistics.median(v) for k, v in times.items()}
    measured = {"ratio": median["multi_arch"] / median["per_target"],
                "merge_publish": statistics.median(m[1] for m in merges)}
    result: dict[str, object] = {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()}",
        "runs": times,
        "median": median,
        **measured,
        "merge_whole": statistics.median(m[0] for m in merges),
        "merges": merges,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "multiarch.json").write_text(json.dumps(result, indent=2) + "\n")
    missed = [k for k, limit in LIMITS.items() if measured[k] > limit]
    print(f"per-target release  {median['per_target']:6.2f} s   runs "
          f"{' '.join(f'{t:.2f}' for t in times['per_target'])}")
    print(f"multi-arch release  {median['multi_arch']:6.2f} s   runs "
          f"{' '.join(f'{t:.2f}' for t in times['multi_arch'])}")
    print(f"ratio multi/per     {measured['ratio']:6.3f}     target <= {LIMITS['ratio']}  "
          f"{'MISSED' if 'ratio' in missed else 'met'}")
    print(f"merge (whole)       {statistics.median(m[0] for m in merges):6.2f} s")
    print(f"merge publish step  {measured['merge_publish']:6.2f} s   target <= "
          f"{LIMITS['merge_publish']} s  {'MISSED' if 'merge_publish' in missed else 'met'}")
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
