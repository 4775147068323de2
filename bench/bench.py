"""Benchmark: `nox -s release` against the seed's hand-run pipeline.

A reference service (a package with a few pure-Python dependencies, served by an "upstream"
pypiserver on loopback so that the images install them) is released two ways, side by side:

(a) the seed's pipeline as it was done by hand: ``python -m build``, copy ``dist/`` into both
    contexts, ``docker build --no-cache`` for each architecture with ``bench/seed.Dockerfile``
    (pip resolves and installs every dependency inside the image, under qemu for arm/v7), then
    ``docker push`` every tag;
(b) ``nox -s release`` in a GitHub Actions branch-push environment, publishing to a second
    pypiserver and a registry on loopback.

Cold: after ``docker builder prune -af``, to a fresh registry. Warm: after a one-line code change
committed in the service (a new dev version), to the registry of the cold run. Also measured: the
arm image's warm rebuild against its cold build (``nox -s docker-arm``, alone on the machine),
with a rebuild that changes nothing as the floor under both, and ``nox -s release --
--dry-run`` against ``nox -l``. Medians over ``--runs`` runs; the results go to
bench/results/latest.json and a table on stdout; the log of every command, each line stamped
with its time, to bench/results/bench.log.

Run it with ``nox -s bench -- --runs 3`` (a run takes about a minute and a half on two cores);
``--check`` makes a missed target fail the session, ``--fresh-build-env`` makes cold runs of (b)
pay for brewblox-release's kept build environment too (by default, like pip's cache for the
seed's ``python -m build``, it survives between runs).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

# The repository's root: tests.service makes the sample services of the test suite.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from packaging.utils import canonicalize_name, parse_wheel_filename

from brewblox_release._servers import IndexServer, RegistryServer
from tests import wheels
from tests.service import BASE_REPO, RIG_TARGETS, GitRepo, make_service

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
CACHE = BENCH / ".cache" / "wheels"
RESULTS = BENCH / "results"
SEED_DOCKERFILE = BENCH / "seed.Dockerfile"

NAME = "bench-svc"
MODULE = "bench_svc"
#: Pure-Python dependencies, each a py3-none-any wheel with no dependencies of its own.
DEPENDENCIES = ("attrs", "idna", "six", "typing-extensions", "packaging")
BRANCH = "feature/bench"
BRANCH_TAG = "feature-bench"
REPOSITORY = "bench/svc"

#: The issue's targets: (b)/(a) cold and warm, arm warm/cold, dry-run / nox -l.
TARGETS = {"cold": 0.6, "warm": 0.25, "arm": 0.2, "dry_run": 1.5}

#: The second reference service: aiohttp's dependency tree, four of them compiled.
AIO_NAME = "bench-aio"
AIO_MODULE = "bench_aio"
AIO_DEPENDENCIES = ("aiohttp",)
AIO_REPOSITORY = "bench/aio"
#: Its targets: the arm image cold and warm against the seed's way (pip in the image under
#: qemu, --no-cache), arm cold against amd64 cold; emulated seconds must be 0.
AIO_TARGETS = {"aio_cold": 0.4, "aio_warm": 0.2, "aio_arm_amd64": 1.5, "aio_emulated": 0.0}

#: Variables of the caller's environment that would change what the pipelines do.
FOREIGN = ("CI", "GITHUB_", "TRAVIS", "GITLAB_CI", "CI_", "TF_BUILD", "BUILD_", "SYSTEM_",
           "TWINE_", "DOCKER_USERNAME", "DOCKER_PASSWORD", "BREWBLOX_RELEASE_", "ACTIONS_")


@dataclass(frozen=True)
class Target:
    name: str
    platform: str
    context: str
    prefix: str
    base: str


IMAGES = (
    Target("amd64", "linux/amd64", "docker", "", f"{BASE_REPO}:bookworm-amd64"),
    Target("arm", "linux/arm/v7", "rpi-docker", "rpi-", f"{BASE_REPO}:bookworm-armv7"),
)


class BenchError(Exception):
    pass


# --- running commands ------------------------------------------------------------------------

class Log:
    """Every command's output, each line stamped with the seconds since the command started."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.file: TextIO = path.open("w")

    def note(self, text: str) -> None:
        stamp = datetime.now(timezone.utc).strftime("%H:%M:%S")
        self.file.write(f"=== {stamp} {text}\n")
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def progress(text: str) -> None:
    print(f"[bench] {text}", file=sys.stderr, flush=True)


def clean_env(**extra: str) -> dict[str, str]:
    """os.environ without CI and credential variables, and without PYTHONDONTWRITEBYTECODE
    (set in some sandboxes): an installed tool has its bytecode compiled, so every command
    is measured as it runs after its first run, not recompiling its modules each time."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(FOREIGN) and k != "PYTHONDONTWRITEBYTECODE"}
    env.update(extra)
    return env


def sh(log: Log, argv: Sequence[str | Path], *, cwd: Path | None = None,
       env: Mapping[str, str] | None = None) -> tuple[float, list[tuple[float, str]]]:
    """Run a command; return its wall time and its output lines with their times."""
    args = [str(a) for a in argv]
    log.note(f"$ {' '.join(args)}" + (f"  (in {cwd})" if cwd else ""))
    start = time.perf_counter()
    proc = subprocess.Popen(args, cwd=cwd, env=dict(env or clean_env()), text=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, errors="replace")
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        at = time.perf_counter() - start
        lines.append((at, line.rstrip("\n")))
        log.file.write(f"[{at:7.2f}] {line}")
    code = proc.wait()
    elapsed = time.perf_counter() - start
    log.note(f"exit {code} after {elapsed:.2f} s")
    if code != 0:
        tail = "\n".join(text for _, text in lines[-30:])
        raise BenchError(f"{' '.join(args)} exited with {code} (see {log.path}):\n{tail}")
    return elapsed, lines


def quiet(argv: Sequence[str]) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout.strip()


# --- the reference service ---------------------------------------------------------------------

def fetch_wheels() -> list[Path]:
    """The dependencies' wheels, downloaded once into bench/.cache/wheels."""
    CACHE.mkdir(parents=True, exist_ok=True)
    have = {parse_wheel_filename(p.name)[0] for p in CACHE.glob("*.whl")}
    missing = [d for d in DEPENDENCIES if canonicalize_name(d) not in have]
    if missing:
        progress(f"downloading wheels of {', '.join(missing)} into {CACHE}")
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                        "--only-binary=:all:", "--dest", str(CACHE), *missing], check=True)
    return sorted(CACHE.glob("*.whl"))


