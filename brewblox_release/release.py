"""The pipeline: prepare a run (context, version, plan), then carry the plan out.

`prepare` decides; everything after it only executes the plan. `release` is docs/sessions.md's
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
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.version import InvalidVersion, Version

from . import ci, project
from . import version as version_mod
from .ci import CiContext, Event
from .config import Config
from .errors import CredentialsError, ReleaseError, VersionError
from .plan import DEFAULT_TAGS, ImagePlan, highest_final, make_plan
from .project import TagRule
from .run import background, log, redact, step
from .tags import LATEST

if TYPE_CHECKING:  # dist and index load on use: --dry-run needs neither
    from .dockerconfig import DockerConfig
    from .index import Index, Outcome
    from .multiarch import Record
    from .registry import Registry

from .prepared import Options, Run, Summary

__all__ = ["Options", "Run", "Summary", "prepare", "publish", "release", "verify"]


def _local_ref(ctx: CiContext, state: version_mod.GitState,
               tags: TagRule = DEFAULT_TAGS) -> CiContext:
    tagged = []
    for tag in state.head_tags:
        # A tag of the service that names no version an index takes (a local part, an epoch)
        # is refused here, in its own words (TagRule.version raises); a tag that is no
        # version at all (another service's, "nightly") is not the service's.
        found = tags.version(tag)
        if found is not None:
            tagged.append((found, tag))
    if tagged:
        return ctx.with_ref(f"refs/tags/{max(tagged)[1]}")
    if state.branch:
        return ctx.with_ref(f"refs/heads/{state.branch}")
    raise ReleaseError("HEAD is detached and carries no release tag: check out a branch or a "
                       "tag, or say which ref to release with --ref refs/heads/NAME")


def published_versions(config: Config, env: Mapping[str, str]) -> set[str]:
    """The versions of this project's releases, which decide where ``latest`` goes: the
    index's where the package is published (``pypi = true``; a tag in the registry that is
    not also on the index, ``20240101``, is no release of it); else the registry's version
    tags whose image carries this project's ``org.opencontainers.image.title``, read from the
    highest down to the first that does (only the highest release counts)."""
    if config.pypi:
        from .index import Index

        return Index.from_env(env, config.index_url).versions(config.name)
    if not config.image:
        return set()
    from .registry import Registry

    registry = Registry.from_env(config.image, env)
    prefix = config.targets[0].prefix
    candidates = []
    for tag in registry.tags():
        if tag.startswith(prefix):
            with contextlib.suppress(InvalidVersion):
                candidates.append((Version(tag[len(prefix):]), tag))
    for version, tag in sorted(candidates, reverse=True):
        if version.is_prerelease:
            continue
        labels = (registry.config(tag).get("config") or {}).get("Labels") or {}
        if labels.get("org.opencontainers.image.title") == config.name:
            return {str(version)}
    return set()


def prepare(root: Path | str, options: Options, env: Mapping[str, str] | None = None, *,
            config: Config | None = None) -> Run:
    """Read the configuration (unless given, as loaded from ``env``), the context and the
    version, and make the plan."""
    env = dict(os.environ if env is None else env)
    config = config or project.configuration(root, env)
    ctx = ci.detect(env)
    if options.ref:
        ctx = ctx.with_ref(options.ref)
    # Before anything: does the build take its version from git (or stamp a static one)?
    source = project.version_source(config.root, stamp=config.stamp_version)
    tags = source.tags
    compute = functools.partial(version_mod.compute, config.root, config.name, source=source,
                                branch=ctx.branch)
    with ThreadPoolExecutor(max_workers=1) as pool:  # setuptools_scm imports while git runs
        computed = pool.submit(compute)
        state = version_mod.git_state(config.root)
    version: Callable[[], str] = computed.result
    if not options.ref and ctx.event is Event.LOCAL and (options.publish or options.rehearse):
        ctx = _local_ref(ctx, state, tags)
    ctx = ctx.checked_out(state.commit)
    quiet = ctx.event is Event.BRANCH and ctx.branch in config.quiet_branches
    publishing = ctx.event in {Event.TAG, Event.BRANCH} and not quiet and not (
        ctx.fork or ctx.doubt or ctx.refusal)
    if state.shallow and publishing and not options.dry_run:
        log("shallow clone: fetching the full history and tags to compute the version")
        version_mod.unshallow(config.root, state)
        state = version_mod.git_state(config.root)
        version = compute  # with the full history
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
        try:
            published = published_versions(config, env)
        except ReleaseError as e:
            if not options.dry_run:
                raise
            notes.append(f"what is published could not be read, so whether latest moves is "
                         f"decided by the real run: {e}")
            published = set()
        plan = make_plan(ctx, info.version, config, published, tags=tags)
    run = Run(config, ctx, info, plan, options, env)
    if options.dry_run and plan.publishes:  # what the real run would do and refuse, as notes
        notes += _dry_run_notes(run)
    if notes:
        run = replace(run, plan=replace(plan, reasons=(*plan.reasons, *notes)))
    return run


def _dry_run_notes(run: Run) -> list[str]:
    from . import sign

    return [*sign.describe(run),
            *(f"the real run would stop: {problem}" for problem in preflight_problems(run))]


def preflight_problems(run: Run) -> list[str]:
    """Everything the real run would refuse before building, a line each (docs/how-it-works.md
    preflight); ``--dry-run`` shows them as notes. Empty when there is nothing to refuse."""
    from . import sign

    index = _index_problems(run)
    found = index + _registry_problems(run) + ([] if index else _index_api_problems(run))
    return [str(problem) for problem in found + sign.problems(run)]


def preflight(run: Run) -> Callable[[], None]:
    """Before anything is built: every destination the plan publishes to has complete,
    well-formed settings and credentials (or needs none); stops with every problem found, a
    line each. Then the index is asked for its simple API in a thread, while the package and
    images build (the question imports pypi-simple, a quarter of a second); the returned
    function waits for the answer and stops on a problem: call it before publishing.

    (Whether the builder can build a target is asked by `docker.build`, where emulation is
    needed: `docker.check_emulation`.)
    """
    from . import sign

    index = _index_problems(run)
    problems = index + _registry_problems(run) + sign.problems(run)
    if problems:  # stopping anyway: every problem at once
        _stop(problems + ([] if index else _index_api_problems(run)), "Nothing was built")
    if not _asks_index(run):
        return lambda: None
    asked = background(functools.partial(_index_api_problems, run), "preflight")

    def confirm() -> None:
        if found := asked():
            _stop(found, "Nothing was published")

    return confirm


def _stop(problems: Sequence[ReleaseError], outcome: str) -> None:
    lines = [str(problem) for problem in problems]
    lines[-1] += f". {outcome}"
    raise (type(problems[0]) if len(problems) == 1 else ReleaseError)("\n".join(lines))


def _asks_index(run: Run) -> bool:
    return bool(run.plan.publishes and run.config.pypi)  # the upload, `latest`, verify read it


def _index_problems(run: Run) -> list[ReleaseError]:
    """The index's settings and credentials: read, not asked of any server."""
    from .errors import ConfigError

    plan = run.plan
    if not _asks_index(run):
        return []
    try:
        index = run.index
    except ReleaseError as e:
        return [e]
    found: list[ReleaseError] = [ConfigError(problem) for problem in index.problems()]
    missing = index.missing_credentials() if plan.upload else ()
    if missing:
        one = len(missing) == 1
        found.append(CredentialsError(
            f"this run uploads {plan.version} to {index.display_upload_url} but "
            f"{' and '.join(missing)} {'is' if one else 'are'} not set: add "
            f"{'it' if one else 'them'} to the CI secrets (on PyPI an API token, with "
            "TWINE_USERNAME=__token__), or use trusted publishing on GitHub Actions (PyPI and "
            "TestPyPI)"))
    return found


