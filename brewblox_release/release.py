"""The pipeline: prepare a run (context, version, plan), then carry the plan out.

`prepare` decides; everything after it only executes the plan. `release` is SPEC §6's
``release`` session: preflight, dist, distcopy, build every image, publish, verify, summary.
"""

from __future__ import annotations

import contextlib
import functools
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.version import Version

from . import ci, project
from . import config as config_mod
from . import version as version_mod
from .ci import CiContext, Event
from .config import Config
from .errors import CredentialsError, ReleaseError, VersionError
from .plan import DEFAULT_TAGS, ImagePlan, Plan, highest_final, make_plan, tag_version
from .project import TagRule
from .run import log, redact, step
from .tags import LATEST

if TYPE_CHECKING:  # dist and index load on use: --dry-run needs neither
    from .index import Index, Outcome

__all__ = ["Options", "Run", "prepare", "publish", "release", "verify"]


@dataclass(frozen=True)
class Options:
    """The options of a command (SPEC §6); `commands.parse` makes them from the command line.

    Attributes:
        dry_run: say what would be done, change nothing.
        json: print the plan as JSON.
        publish: a manual release from a workstation: the checked-out ref as CI would see it.
        ref: ``refs/heads/NAME`` or ``refs/tags/NAME``: reproduce a CI run for that ref.
        allow_dirty: publish even though tracked files differ from the commit.
        rehearse: the whole release against throwaway servers on loopback (SPEC §9).
        target: the target of the ``docker`` command.
        ci, image, force: ``init``'s provider, image repository, and whether to overwrite.
    """

    dry_run: bool = False
    json: bool = False
    publish: bool = False
    ref: str | None = None
    allow_dirty: bool = False
    rehearse: bool = False
    target: str | None = None
    ci: str | None = None
    image: str | None = None
    force: bool = False


@dataclass(frozen=True)
class Run:
    """A prepared run: everything that was decided before anything is built."""

    config: Config
    context: CiContext
    info: version_mod.VersionInfo
    plan: Plan
    options: Options
    env: Mapping[str, str] = field(repr=False)

    @property
    def index(self) -> Index:
        from .index import Index

        return Index.from_env(self.env)


def _local_ref(ctx: CiContext, state: version_mod.GitState,
               tags: TagRule = DEFAULT_TAGS) -> CiContext:
    tagged = []
    for tag in state.head_tags:
        if not tags.is_default and tags.version(tag) is None:
            continue  # another service's tag (a monorepo)
        try:
            tagged.append((tag_version(tag, tags), tag))
        except VersionError:
            continue
    if tagged:
        return ctx.with_ref(f"refs/tags/{max(tagged)[1]}")
    if state.branch:
        return ctx.with_ref(f"refs/heads/{state.branch}")
    raise ReleaseError("HEAD is detached and carries no release tag: check out a branch or a "
                       "tag, or say which ref to release with --ref refs/heads/NAME")


def published_versions(config: Config, env: Mapping[str, str]) -> set[str]:
    """Versions already released: on the index, and as version tags in the registry."""
    found: set[str] = set()
    if config.pypi:
        from .index import Index

        found |= Index.from_env(env).versions(config.name)
    if config.image:
        from .registry import Registry

        prefix = config.targets[0].prefix
        found |= {t[len(prefix):] for t in Registry.from_env(config.image, env).tags()
                  if t.startswith(prefix)}
    return found


def prepare(root: Path | str, options: Options, env: Mapping[str, str] | None = None, *,
            config: Config | None = None) -> Run:
    """Read the configuration (unless given, as loaded from ``env``), the context and the
    version, and make the plan."""
    env = dict(os.environ if env is None else env)
    config = config or config_mod.load(root, env)
    ctx = ci.detect(env)
    tags = project.version_source(config.root).tags  # before anything: is git the source?
    with ThreadPoolExecutor(max_workers=1) as pool:  # setuptools_scm imports while git runs
        computed = pool.submit(version_mod.compute, config.root, config.name)
        state = version_mod.git_state(config.root)
    version: Callable[[], str] = computed.result
    if options.ref:
        ctx = ctx.with_ref(options.ref)
    elif ctx.event is Event.LOCAL and (options.publish or options.rehearse):
        ctx = _local_ref(ctx, state, tags)
    quiet = ctx.event is Event.BRANCH and ctx.branch in config.quiet_branches
    publishing = ctx.event in {Event.TAG, Event.BRANCH} and not ctx.fork and not quiet
    if state.shallow and publishing and not options.dry_run:
        log("shallow clone: fetching the full history and tags to compute the version")
        version_mod.unshallow(config.root, state)
        state = version_mod.git_state(config.root)
        version = functools.partial(version_mod.compute, config.root,  # with the full history
                                    config.name)
    elif state.shallow:
        log("warning: shallow clone: the version may be wrong (a publishing run fetches the "
            "full history)")
    notes: list[str] = []
    if publishing and not options.allow_dirty:
        try:
            version_mod.require_clean(config.root, state)
        except VersionError as e:
            if not options.dry_run:
                raise
            notes.append(str(e))
    info = version_mod.VersionInfo(version(), state)
    plan = make_plan(ctx, info.version, config, tags=tags)
    if plan.latest and not options.rehearse:
        plan = make_plan(ctx, info.version, config, published_versions(config, env), tags=tags)
    if notes:
        plan = replace(plan, reasons=(*plan.reasons, *notes))
    return Run(config, ctx, info, plan, options, env)