def make_reference_service(path: Path, upstream: IndexServer) -> GitRepo:
    """The service: the rig's targets, RUN steps on the host network, dependencies from the
    upstream index; tagged 0.1.0 and one commit after it (a dev version)."""
    marker = "build-args = { "
    if not RIG_TARGETS.startswith(marker):
        raise BenchError("tests.service.RIG_TARGETS changed: update make_reference_service")
    targets = RIG_TARGETS.replace(marker, f'{marker}PIP_INDEX_URL = "{upstream.simple_url}", ', 1)
    repo = make_service(path, NAME, image=REPOSITORY, dependencies=DEPENDENCIES,
                        extra='network = "host"\n' + targets)
    # An index refuses local versions (+g1234abc): the seed's builds dropped them too, so that
    # both pipelines build the same version from the same commit.
    # The seed's `python -m build` leaves build/ in the tree: ignored, like dist/.
    pyproject = (path / "pyproject.toml").read_text()
    scm = "[tool.setuptools_scm]\n"
    repo.commit("versions without a local part", files={
        "pyproject.toml": pyproject.replace(scm, f'{scm}local_scheme = "no-local-version"\n'),
        ".gitignore": (path / ".gitignore").read_text() + "build/\n"})
    repo.tag("0.1.0")
    code_change(repo, 0)
    return repo


def code_change(repo: GitRepo, n: int, name: str = NAME) -> str:
    """Commit a one-line code change: a new dev version. Returns the commit."""
    source = (f"from importlib.metadata import version\n\n__version__ = version({name!r})\n"
              f"CHANGE = {n}\n")
    return repo.commit(f"change {n}", files={f"{name.replace('-', '_')}/__init__.py": source})


def make_aio_service(path: Path, index: IndexServer) -> GitRepo:
    """The aiohttp service: like the reference service, with aiohttp's dependencies."""
    marker = "build-args = { "
    targets = RIG_TARGETS.replace(marker, f'{marker}PIP_INDEX_URL = "{index.simple_url}", ', 1)
    repo = make_service(path, AIO_NAME, image=AIO_REPOSITORY, dependencies=AIO_DEPENDENCIES,
                        extra='network = "host"\n' + targets)
    pyproject = (path / "pyproject.toml").read_text()
    scm = "[tool.setuptools_scm]\n"
    repo.commit("versions without a local part", files={
        "pyproject.toml": pyproject.replace(scm, f'{scm}local_scheme = "no-local-version"\n'),
        ".gitignore": (path / ".gitignore").read_text() + "build/\n"})
    repo.tag("0.1.0")
    code_change(repo, 0, AIO_NAME)
    return repo


# --- the two pipelines ---------------------------------------------------------------------------