def _index_api_problems(run: Run) -> list[ReleaseError]:
    """The index's simple API, found: asked of the index, so only once `_index_problems`
    found nothing in its settings."""
    if not _asks_index(run):
        return []
    try:
        run.index.simple_api(run.config.name)
    except ReleaseError as e:
        return [e]
    return []


def _registry_problems(run: Run) -> list[ReleaseError]:
    """The registry's settings and credentials: read, not asked of any server."""
    from . import dockerconfig
    from .hosts import is_loopback, registry_host, split_image

    try:
        image = run.config.require_image()
    except ReleaseError as e:
        return [e]
    if not any(image_plan.push for image_plan in run.plan.images):
        return []
    has_user = bool(run.env.get("DOCKER_USERNAME"))
    has_password = bool(run.env.get("DOCKER_PASSWORD"))
    if has_user != has_password:
        missing = "DOCKER_PASSWORD" if has_user else "DOCKER_USERNAME"
        return [CredentialsError(f"{missing} is not set but its partner is: set both, or "
                                 "neither to use an existing `docker login`")]
    if not (has_user or is_loopback(split_image(image)[0])
            or dockerconfig.has_login(image, env=run.env)):
        return [CredentialsError(
            f"this run pushes to {registry_host(image)} but DOCKER_USERNAME and "
            "DOCKER_PASSWORD are not set and there is no `docker login` for it: add them to "
            "the CI secrets")]
    return []


