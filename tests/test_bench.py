"""The benchmark's own parsing and arithmetic: its assertions and ratios rest on them."""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_under_test", ROOT / "bench" / "bench.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


bench = _load()

#: `--progress plain` lines of a warm arm rebuild, as buildx 0.13 prints them (cut short).
WARM = """\
#1 [internal] load build definition from Dockerfile
#1 DONE 0.0s
#5 [stage-2 1/5] FROM docker.io/brewblox-release/python-base:bookworm-armv7
#5 DONE 0.0s
#7 [pkg 1/3] FROM docker.io/brewblox-release/python-base:bookworm-amd64
#7 CACHED
#8 [pkg 2/3] COPY pkg/ /pkg/
#8 DONE 0.0s
#9 [pkg 3/3] RUN set -e; mkdir -p /out/root /out/fallback
#9 DONE 0.2s
#10 [stage-2 2/5] COPY --from=deps /deps/root/ /
#10 CACHED
#13 [deps 3/3] RUN set -e; mkdir -p /deps/root /deps/fallback/wheels
#13 CACHED
#15 [stage-2 5/5] COPY --from=pkg /out/root/ /
#15 DONE 0.0s
#16 exporting to image
#16 DONE 0.0s
""".splitlines()


def test_executed_steps_are_the_named_steps_that_ran() -> None:
    assert bench.executed_steps(WARM) == [
        "[pkg 2/3] COPY pkg/", "[pkg 3/3] RUN", "[stage-2 5/5] COPY --from=pkg"]


def test_executed_steps_read_the_target_prefix_of_the_release() -> None:
    assert bench.executed_steps([f"[arm] {line}" for line in WARM]) == bench.executed_steps(WARM)


def test_a_fully_cached_build_ran_no_step() -> None:
    cached = [line.replace("DONE 0.0s", "CACHED").replace("DONE 0.2s", "CACHED")
              if not line.startswith(("#1 ", "#5 ", "#16 ")) else line for line in WARM]
    assert bench.executed_steps(cached) == []


def _results(medians: dict[str, float]) -> dict[str, Any]:
    samples = bench.Samples({name: [value] for name, value in medians.items()})
    args = argparse.Namespace(runs=1, quick_rounds=1, fresh_build_env=False)
    results: dict[str, Any] = bench.report(samples, [], [], args, time.perf_counter())[0]
    return results


@pytest.mark.engine
@pytest.mark.usefixtures("engine")  # the report records the engine's and buildx's versions
def test_report_ratios_and_the_arm_floor() -> None:
    results = _results({
        "cold.seed.total": 40.0, "cold.release.total": 20.0, "warm.seed.total": 20.0,
        "warm.release.total": 4.0, "arm.cold": 5.0, "arm.warm": 2.0, "arm.noop": 1.5,
        "arm.buildx_noop": 1.0, "quick.nox_list": 0.25, "quick.dry_run": 0.35})
    assert results["ratios"] == {"cold": 0.5, "warm": 0.2, "arm": 0.4, "dry_run": 1.4,
                                 "arm_floor": 0.3, "arm_work": round(0.5 / 3.5, 3),
                                 "arm_engine_floor": 0.2}
    assert results["met"] == {"cold": True, "warm": True, "arm": False, "dry_run": True}
    assert "engine floor: buildx no-op/cold" in bench.table(results)


#: `--progress plain` lines of a cold arm build with the template (cut short), then the
#: sessions' second build with IMAGE_PIP=yes, whose step numbers start again.
COLD_THEN_IMAGE_PIP = """\
#1 [internal] load build definition from Dockerfile
#1 DONE 0.0s
#10 [pkg 2/2] RUN python3 /opt/brewblox-release/imagebuild.py package /pkg /out
#10 DONE 0.4s
#12 [deps 2/2] RUN python3 /opt/brewblox-release/imagebuild.py deps /target /deps/req /deps
#12 DONE 1.7s
#14 [image-pip-no 1/2] COPY --from=deps /deps/nothing-for-pip/ /
#14 ERROR: "/deps/nothing-for-pip" not found: not found
#1 [internal] load build definition from Dockerfile
#1 DONE 0.0s
#12 [deps 2/2] RUN python3 /opt/brewblox-release/imagebuild.py deps /target /deps/req /deps
#12 CACHED
#14 [image-pip-yes 1/1] RUN --mount=type=bind,from=tools,source=/opt/brewblox-release
#14 DONE 12.5s
""".splitlines()


def test_native_stages_are_those_from_the_build_platform_and_their_children() -> None:
    template = (ROOT / "brewblox_release" / "templates" / "Dockerfile").read_text()
    assert bench.native_stages(template) == {"tools", "check", "pkg", "deps"}
    assert bench.native_stages((ROOT / "bench" / "seed.Dockerfile").read_text()) == set()


def test_emulated_seconds_are_the_runs_of_target_stages() -> None:
    native = {"tools", "pkg", "deps"}
    assert bench.emulated_seconds(COLD_THEN_IMAGE_PIP, native) == 12.5
    assert bench.emulated_seconds(COLD_THEN_IMAGE_PIP[:8], native) == 0.0
    seed = ["#7 [2/3] RUN pip install --break-system-packages /pkg/*.whl && rm -rf /pkg",
            "#7 DONE 4.1s"]
    assert bench.emulated_seconds(seed, set()) == 4.1
    assert bench.emulated_seconds([f"[arm] {line}" for line in seed], set()) == 4.1


@pytest.mark.engine
@pytest.mark.usefixtures("engine")
def test_report_of_the_aiohttp_service() -> None:
    results = _results({
        "cold.seed.total": 40.0, "cold.release.total": 20.0, "warm.seed.total": 20.0,
        "warm.release.total": 4.0, "arm.cold": 5.0, "arm.warm": 2.0, "arm.noop": 1.5,
        "arm.buildx_noop": 1.0, "quick.nox_list": 0.25, "quick.dry_run": 0.35,
        "aio.seed.arm.cold": 10.0, "aio.seed.arm.warm": 10.0, "aio.arm.cold": 3.0,
        "aio.arm.warm": 2.5, "aio.amd64.cold": 2.5, "aio.seed.arm.cold.emulated": 8.0,
        "aio.seed.arm.warm.emulated": 8.0, "aio.arm.cold.emulated": 0.0,
        "aio.arm.warm.emulated": 0.0, "aio.amd64.cold.emulated": 0.0})
    ratios, met = results["ratios"], results["met"]
    assert (ratios["aio_cold"], ratios["aio_warm"], ratios["aio_arm_amd64"]) == (0.3, 0.25, 1.2)
    assert ratios["aio_emulated"] == 0.0
    assert {k: met[k] for k in bench.AIO_TARGETS} == {
        "aio_cold": True, "aio_warm": False, "aio_arm_amd64": True, "aio_emulated": True}
    assert "seed's way (pip under qemu), cold" in bench.table(results)
