"""Benchmark: reading a manifest over HTTP (`Registry`) against ``docker buildx imagetools``.

Verification reads about a dozen manifests and digests after every release. This compares one
read through the tool's registry client with one through python-on-whales'
``buildx.imagetools.inspect`` (a ``docker`` process each time), on a registry on loopback
holding one small image; medians of ``--runs`` alternating reads go to stdout and to
bench/results/registry.json (docs/contributing.md, benchmark).

    python bench/registry_reads.py --runs 10
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the test suite's registry helpers

from python_on_whales import docker  # noqa: E402

from brewblox_release._registry import Registry  # noqa: E402
from brewblox_release._servers import RegistryServer  # noqa: E402
from tests.test_registry import push_image  # noqa: E402


def _seconds(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    ns = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, RegistryServer(Path(tmp) / "registry") as server:
        push_image(server.address, "demo/svc", "1.0.0", {"org.opencontainers.image.title": "svc"})
        registry = Registry(f"{server.address}/demo/svc")
        ref = f"{server.address}/demo/svc:1.0.0"
        http, cli = [], []
        for _ in range(ns.runs):
            http.append(_seconds(lambda: registry.manifest("1.0.0")))
            cli.append(_seconds(lambda: docker.buildx.imagetools.inspect(ref)))
    result = {"runs": ns.runs, "http_ms": round(statistics.median(http) * 1000, 1),
              "imagetools_ms": round(statistics.median(cli) * 1000, 1)}
    result["ratio"] = round(result["imagetools_ms"] / result["http_ms"], 1)
    print(f"manifest read  HTTP {result['http_ms']} ms  imagetools inspect "
          f"{result['imagetools_ms']} ms  ratio {result['ratio']}")
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    (ROOT / "bench" / "results" / "registry.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