@contextlib.contextmanager
def timed(steps: dict[str, float], name: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        steps[name] = steps.get(name, 0.0) + time.perf_counter() - start


def seed_refs(registry: str) -> dict[str, str]:
    return {t.name: f"{registry}/{REPOSITORY}:{t.prefix}{BRANCH_TAG}" for t in IMAGES}


def seed_release(log: Log, svc: Path, registry: str, upstream: IndexServer) -> dict[str, float]:
    """(a): the seed's pipeline, step by step as it was run by hand."""
    steps: dict[str, float] = {}
    env = clean_env()
    refs = seed_refs(registry)
    with timed(steps, "total"):
        with timed(steps, "dist"):
            shutil.rmtree(svc / "dist", ignore_errors=True)
            sh(log, [sys.executable, "-m", "build", "--outdir", "dist", "."], cwd=svc, env=env)
        with timed(steps, "distcopy"):
            for target in IMAGES:
                pkg = svc / target.context / "pkg"
                shutil.rmtree(pkg, ignore_errors=True)
                shutil.copytree(svc / "dist", pkg)
        for target in IMAGES:
            with timed(steps, f"build {target.name}"):
                sh(log, ["docker", "build", "--no-cache", "--platform", target.platform,
                         "--network", "host", "--build-arg", f"BASE_IMAGE={target.base}",
                         "--build-arg", f"PIP_INDEX_URL={upstream.simple_url}",
                         "--progress", "plain", "-f", SEED_DOCKERFILE, "-t", refs[target.name],
                         svc / target.context], env=env)
        with timed(steps, "push"):
            for ref in refs.values():
                sh(log, ["docker", "push", ref], env=env)
    return steps


def ci_env(workdir: Path, registry: str, index: IndexServer) -> dict[str, str]:
    """A GitHub Actions push of branch feature/bench, publishing to loopback."""
    payload = workdir / "event.json"
    # The repository itself, not a fork: a payload that names none builds only.
    payload.write_text(json.dumps({"repository": {"full_name": "o/r", "fork": False}}))
    return clean_env(
        GITHUB_ACTIONS="true", GITHUB_EVENT_NAME="push", GITHUB_REF=f"refs/heads/{BRANCH}",
        GITHUB_REPOSITORY="o/r", GITHUB_EVENT_PATH=str(payload),
        TWINE_REPOSITORY_URL=index.url, BREWBLOX_RELEASE_INDEX_URL=index.simple_url,
        BREWBLOX_RELEASE_IMAGE=f"{registry}/{REPOSITORY}")


#: Lines of `nox -s release` that end a step, for the profile of (b): start (nox, the version
#: and the plan), dist (and distcopy), images (both built), publish (pushes and uploads),
#: verify (the checks after publishing).
_MARKS = (("start", "event: "), ("dist", "copied "), ("images", "built "),
          ("publish", "uploaded "), ("publish", "pushed "), ("verify", "verify"))


def tool_release(log: Log, svc: Path, env: Mapping[str, str]) -> dict[str, float]:
    """(b): ``nox -s release``; the profile is read off the times of its output lines."""
    elapsed, lines = sh(log, [sys.executable, "-m", "nox", "-s", "release"], cwd=svc, env=env)
    steps = {"total": elapsed}
    last: dict[str, float] = {}
    for at, text in lines:
        for step, mark in _MARKS:
            if mark in text:
                last[step] = at
    previous = 0.0
    for step in ("start", "dist", "images", "publish", "verify"):
        if step in last:
            steps[step] = max(0.0, last[step] - previous)
            previous = last[step]
    steps["other"] = elapsed - previous
    return steps


def image_version(ref: str, platform: str) -> str:
    code = f"import importlib.metadata as m; print(m.version({NAME!r}))"
    return quiet(["docker", "run", "--rm", "--pull", "never", "--platform", platform,
                  "--entrypoint", "python3", ref, "-c", code]).splitlines()[-1]


def same_job(commit: str, refs_a: Mapping[str, str], refs_b: Mapping[str, str],
             expected: str) -> dict[str, Any]:
    """Assert that both pipelines' images of one commit hold the same package version."""
    found = {}
    for target in IMAGES:
        a = image_version(refs_a[target.name], target.platform)
        b = image_version(refs_b[target.name], target.platform)
        found[target.name] = {"seed": a, "release": b}
        assert a == b == expected, (
            f"{target.name} images of {commit[:10]} differ: seed {a}, release {b}, "
            f"expected {expected}")
    return {"commit": commit, "version": expected, "images": found}


def executed_steps(lines: Sequence[str]) -> list[str]:
    """The build steps (``[stage n/m] INSTRUCTION``) that BuildKit ran rather than took from
    its cache, read from ``--progress plain`` output (``[internal]`` and FROM left out)."""
    names: dict[str, str] = {}
    done: list[str] = []
    for line in lines:
        text = line.split("] ", 1)[1] if line.startswith("[arm] ") else line
        step, _, rest = text.partition(" ")
        if not step.startswith("#"):
            continue
        if rest.startswith("[") and not rest.startswith("[internal]") and "] FROM " not in rest:
            stage, _, instruction = rest.partition("] ")
            words = instruction.split()
            names.setdefault(step, " ".join([f"{stage}]", *words[:2 if words[:1] == ["COPY"]
                                                                  else 1]]))
        elif rest.startswith("DONE") and step in names and names[step] not in done:
            done.append(names[step])
    return done


def native_stages(dockerfile: str) -> set[str]:
    """The stages of a Dockerfile that run on the build host's platform: ``FROM
    --platform=$BUILDPLATFORM`` and the stages built on those. The others run the target's."""
    native: set[str] = set()
    for line in dockerfile.splitlines():
        found = re.match(r"FROM\s+(?:--platform=(\S+)\s+)?(\S+)\s+AS\s+(\S+)", line.strip(),
                         re.IGNORECASE)
        if found and ("BUILDPLATFORM" in (found[1] or "") or found[2] in native):
            native.add(found[3])
    return native


def emulated_seconds(lines: Sequence[str], native: set[str]) -> float:
    """The time of the RUN steps that ran in a target-platform stage, from ``--progress plain``
    output (``#12 [stage 2/3] RUN ...`` then ``#12 DONE 4.1s``): emulated for a foreign
    platform. A cached step has no DONE time; a second build in the output (the sessions'
    retry with IMAGE_PIP=yes) starts its step numbers again."""
    runs: dict[str, str] = {}
    total = 0.0
    for line in lines:
        text = line.split("] ", 1)[1] if line.startswith("[arm] ") else line
        step, _, rest = text.partition(" ")
        if not step.startswith("#"):
            continue
        if rest.startswith("[internal] load build definition"):
            runs.clear()
        elif rest.startswith("[") and "] RUN " in rest:
            label = rest[1:].partition("]")[0].split()
            runs[step] = label[0] if len(label) == 2 else ""  # "[2/3]": the only stage
        elif rest.startswith("DONE ") and step in runs and runs.pop(step) not in native:
            total += float(rest[len("DONE "):].rstrip("s"))
    return total


def prune_builder() -> None:
    quiet(["docker", "builder", "prune", "-af"])


def version_of(svc: Path) -> str:
    from brewblox_release._version import compute

    return compute(svc)


# --- the benchmark -------------------------------------------------------------------------------

@dataclass
class Samples:
    """Every measurement, by name: one value a run."""

    values: dict[str, list[float]]

    def add(self, name: str, value: float) -> None:
        self.values.setdefault(name, []).append(value)

    def median(self, name: str) -> float:
        return statistics.median(self.values[name])


@dataclass
class Bench:
    """One benchmark: the reference service, the indexes, and what was measured."""

    log: Log
    svc: GitRepo
    work: Path
    upstream: IndexServer
    uploads: IndexServer
    samples: Samples = field(default_factory=lambda: Samples({}))
    checks: list[dict[str, Any]] = field(default_factory=list)
    registries: list[str] = field(default_factory=list)
    warm_arm_steps: list[list[str]] = field(default_factory=list)
    fresh_build_env: bool = False
    aio: GitRepo | None = None
    aio_index: wheels.LoggedIndex | None = None
    aio_checks: list[dict[str, Any]] = field(default_factory=list)

    def run(self, i: int) -> None:
        """Run i: (a) and (b) cold then warm, then the arm image alone."""
        path, log = self.svc.path, self.log
        with contextlib.ExitStack() as stack:
            reg_a = stack.enter_context(RegistryServer(self.work / f"registry-a{i}"))
            reg_b = stack.enter_context(RegistryServer(self.work / f"registry-b{i}"))
            assert isinstance(reg_a, RegistryServer)
            assert isinstance(reg_b, RegistryServer)
            self.registries += [reg_a.address, reg_b.address]
            env_b = ci_env(self.work, reg_b.address, self.uploads)
            if self.fresh_build_env:  # made by the cold run, kept for the warm one
                env_b["BREWBLOX_RELEASE_CACHE"] = str(self.work / f"cache-{i}")
            refs_a, refs_b = seed_refs(reg_a.address), seed_refs(reg_b.address)
            for phase in ("cold", "warm"):
                commit = code_change(self.svc, 2 * i + (phase == "warm") + 1)
                version = version_of(path)
                if phase == "cold":
                    prune_builder()
                log.note(f"run {i} {phase} (a) seed, {version}")
                progress(f"run {i} {phase}: (a) seed pipeline, {version}")
                steps_a = seed_release(log, path, reg_a.address, self.upstream)
                if phase == "cold":
                    prune_builder()
                log.note(f"run {i} {phase} (b) nox -s release, {version}")
                progress(f"run {i} {phase}: (b) nox -s release, {version}")
                steps_b = tool_release(log, path, env_b)
                for name, value in steps_a.items():
                    self.samples.add(f"{phase}.seed.{name}", value)
                for name, value in steps_b.items():
                    self.samples.add(f"{phase}.release.{name}", value)
                self.checks.append({"run": i, "phase": phase,
                                    **same_job(commit, refs_a, refs_b, version)})
                progress(f"run {i} {phase}: seed {steps_a['total']:.1f} s, release "
                         f"{steps_b['total']:.1f} s, both images hold {version}")

        # The arm image alone: cold build after a prune, warm rebuild after a one-line change,
        # then the same again with nothing changed: the floor, what any rebuild costs at least.
        local = clean_env()
        nox = [sys.executable, "-m", "nox"]
        for phase in ("cold", "warm", "noop"):
            if phase == "warm":
                code_change(self.svc, 1000 + i)
            if phase != "noop":
                sh(log, [*nox, "-s", "dist", "distcopy"], cwd=path, env=local)
            if phase == "cold":
                prune_builder()
            log.note(f"run {i} arm {phase}")
            elapsed, lines = sh(log, [*nox, "-s", "docker-arm"], cwd=path, env=local)
            self.samples.add(f"arm.{phase}", elapsed)
            ran = executed_steps([text for _, text in lines])
            progress(f"run {i} arm {phase}: nox -s docker-arm {elapsed:.1f} s; build steps run: "
                     f"{'; '.join(ran) or 'none'}")
            if phase == "warm":
                # What the ratio stands for: a code change redoes no dependency work.
                redone = [step for step in ran if not step.startswith("[pkg ") and not (
                    step.startswith("[stage-") and step.endswith("COPY --from=pkg"))]
                assert not redone, f"the warm arm rebuild redid dependency steps: {redone}"
                self.warm_arm_steps.append(ran)
            if phase == "noop":
                assert not ran, f"the arm rebuild with nothing changed ran build steps: {ran}"
        self.samples.add("arm.buildx_noop", buildx_alone(log, path, local))


    def run_aio(self, i: int) -> None:
        """Run i of the aiohttp service: its arm image the seed's way (pip in the image under
        qemu, --no-cache) and with ``nox -s docker-arm``, cold then after a one-line change;
        its amd64 image cold; emulated seconds and the index's downloads of every cold build."""
        assert self.aio is not None
        assert self.aio_index is not None
        path, log, index = self.aio.path, self.log, self.aio_index
        local = clean_env()
        nox = [sys.executable, "-m", "nox"]
        template_native = native_stages((path / "rpi-docker" / "Dockerfile").read_text())
        seed_native = native_stages(SEED_DOCKERFILE.read_text())
        arm = IMAGES[1]
        for phase in ("cold", "warm"):
            code_change(self.aio, 2000 + 2 * i + (phase == "warm"), AIO_NAME)
            version = version_of(path)
            sh(log, [*nox, "-s", "dist", "distcopy"], cwd=path, env=local)
            log.note(f"aio run {i} {phase} seed arm, {version}")
            elapsed, lines = sh(log, [
                "docker", "build", "--no-cache", "--platform", arm.platform, "--network", "host",
                "--build-arg", f"BASE_IMAGE={arm.base}", "--build-arg",
                f"PIP_INDEX_URL={index.simple_url}", "--progress", "plain", "-f", SEED_DOCKERFILE,
                "-t", f"{AIO_REPOSITORY}:seed", path / arm.context], env=local)
            self.samples.add(f"aio.seed.arm.{phase}", elapsed)
            self.samples.add(f"aio.seed.arm.{phase}.emulated",
                             emulated_seconds([t for _, t in lines], seed_native))
            sessions = ["docker-amd64", "docker-arm"] if phase == "cold" else ["docker-arm"]
            for session in sessions:
                target = "amd64" if session == "docker-amd64" else "arm"
                if phase == "cold":
                    prune_builder()
                before = index.fetched()
                log.note(f"aio run {i} {phase} nox -s {session}")
                elapsed, lines = sh(log, [*nox, "-s", session], cwd=path, env=local)
                fetched = index.fetched() - before
                emulated = emulated_seconds([t for _, t in lines], template_native)
                self.samples.add(f"aio.{target}.{phase}", elapsed)
                self.samples.add(f"aio.{target}.{phase}.emulated", emulated)
                if phase == "cold":
                    # Each wheel of the target's dependency tree, once: one resolution, no pip
                    # in the image downloading them again.
                    assert fetched, f"the cold {target} build downloaded nothing"
                    assert set(fetched.values()) == {1}, f"downloaded more than once: {fetched}"
                    self.aio_checks.append({"run": i, "build": f"{target} cold",
                                            "files_fetched_once": sorted(fetched)})
                progress(f"aio run {i} {phase}: nox -s {session} {elapsed:.1f} s, emulated "
                         f"{emulated:.1f} s, {len(fetched)} files fetched")
            if i == 0 and phase == "warm":
                self.aio_checks.append({"run": i, "arm image": aio_probe(version)})
        progress(f"aio run {i}: seed arm {self.samples.values['aio.seed.arm.cold'][-1]:.1f} s "
                 f"cold, {self.samples.values['aio.seed.arm.warm'][-1]:.1f} s warm")


def aio_probe(version: str) -> dict[str, Any]:
    """The arm image (under qemu): this version, aiohttp with its compiled extensions."""
    code = ("import importlib.metadata as m, json, platform, aiohttp, multidict._multidict as a, "
            "yarl._quoting_c as b, frozenlist._frozenlist as c, propcache; "
            f"print(json.dumps({{'version': m.version({AIO_NAME!r}), 'machine': "
            "platform.machine(), 'extensions': [x.__file__.rsplit('/', 1)[1] for x in (a, b, c)]"
            "}))")
    found: dict[str, Any] = json.loads(quiet([
        "docker", "run", "--rm", "--pull", "never", "--platform", "linux/arm/v7",
        "--entrypoint", "python3", f"{AIO_REPOSITORY}:rpi-local", "-c", code]).splitlines()[-1])
    assert found["version"] == version, found
    assert found["machine"] == "armv7l", found
    assert all("arm-linux-gnueabihf" in name for name in found["extensions"]), found
    return found


def buildx_alone(log: Log, svc: Path, env: Mapping[str, str]) -> float:
    """``docker buildx build`` of the arm image with nothing changed, run directly with the
    session's build arguments: the engine's own floor, with no Python and no nox."""
    from brewblox_release import _config as config_mod
    from brewblox_release._docker import build_args

    config = config_mod.load(svc, env)
    target = config.target("arm")
    argv = ["docker", "buildx", "build", "--platform", target.platform, "--load",
            "--provenance", "false", "--progress", "plain", "--tag", f"{REPOSITORY}:floor"]
    argv += ["--network", config.network] if config.network else []
    for name, value in build_args(config, target, version_of(svc)).items():
        argv += ["--build-arg", f"{name}={value}"]
    elapsed, lines = sh(log, [*argv, svc / target.context], env=env)
    ran = executed_steps([text for _, text in lines])
    assert not ran, f"docker buildx build with nothing changed ran build steps: {ran}"
    progress(f"docker buildx build alone, nothing changed: {elapsed:.1f} s")
    return elapsed


def quick_commands(log: Log, svc: Path, env: Mapping[str, str], rounds: int,
                   samples: Samples) -> None:
    """``nox -l`` and ``nox -s release -- --dry-run``, interleaved, after one warm-up each."""
    nox = [sys.executable, "-m", "nox"]
    commands = {"nox_list": [*nox, "-l"], "dry_run": [*nox, "-s", "release", "--", "--dry-run"]}
    for argv in commands.values():
        sh(log, argv, cwd=svc, env=env)
    for _ in range(rounds):
        for name, argv in commands.items():
            elapsed, _ = sh(log, argv, cwd=svc, env=env)
            samples.add(f"quick.{name}", elapsed)


def report(samples: Samples, checks: list[dict[str, Any]], warm_arm_steps: list[list[str]],
           args: argparse.Namespace, started: float, *,
           aio_checks: list[dict[str, Any]] | None = None) -> tuple[dict[str, Any], bool]:
    m = samples.median
    ratios = {
        "cold": m("cold.release.total") / m("cold.seed.total"),
        "warm": m("warm.release.total") / m("warm.seed.total"),
        "arm": m("arm.warm") / m("arm.cold"),
        "dry_run": m("quick.dry_run") / m("quick.nox_list"),
    }
    met = {k: ratios[k] <= TARGETS[k] for k in TARGETS}
    if "aio.arm.cold" in samples.values:
        ratios["aio_cold"] = m("aio.arm.cold") / m("aio.seed.arm.cold")
        ratios["aio_warm"] = m("aio.arm.warm") / m("aio.seed.arm.warm")
        ratios["aio_arm_amd64"] = m("aio.arm.cold") / m("aio.amd64.cold")
        # Not a median: every build of every run must have run nothing under emulation.
        ratios["aio_emulated"] = max(max(samples.values[f"aio.arm.{phase}.emulated"])
                                     for phase in ("cold", "warm"))
        met.update({k: ratios[k] <= AIO_TARGETS[k] for k in AIO_TARGETS})
    # No targets: why the arm ratio is what it is. The floor is the share of the cold build
    # that a rebuild costs even when nothing changed; the work ratio is the share of the cold
    # build's own work (above that floor) that a one-line change redoes.
    ratios["arm_floor"] = m("arm.noop") / m("arm.cold")
    ratios["arm_work"] = (max(0.0, m("arm.warm") - m("arm.noop")) /
                          (m("arm.cold") - m("arm.noop")))
    ratios["arm_engine_floor"] = m("arm.buildx_noop") / m("arm.cold")
    results = {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "runs": args.runs,
        "quick_rounds": args.quick_rounds,
        "wall_time_s": round(time.perf_counter() - started, 1),
        "machine": {
            "cpus": os.cpu_count(), "python": platform.python_version(),
            "docker": quiet(["docker", "version", "-f", "{{.Server.Version}}"]),
            "buildx": quiet(["docker", "buildx", "version"]),
        },
        "medians_s": {k: round(m(k), 3) for k in samples.values},
        "samples_s": {k: [round(v, 3) for v in vs] for k, vs in samples.values.items()},
        "ratios": {k: round(v, 3) for k, v in ratios.items()},
        "targets": TARGETS,
        "aio_targets": AIO_TARGETS,
        "aio_checks": aio_checks or [],
        "met": met,
        "fresh_build_env": args.fresh_build_env,
        "same_job": checks,
        "warm_arm_steps_run": warm_arm_steps,
    }
    return results, all(met.values())


def table(results: dict[str, Any]) -> str:
    med, samples = results["medians_s"], results["samples_s"]
    ratios, met = results["ratios"], results["met"]

    def secs(key: str) -> list[str]:
        return [f"{med[key]:.2f} s", " ".join(f"{v:.2f}" for v in samples[key]), "", ""]

    def ratio(key: str, what: str) -> list[str]:
        return [f"{ratios[key]:.3f}", what, f"<= {TARGETS[key]}",
                "met" if met[key] else "MISSED"]

    rows: list[list[str]] = [["measurement", "median", "runs / detail", "target", ""]]
    for phase in ("cold", "warm"):
        rows.append([f"(a) seed pipeline, {phase}", *secs(f"{phase}.seed.total")])
        rows.append([f"(b) nox -s release, {phase}", *secs(f"{phase}.release.total")])
        rows.append([f"  ratio b/a {phase}", *ratio(phase, "median b / median a")])
    rows.append(["arm cold build (nox -s docker-arm)", *secs("arm.cold")])
    rows.append(["arm warm rebuild (nox -s docker-arm)", *secs("arm.warm")])
    rows.append(["  ratio arm warm/cold", *ratio("arm", "median warm / median cold")])
    rows.append(["arm rebuild, nothing changed", *secs("arm.noop")])
    rows.append(["  floor: no-op/cold", f"{ratios['arm_floor']:.3f}",
                 "what any rebuild costs, as a share of the cold build", "", ""])
    rows.append(["docker buildx build alone, no change", *secs("arm.buildx_noop")])
    rows.append(["  engine floor: buildx no-op/cold", f"{ratios['arm_engine_floor']:.3f}",
                 "the engine's share alone, without nox or Python", "", ""])
    rows.append(["  work: (warm-no-op)/(cold-no-op)", f"{ratios['arm_work']:.3f}",
                 "the share of the cold build's work that a code change redoes", "", ""])
    rows.append(["nox -l", *secs("quick.nox_list")])
    rows.append(["nox -s release -- --dry-run", *secs("quick.dry_run")])
    rows.append(["  ratio dry-run / nox -l", *ratio("dry_run", "median / median")])
    if "aio.arm.cold" in med:
        aio_targets = results["aio_targets"]

        def aio_ratio(key: str, what: str) -> list[str]:
            return [f"{ratios[key]:.3f}", what, f"<= {aio_targets[key]}",
                    "met" if met[key] else "MISSED"]

        rows.append(["aiohttp service (arm/v7 unless said)", "", "", "", ""])
        for phase in ("cold", "warm"):
            rows.append([f"  seed's way (pip under qemu), {phase}",
                         *secs(f"aio.seed.arm.{phase}")[:2],
                         f"emulated {med[f'aio.seed.arm.{phase}.emulated']:.2f} s", ""])
            rows.append([f"  nox -s docker-arm, {phase}", *secs(f"aio.arm.{phase}")[:2],
                         f"emulated {med[f'aio.arm.{phase}.emulated']:.2f} s", ""])
            rows.append([f"  ratio {phase}", *aio_ratio(f"aio_{phase}", "template / seed")])
        rows.append(["  nox -s docker-amd64, cold", *secs("aio.amd64.cold")])
        rows.append(["  ratio arm cold / amd64 cold",
                     *aio_ratio("aio_arm_amd64", "median / median")])
        rows.append(["  emulated seconds, template", f"{ratios['aio_emulated']:.2f} s",
                     "the most of any cold or warm arm build", "<= 0.0",
                     "met" if met["aio_emulated"] else "MISSED"])
        once = [c for c in results["aio_checks"] if "files_fetched_once" in c]
        rows.append(["  index: cold builds", f"{len(once)} ok",
                     "each file fetched once (" + ", ".join(
                         f"{c['build']} {len(c['files_fetched_once'])}" for c in once[:2]) + ")",
                     "", ""])
    rows.append(["", "", "", "", ""])
    rows.append(["profile (medians)", "", "", "", ""])
    for phase in ("cold", "warm"):
        for who in ("seed", "release"):
            prefix = f"{phase}.{who}."
            parts = [f"{k[len(prefix):]} {v:.1f}" for k, v in med.items()
                     if k.startswith(prefix) and not k.endswith(".total")]
            rows.append([f"  {who} {phase}", f"{med[prefix + 'total']:.2f} s", ", ".join(parts),
                         "", ""])
    steps = sorted({step for run in results["warm_arm_steps_run"] for step in run})
    rows.append(["arm warm rebuild: steps run", "", "; ".join(steps) or "none (all cached)",
                 "", ""])
    versions = sorted({c["version"] for c in results["same_job"]})
    rows.append(["same job (a) vs (b), both arches", f"{len(results['same_job'])} ok",
                 "versions " + ", ".join(versions), "", ""])
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                     for row in rows)