def preflight(run: Run) -> None:
    """Before anything is built: every destination has credentials, every target can build."""
    from . import docker

    plan, env = run.plan, run.env
    if plan.upload:
        missing = run.index.missing_credentials()
        if missing:
            raise CredentialsError(
                f"this run uploads {plan.version} to {run.index.upload_url} but {missing} is not "
                "set: add it to the CI secrets (an API token, with TWINE_USERNAME=__token__), or "
                "use trusted publishing on GitHub Actions. Nothing was built")
    if any(image.push for image in plan.images):
        image = run.config.require_image()
        has_user, has_password = bool(env.get("DOCKER_USERNAME")), bool(env.get("DOCKER_PASSWORD"))
        if has_user != has_password:
            missing = "DOCKER_PASSWORD" if has_user else "DOCKER_USERNAME"
            raise CredentialsError(f"{missing} is not set but its partner is: set both, or "
                                   "neither to use an existing `docker login`. Nothing was built")
        from .registry import is_loopback, split_image

        if not (has_user or docker.has_login(image) or is_loopback(split_image(image)[0])):
            raise CredentialsError(
                f"this run pushes to {docker.registry_host(image)} but DOCKER_USERNAME and "
                "DOCKER_PASSWORD are not set and there is no `docker login` for it: add them to "
                "the CI secrets. Nothing was built")
    else:
        run.config.require_image()
    for image_plan in plan.images:
        docker.check_emulation(image_plan.platform)


def _preload(*modules: str) -> None:
    """Import what the next steps use (python-on-whales half a second, twine and pypi-simple
    a third) in a thread, while the main thread waits on the package and image builds."""
    import importlib

    for module in modules:
        with contextlib.suppress(Exception):  # the step that uses it reports the error
            importlib.import_module(module)


def build_all(run: Run) -> list[Path]:
    """dist, distcopy, then every image (concurrently, while twine checks the package);
    nothing is published here."""
    from . import dist

    with ThreadPoolExecutor(max_workers=2) as pool:
        preload = ["python_on_whales"] if run.plan.images else []
        if run.plan.upload:
            preload += ["pypi_simple", "twine.commands.upload", "twine.settings"]
        pool.submit(_preload, *preload)
        with step(f"dist: {run.config.name} {run.info.version}"):
            files = dist.build(run.config, run.info.version,
                               source_date_epoch=run.info.git.commit_time, twine=False)
            dist.copy(run.config)
        checked = pool.submit(dist.check, run.config, files)
        build_images(run, run.plan.images)
        with step("twine check"):
            checked.result()
    return files


def build_images(run: Run, images: Sequence[ImagePlan]) -> None:
    """Build the images of ``images`` at once, after checking that each ``pkg/`` is current."""
    from . import dist, docker

    for image in images:
        dist.check_context(run.config, run.config.target(image.target), run.info.version)
    source = _source_url(run)

    def one(image: ImagePlan) -> docker.BuiltImage:
        with step(f"image {image.target} ({image.platform})"):
            return docker.build(run.config, image, version=run.info.version,
                                revision=run.info.git.commit, created=run.info.git.commit_time,
                                source=source,
                                prefix=f"[{image.target}] " if len(images) > 1 else "")

    with ThreadPoolExecutor(max_workers=max(1, len(images))) as pool:
        for built in pool.map(one, images):
            log(f"built {built.plan.target} image: {', '.join(built.plan.refs)}")


def _source_url(run: Run) -> str | None:
    repo = run.context.repository
    if not repo:
        return None
    host = {"gitlab": "https://gitlab.com", "azure": None}.get(run.context.provider,
                                                               "https://github.com")
    return f"{host}/{repo}" if host else None


@dataclass
class Summary:
    rows: list[tuple[str, str, str]] = field(default_factory=list)

    def add(self, where: str, what: str, result: str) -> None:
        self.rows.append((where, what, result))

    def render(self) -> str:
        if not self.rows:
            return "published nothing"
        widths = [max(len(r[i]) for r in self.rows) for i in range(3)]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                         for row in self.rows)