def preload(*modules: str) -> None:
    """Import ``modules`` in a thread (python-on-whales takes a fifth of a second, twine and
    pypi-simple a third) while the caller goes on to the work that waits on git, the package
    build or the engine; the step that uses a module waits for its import then, or reports
    the error of importing it."""
    import importlib

    def load() -> None:
        for module in modules:
            with contextlib.suppress(Exception):
                importlib.import_module(module)

    background(load, "preload")


def build_all(run: Run) -> list[Path]:
    """dist, distcopy, then every image (concurrently, while twine checks the package);
    nothing is published here."""
    from . import dist

    with ThreadPoolExecutor(max_workers=2) as pool:
        if run.plan.upload:
            preload("pypi_simple", "twine.commands.upload", "twine.settings")
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
    from .multiarch import built_as

    for image in images:
        dist.check_context(run.config, run.config.target(image.target), run.info.version)
    source = _source_url(run)

    def one(image: ImagePlan) -> docker.BuiltImage:
        with step(f"image {image.target} ({image.platform})"):
            return docker.build(run.config, built_as(run, image), version=run.info.version,
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


def publish(run: Run, files: Sequence[Path], summary: Summary,
            records: Mapping[str, Record] | None = None) -> None:
    """Push the images' tags, upload to the index, then move ``latest``: in that order, so that
    what cannot be undone (an index upload) and what users follow (``latest``) come last.

    The pushes use a docker config of this run's own where DOCKER_USERNAME/DOCKER_PASSWORD
    are set (removed when publishing ends, however it ends). ``latest`` is decided a second
    time right before it moves, from what the registry and the index hold then
    (docs/how-it-works.md), and
    moved in the registry to the manifest this run pushed (not pushed from the engine, whose
    local ``latest`` another build on the same engine may have re-tagged meanwhile).

    With ``multi-arch`` or stage ``records`` (a split build's merge) the tags are made from the
    pushed images' digests (`multiarch.make_tags`) instead of pushed from the engine.
    """
    from . import dockerconfig
    from .environment import exposed
    from .registry import Registry

    plan = run.plan
    pushes = [image for image in plan.images if image.push]
    is_latest = run.config.latest_tags
    with contextlib.ExitStack() as stack:
        login = dockerconfig.DockerConfig()
        registry = None
        if pushes:
            repository = run.config.require_image()
            registry = Registry.from_env(repository, run.env)
            registry.tags()  # reachable, before anything is pushed
            login = stack.enter_context(dockerconfig.login(repository, run.env))
        if plan.upload:  # reachable, and no release file in the way, before anything is pushed
            run.index.check(run.config.name, files, release=not plan.is_dev)

        _push_images(run, pushes, login, registry, summary, records=records)
        if plan.upload:
            trusted = run.index.trusted_publishing  # twine reads GitHub's OIDC variables itself
            attest = run.config.sign and trusted
            if attest:
                from . import sign

                sign.attest_files(files, run.env)
            elif run.config.sign:
                log("sign = true: PEP 740 attestations of the package are made with trusted "
                    "publishing on GitHub Actions only; the package is uploaded without them")
            with exposed(run.env, _OIDC_VARS) if trusted else contextlib.nullcontext():
                outcomes: list[Outcome] = run.index.upload(run.config.name, files,
                                                           release=not plan.is_dev,
                                                           attestations=attest)
            for outcome in outcomes:
                summary.add(f"index {run.index.display_upload_url}", outcome.path.name,
                            outcome.status)
        if run.config.sign and registry is not None and pushes:
            from . import sign

            with step("sign"):
                sign.sign(run, registry, _own_tags(run, pushes), files=files,
                          base_images=_base_images(run, pushes, login), docker_config=login,
                          summary=summary)
        moving = [tag for image in pushes for tag in image.tags if tag in is_latest]
        if registry is None or not moving:
            return
        reason = latest_overtaken(run)
        if reason is not None:
            log(reason)
            summary.add("registry", ", ".join(moving), f"skipped: {reason}")
            return
        moved = set()
        for image in pushes:
            source = next(t for t in image.tags if t not in is_latest)
            for tag in (t for t in image.tags if t in is_latest):
                if (source, tag) in moved:  # targets that share a prefix share one list
                    continue
                moved.add((source, tag))
                registry.tag(source, tag)
                log(f"moved {image.repository}:{tag} to {source}")
                summary.add(f"registry {image.platform}", f"{image.repository}:{tag}",
                            f"moved to {source}")


def _own_tags(run: Run, pushes: Sequence[ImagePlan]) -> list[str]:
    """Each pushed image's version or branch tag (a list's, under multi-arch)."""
    return list(dict.fromkeys(next(t for t in image.tags if t not in run.config.latest_tags)
                              for image in pushes))


def _base_images(run: Run, pushes: Sequence[ImagePlan], login: DockerConfig) -> dict[str, str]:
    """The base image of each pushed target (its ``BASE_IMAGE`` build arg) and the image id
    the engine holds for it, for the provenance; a base the engine does not hold is left out."""
    from python_on_whales import DockerException

    found = {}
    for image in pushes:
        target = run.config.target(image.target)
        base = {**run.config.build_args, **target.build_args}.get("BASE_IMAGE")
        if base and base not in found:
            with contextlib.suppress(DockerException):
                found[base] = str(login.client().image.inspect(base).id)
    return found


def _push_images(run: Run, pushes: Sequence[ImagePlan], login: DockerConfig,
                 registry: Registry | None, summary: Summary, *,
                 records: Mapping[str, Record] | None) -> None:
    """Every tag of the pushed images but ``latest``: pushed from the engine, or (multi-arch,
    a merge) made from the images' digests."""
    from . import docker

    is_latest = run.config.latest_tags
    if pushes and (run.config.multi_arch or records is not None):
        from . import multiarch

        assert registry is not None
        if records is None:  # this run built the images: push each under its staging tag
            with ThreadPoolExecutor(max_workers=len(pushes)) as pool:
                staged = pool.map(lambda image: multiarch.stage(run, image, None, login,
                                                                registry), pushes)
                records = {record.target: record for record in staged}
        multiarch.make_tags(run, records, login, registry, summary)
        return
    # Each image's tags but `latest`, the images at once.
    batches = [(image, [r for r, t in zip(image.refs, image.tags, strict=True)
                        if t not in is_latest]) for image in pushes]
    with ThreadPoolExecutor(max_workers=max(1, len(batches))) as pool:
        list(pool.map(functools.partial(docker.push, config=login),
                      [refs for _, refs in batches]))
    for image, refs in batches:
        for ref in refs:
            summary.add(f"registry {image.platform}", ref, "pushed")


#: GitHub's OIDC request variables, which twine's trusted publishing reads from os.environ.
_OIDC_VARS = ("ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_TOKEN")


def latest_overtaken(run: Run) -> str | None:
    """Why ``latest`` must not move to this release after all, or None: the second decision,
    right before it moves, from what the index and the registry hold now. A release of a
    higher version that finished while this one ran (two tag builds out of order) keeps it."""
    top = highest_final(published_versions(run.config, run.env))
    if top is not None and top > Version(run.plan.version):
        return (f"{top} was published while this release ran: latest stays on it, not "
                f"{run.plan.version}")
    return None


def pip_resolves(index: Index, name: str, *, pre: bool = False) -> str:
    """The version ``pip`` picks for ``name`` from the index (``--pre`` optionally)."""
    from packaging.utils import parse_wheel_filename

    from .secret import display_url

    with tempfile.TemporaryDirectory() as tmp:
        argv = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir",
                "--disable-pip-version-check", "--quiet", "--dest", tmp, name]
        if pre:
            argv.append("--pre")
        env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
        env["PIP_INDEX_URL"] = index.authenticated_simple_url(name)  # in no command line
        env["PIP_CONFIG_FILE"] = os.devnull  # this index only: no pip.conf's extra index
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
        if proc.returncode != 0:
            raise ReleaseError(redact(f"pip could not download {name} from "
                                      f"{display_url(index.simple_url)}: "
                                      f"{proc.stderr.strip()[-500:]}"))
        wheels = [p for p in Path(tmp).iterdir() if p.name.endswith(".whl")]
        if wheels:
            return str(parse_wheel_filename(wheels[0].name)[1])
        sdist = next(Path(tmp).iterdir())
        return sdist.name.removesuffix(".tar.gz").rsplit("-", 1)[1]