def check_rig() -> None:
    for argv in (["docker", "buildx", "version"],
                 ["docker", "image", "inspect", *(t.base for t in IMAGES)]):
        if subprocess.run(argv, capture_output=True, check=False).returncode != 0:
            raise BenchError(f"{' '.join(argv)} failed: run `bash .ci/provision.sh` as root")


def remove_images(prefixes: Sequence[str]) -> None:
    """Remove the images the benchmark made (best effort): their tags, then the images that
    only their pushes' digests still name."""
    listed = quiet(["docker", "image", "ls", "--digests", "--format",
                    "{{.Repository}}:{{.Tag}} {{.ID}}"]).splitlines()
    mine = [line.split() for line in listed if line.startswith(tuple(prefixes))]
    refs = [ref for ref, _ in mine if not ref.endswith(":<none>")]
    for batch in (refs, sorted({image for _, image in mine})):
        if batch:
            subprocess.run(["docker", "image", "rm", *batch], capture_output=True, check=False)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=3, help="cold/warm runs (median; default 3)")
    parser.add_argument("--quick-rounds", type=int, default=15,
                        help="rounds of nox -l and --dry-run (median; default 15)")
    parser.add_argument("--check", action="store_true",
                        help="exit with 1 when a target is missed (a failed assertion always "
                             "fails)")
    parser.add_argument("--fresh-build-env", action="store_true",
                        help="cold runs of (b) also make brewblox-release's kept build "
                             "environment afresh (BREWBLOX_RELEASE_CACHE in a new directory)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--no-aiohttp", action="store_true",
                        help="leave out the aiohttp service (compiled dependencies)")
    parser.add_argument("--signing", action="store_true",
                        help="instead: a warm dev release with sign = true against one without "
                             "(`signing`)")
    parser.add_argument("--against", metavar="REV",
                        help="instead: this checkout's warm dev release and `nox -s version` "
                             "against revision REV's, in turn (`against`)")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.quick_rounds < 1:
        parser.error("--runs and --quick-rounds must be at least 1")
    return args