def publish(run: Run, files: Sequence[Path], summary: Summary) -> None:
    """Push the images' tags, upload to the index, then move ``latest``: in that order, so that
    what cannot be undone (an index upload) and what users follow (``latest``) come last."""
    from . import docker

    plan = run.plan
    pushes = [image for image in plan.images if image.push]
    if pushes:
        image = run.config.require_image()
        from .registry import Registry

        Registry.from_env(image, run.env).tags()  # reachable, before anything is pushed
        if docker.login(image, run.env):
            log(f"logged in to {docker.registry_host(image)} as DOCKER_USERNAME")
    if plan.upload:  # reachable, and no release file in the way, before anything is pushed
        run.index.check(run.config.name, files, release=not plan.is_dev)
    is_latest = {f"{p}{LATEST}" for p in (t.prefix for t in run.config.targets)}

    def push(latest: bool) -> None:
        """Each image's tags (its ``latest`` ones, or the others), the images at once."""
        batches = [(image, [r for r, t in zip(image.refs, image.tags, strict=True)
                            if (t in is_latest) == latest]) for image in pushes]
        with ThreadPoolExecutor(max_workers=max(1, len(batches))) as pool:
            list(pool.map(docker.push, [refs for _, refs in batches]))
        for image, refs in batches:
            for ref in refs:
                summary.add(f"registry {image.platform}", ref, "pushed")

    push(latest=False)
    if plan.upload:
        outcomes: list[Outcome] = run.index.upload(run.config.name, files,
                                                   release=not plan.is_dev)
        for outcome in outcomes:
            summary.add(f"index {run.index.upload_url}", outcome.path.name, outcome.status)
    push(latest=True)


def pip_resolves(index: Index, name: str, *, pre: bool = False) -> str:
    """The version ``pip`` picks for ``name`` from the index (``--pre`` optionally)."""
    from packaging.utils import parse_wheel_filename

    with tempfile.TemporaryDirectory() as tmp:
        argv = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir",
                "--disable-pip-version-check", "--quiet", "--dest", tmp, name]
        if pre:
            argv.append("--pre")
        env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
        env["PIP_INDEX_URL"] = index.authenticated_simple_url()  # in no command line
        env["PIP_CONFIG_FILE"] = os.devnull  # this index only: no pip.conf's extra index
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
        if proc.returncode != 0:
            raise ReleaseError(redact(f"pip could not download {name} from "
                                      f"{index.simple_url}: {proc.stderr.strip()[-500:]}"))
        wheels = [p for p in Path(tmp).iterdir() if p.name.endswith(".whl")]
        if wheels:
            return str(parse_wheel_filename(wheels[0].name)[1])
        sdist = next(Path(tmp).iterdir())
        return sdist.name.removesuffix(".tar.gz").rsplit("-", 1)[1]


def verify(run: Run, summary: Summary) -> None:
    """SPEC §10: pip without --pre gets the highest final release; ``latest`` points at its
    images; every pushed image holds the version the plan published (read from the registry's
    copy of the image's top layers; where they do not tell, the image is pulled and run)."""
    from . import docker
    from .registry import Registry

    plan, config = run.plan, run.config
    problems = []
    published = set()
    if config.pypi:
        published = run.index.versions(config.name)
        top = highest_final(published)
        if top is not None:
            got = pip_resolves(run.index, config.name)
            ok = Version(got) == top
            summary.add("verify index", f"pip install {config.name} -> {got}",
                        "ok" if ok else f"WRONG: expected {top}")
            if not ok:
                problems.append(f"pip install {config.name} resolves to {got}, not {top}")
    pushes = [image for image in plan.images if image.push]
    if pushes:
        registry = Registry.from_env(config.require_image(), run.env)
        tags = set(registry.tags())
        for target in config.targets:
            versions = {t[len(target.prefix):] for t in tags if t.startswith(target.prefix)}
            top = highest_final(versions)
            latest = f"{target.prefix}{LATEST}"
            if top is None or latest not in tags:
                continue
            want = registry.digest(f"{target.prefix}{top}")
            ok = want is not None and registry.digest(latest) == want
            summary.add("verify registry", f"{latest} -> {target.prefix}{top}",
                        "ok" if ok else "WRONG")
            if not ok:
                problems.append(f"{latest} does not point at {target.prefix}{top}")
        def pushed_version(image: ImagePlan) -> str:
            found = registry.package_version(image.tags[0], config.name)
            if found is not None:
                return found
            return docker.package_version(image.refs[0], image.platform, config.name)

        with ThreadPoolExecutor(max_workers=len(pushes)) as pool:  # arm runs under qemu
            found = list(pool.map(pushed_version, pushes))
        for image, got in zip(pushes, found, strict=True):
            ref = image.refs[0]
            ok = Version(got) == Version(plan.version)
            summary.add("verify image", f"{ref} holds {config.name} {got}",
                        "ok" if ok else f"WRONG: expected {plan.version}")
            if not ok:
                problems.append(f"{ref} holds {config.name} {got}, not {plan.version}")
    if problems:
        raise ReleaseError("verification failed:\n" + "\n".join(problems))


def release(run: Run) -> Summary:
    """The whole plan: preflight, dist, distcopy, build every image, publish, verify."""
    summary = Summary()
    preflight(run)
    files = build_all(run)
    for image in run.plan.images:
        if not image.push:
            summary.add(f"engine {image.platform}", ", ".join(image.tags), "built and loaded")
    for reason in run.plan.reasons:
        log(reason)
    if run.plan.publishes:
        with step("publish"):
            publish(run, files, summary)
        with step("verify"):
            verify(run, summary)
    return summary