def verify(run: Run, summary: Summary) -> None:
    """docs/how-it-works.md: pip without --pre gets the highest final release; ``latest`` points
    at its
    images; every pushed image holds the version the plan published (read from the registry's
    copy of the image's top layers; where they do not tell, the image is pulled and run)."""
    from . import docker, dockerconfig
    from .registry import Registry

    plan, config = run.plan, run.config
    problems = _verify_index(run, summary) if config.pypi else []
    pushes = [image for image in plan.images if image.push]
    if pushes and config.sign:
        problems += _verify_signatures(run, pushes, summary)
    if pushes:
        registry = Registry.from_env(config.require_image(), run.env)
        tags = set(registry.tags())
        if config.multi_arch:
            from . import multiarch

            problems += multiarch.verify_lists(run, registry, summary)
            pushes = []  # each platform's image was read from the list
        # The targets this run published (a one-target session publishes its own: another
        # job may be moving the others' latest right now).
        published = {image.target for image in plan.images if image.push}
        for target in (t for t in config.targets if t.name in published):
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
        with ThreadPoolExecutor(max_workers=max(1, len(pushes))) as pool:
            read = list(pool.map(lambda i: registry.package_version(i.tags[0], config.name),
                                 pushes))
            if None in read:  # the top layers do not tell: pull and run (arm under qemu)
                with dockerconfig.login(config.require_image(), run.env) as login:
                    ran = pool.map(lambda i: docker.package_version(
                        i.refs[0], i.platform, config.name, config=login),
                        [i for i, got in zip(pushes, read, strict=True) if got is None])
                    read = [got if got is not None else next(ran) for got in read]
        found = [str(got) for got in read]
        for image, got in zip(pushes, found, strict=True):
            ref = image.refs[0]
            ok = Version(got) == Version(plan.version)
            summary.add("verify image", f"{ref} holds {config.name} {got}",
                        "ok" if ok else f"WRONG: expected {plan.version}")
            if not ok:
                problems.append(f"{ref} holds {config.name} {got}, not {plan.version}")
    if problems:
        raise ReleaseError("verification failed:\n" + "\n".join(problems))