def _loopback(stack: contextlib.ExitStack, work: Path,
              pure_wheels: Sequence[Path]) -> tuple[IndexServer, IndexServer, RegistryServer]:
    """An upstream index holding ``pure_wheels``, an index for uploads and a registry, on
    loopback until ``stack`` closes (the images the registry got are removed then)."""
    upstream = stack.enter_context(IndexServer(work / "upstream"))
    uploads = stack.enter_context(IndexServer(work / "uploads"))
    registry = stack.enter_context(RegistryServer(work / "registry"))
    assert isinstance(upstream, IndexServer)
    assert isinstance(uploads, IndexServer)
    assert isinstance(registry, RegistryServer)
    stack.callback(remove_images, [f"{registry.address}/{REPOSITORY}", f"{REPOSITORY}:"])
    for wheel in pure_wheels:
        shutil.copy2(wheel, upstream.packages / wheel.name)
    return upstream, uploads, registry


def against(rev: str, runs: int) -> None:
    """This checkout's `nox -s version` and warm dev release against revision ``rev``'s.

    The reference service is released by a GitHub Actions branch push, after a one-line code
    change each time, to loopback servers: with this checkout's brewblox_release and with the
    one of a git worktree of ``rev`` (first on ``PYTHONPATH``), in turn, A B A B ... A first
    round warms both up (the kept build environment, the engine's cache) and is not counted.
    """
    check_rig()
    pure_wheels = fetch_wheels()
    RESULTS.mkdir(parents=True, exist_ok=True)
    samples = Samples({})
    with tempfile.TemporaryDirectory(prefix="brewblox-bench-against-") as tmp, \
            contextlib.ExitStack() as stack:
        work = Path(tmp)
        baseline = work / "baseline"
        quiet(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(baseline), rev])
        stack.callback(subprocess.run, ["git", "-C", str(ROOT), "worktree", "remove",
                                        "--force", str(baseline)], check=False)
        log = Log(RESULTS / "against.log")
        stack.callback(log.close)
        upstream, uploads, registry = _loopback(stack, work, pure_wheels)
        svc = make_reference_service(work / NAME, upstream)
        svc.checkout("-b", BRANCH)
        env = ci_env(work, registry.address, uploads)
        envs = {"this": env, rev: {**env, "PYTHONPATH": str(baseline)}}
        nox = [sys.executable, "-m", "nox"]
        change = 1000
        for i in range(runs + 1):
            for name, run_env in envs.items():
                change += 1
                code_change(svc, change)
                progress(f"round {i}: {name}")
                release, _ = sh(log, [*nox, "-s", "release"], cwd=svc.path, env=run_env)
                version, _ = sh(log, [*nox, "-s", "version"], cwd=svc.path, env=run_env)
                if i:
                    samples.add(f"{name} release", release)
                    samples.add(f"{name} version", version)
    for what in ("release", "version"):
        for name in envs:
            runs_text = " ".join(f"{v:.2f}" for v in samples.values[f"{name} {what}"])
            print(f"{what:<8} {name:<10} median {samples.median(f'{name} {what}'):6.2f} s   "
                  f"runs {runs_text}")
        ratio = samples.median(f"this {what}") / samples.median(f"{rev} {what}")
        print(f"{what:<8} ratio this / {rev}: {ratio:.3f}")