def _verify_index(run: Run, summary: Summary) -> list[str]:
    """Plain ``pip install NAME`` resolves to the highest final release."""
    name = run.config.name
    top = highest_final(run.index.versions(name))
    if top is None:
        return []
    got = pip_resolves(run.index, name)
    ok = Version(got) == top
    summary.add("verify index", f"pip install {name} -> {got}",
                "ok" if ok else f"WRONG: expected {top}")
    return [] if ok else [f"pip install {name} resolves to {got}, not {top}"]


def _verify_signatures(run: Run, pushes: Sequence[ImagePlan], summary: Summary) -> list[str]:
    """``cosign verify`` and ``verify-attestation`` of every image this run signed."""
    from . import dockerconfig, sign
    from .registry import Registry

    image = run.config.require_image()
    refs = sign.references(Registry.from_env(image, run.env), _own_tags(run, pushes))
    with dockerconfig.login(image, run.env) as login:
        return sign.verify(run, refs, login, summary)


def merge(run: Run, directory: Path) -> Summary:
    """The second half of a split build (docs/multi-platform.md): check the stage records in
    ``directory``,
    build the package (reproducibly: the same files the stages built), upload it, make every
    tag from the records, move ``latest`` last, verify. Re-running a completed merge changes
    nothing: the same sources make the same lists, and the index skips files it holds."""
    from . import dist
    from .multiarch import read_records

    summary = Summary()
    if not run.plan.publishes:
        for reason in run.plan.reasons:
            log(reason)
        return summary
    records = read_records(run, directory)  # before anything: the records are whole
    confirm = preflight(run)
    with step(f"dist: {run.config.name} {run.info.version}"):
        files = dist.build(run.config, run.info.version,
                           source_date_epoch=run.info.git.commit_time)
    confirm()
    with step("publish"):
        publish(run, files, summary, records)
    with step("verify"):
        verify(run, summary)
    return summary


def release(run: Run) -> Summary:
    """The whole plan: preflight, dist, distcopy, build every image, publish, verify."""
    summary = Summary()
    confirm = preflight(run)
    files = build_all(run)
    for image in run.plan.images:
        if not image.push:
            summary.add(f"engine {image.platform}", ", ".join(image.tags), "built and loaded")
    for reason in run.plan.reasons:
        log(reason)
    if run.plan.publishes:
        confirm()
        with step("publish"):
            publish(run, files, summary)
        with step("verify"):
            verify(run, summary)
    return summary