def signing(runs: int) -> None:
    """What ``sign = true`` adds to a warm dev release: the reference service released by a
    branch push after a one-line change, with a cosign key and ``sign = true``, against the same
    service without it, in turn; a first round warms both up and is not counted."""
    check_rig()
    pure_wheels = fetch_wheels()
    RESULTS.mkdir(parents=True, exist_ok=True)
    samples = Samples({})
    with tempfile.TemporaryDirectory(prefix="brewblox-bench-signing-") as tmp, \
            contextlib.ExitStack() as stack:
        work = Path(tmp)
        log = Log(RESULTS / "signing.log")
        stack.callback(log.close)
        upstream, uploads, registry = _loopback(stack, work, pure_wheels)
        password = "bench-password"  # noqa: S105 (a throwaway key's, made here)
        subprocess.run(["cosign", "generate-key-pair"], cwd=work, check=True,
                       capture_output=True, env={**clean_env(), "COSIGN_PASSWORD": password})
        key = (work / "cosign.key").read_text()
        services = {}
        for name, signed in (("unsigned", False), ("signed", True)):
            svc = make_reference_service(work / name, upstream)
            if signed:
                pyproject = (svc.path / "pyproject.toml").read_text()
                svc.commit("sign", files={"pyproject.toml": pyproject.replace(
                    'network = "host"\n', 'network = "host"\nsign = true\n')})
            svc.checkout("-b", BRANCH)
            env = ci_env(work, registry.address, uploads)
            env["BREWBLOX_RELEASE_IMAGE"] = f"{registry.address}/{REPOSITORY}-{name}"
            if signed:
                env |= {"COSIGN_PRIVATE_KEY": key, "COSIGN_PASSWORD": password}
            services[name] = (svc, env)
        nox = [sys.executable, "-m", "nox"]
        change = 2000
        for i in range(runs + 1):
            for name, (svc, env) in services.items():
                change += 1
                code_change(svc, change)
                progress(f"round {i}: {name}")
                elapsed, _ = sh(log, [*nox, "-s", "release"], cwd=svc.path, env=env)
                if i:
                    samples.add(name, elapsed)
    for name in ("unsigned", "signed"):
        runs_text = " ".join(f"{v:.2f}" for v in samples.values[name])
        print(f"warm dev release, {name:<8} median {samples.median(name):6.2f} s   runs "
              f"{runs_text}")
    with_sign, without = samples.median("signed"), samples.median("unsigned")
    print(f"signing adds {with_sign - without:.2f} s (ratio {with_sign / without:.3f})")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.signing:
        signing(args.runs)
        return 0
    if args.against:
        against(args.against, args.runs)
        return 0
    started = time.perf_counter()
    check_rig()
    pure_wheels = fetch_wheels()
    aio_wheels = [] if args.no_aiohttp else wheels.fetch(list(AIO_DEPENDENCIES))
    RESULTS.mkdir(parents=True, exist_ok=True)
    log = Log(RESULTS / "bench.log")
    work = Path(tempfile.mkdtemp(prefix="brewblox-bench-"))
    bench: Bench | None = None
    try:
        with IndexServer(work / "upstream") as upstream, \
                IndexServer(work / "uploads") as uploads, \
                wheels.LoggedIndex(work / "aio-index") as aio_index:
            assert isinstance(upstream, IndexServer)
            assert isinstance(uploads, IndexServer)
            assert isinstance(aio_index, wheels.LoggedIndex)
            for wheel in pure_wheels:
                shutil.copy2(wheel, upstream.packages / wheel.name)
            for wheel in aio_wheels:
                shutil.copy2(wheel, aio_index.packages / wheel.name)
            svc = make_reference_service(work / NAME, upstream)
            progress(f"reference service in {svc.path}; upstream index {upstream.url}; "
                     f"log in {log.path}")
            bench = Bench(log, svc, work, upstream, uploads, fresh_build_env=args.fresh_build_env)
            if aio_wheels:
                bench.aio = make_aio_service(work / AIO_NAME, aio_index)
                bench.aio_index = aio_index
                progress(f"aiohttp service in {bench.aio.path}; its index {aio_index.url}")
            for i in range(args.runs):
                bench.run(i)
                if bench.aio is not None:
                    bench.run_aio(i)
            progress(f"nox -l and --dry-run, {args.quick_rounds} rounds")
            quick_commands(log, svc.path, ci_env(work, "127.0.0.1:5000", uploads),
                           args.quick_rounds, bench.samples)
    finally:
        log.close()
        made = bench.registries if bench else []
        remove_images([*(f"{r}/{REPOSITORY}:" for r in made), f"{REPOSITORY}:",
                       f"{AIO_REPOSITORY}:"])
        if args.keep:
            progress(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    assert bench is not None
    results, ok = report(bench.samples, bench.checks, bench.warm_arm_steps, args, started,
                         aio_checks=bench.aio_checks)
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    print(f"\nwritten {RESULTS / 'latest.json'}; command log {RESULTS / 'bench.log'}")
    if not ok:
        missed = ", ".join(k for k, v in results["met"].items() if not v)
        print(f"targets missed: {missed}")
    return 0 if ok or not args.check else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        print(f"bench: {e}", file=sys.stderr)
        sys.exit(2)
