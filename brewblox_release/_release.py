"""The pipeline: `prepare` decides a run (context, version, plan), then the plan is carried out;
`release` is docs/sessions.md's ``release`` session."""

from __future__ import annotations

import contextlib
import functools
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from packaging.version import Version

from . import _ci as ci, _project as project, _sign as sign, _version as version_mod
from ._ci import CiContext, Event
from ._config import Config
from ._dockerconfig import DockerConfig, has_login, login as docker_login
from ._environment import exposed
from ._errors import BuildError, ConfigError, CredentialsError, ReleaseError, VersionError
from ._hosts import is_loopback, registry_host, split_image
from ._identity import OIDC_VARS
from ._multiarch import Record, built_as, make_tags, own_tag, own_tags, read_records, stage
from ._plan import ImagePlan, highest_final, make_plan
from ._prepared import Options, Pushed, Run, Summary
from ._project import TagRule
from ._run import background, check_stopping, environ, log, step
from ._stages import uses_template
from ._tags import as_version
from ._verify import published_by, published_versions, verify

if TYPE_CHECKING:  # the registry (urllib.request), dist and index load on use
    from ._registry import Registry


def _local_ref(ctx: CiContext, state: version_mod.GitState, tags: TagRule) -> CiContext:
    # A tag of the service no index takes (a local part) raises; one that is no version at all
    # (another service's, "nightly") is not the service's: None.
    tagged = [(found, tag) for tag in state.head_tags if (found := tags.version(tag)) is not None]
    if tagged:
        return ctx.with_ref(f"refs/tags/{max(tagged)[1]}")
    if state.branch:
        return ctx.with_ref(f"refs/heads/{state.branch}")
    raise ReleaseError("HEAD is detached and carries no release tag: check out a branch or a "
                       "tag, or say which ref to release with --ref refs/heads/NAME")


def prepare(root: Path | str, options: Options, env: Mapping[str, str] | None = None, *,
            config: Config | None = None) -> Run:
    """Read the configuration (unless given, as loaded from ``env``), the context and the
    version, and make the plan."""
    env = dict(environ() if env is None else env)
    config = config or project.configuration(root, env)
    ctx = ci.detect(env)
    if options.ref:
        ctx = ctx.with_ref(options.ref)
    # Before anything: does the build take its version from git (or stamp a static one)?
    source = project.version_source(config.root, stamp=config.stamp_version)
    compute = functools.partial(version_mod.compute, config.root, config.name, source=source,
                                branch=ctx.branch)
    with ThreadPoolExecutor(max_workers=1) as pool:  # setuptools_scm imports while git runs
        computed = pool.submit(compute)
        state = version_mod.git_state(config.root)
    version: Callable[[], str] = computed.result
    if not options.ref and ctx.event is Event.LOCAL and (options.publish or options.rehearse):
        ctx = _local_ref(ctx, state, source.tags)
    ctx = ctx.checked_out(state.commit)
    # What may publish needs the whole history and a clean tree; a tag that is not the
    # service's ("nightly") builds only.
    publishing = not (ctx.fork or ctx.doubt or ctx.refusal) and (
        (ctx.event is Event.BRANCH and ctx.branch not in config.quiet_branches)
        or (ctx.event is Event.TAG and source.tags.version(ctx.tag or "") is not None))
    if state.shallow and publishing and not options.dry_run:
        log("shallow clone: fetching the full history and tags to compute the version")
        version_mod.unshallow(config.root, state)
        state = version_mod.git_state(config.root)
        version = compute  # with the full history
    elif state.shallow:
        log(version_mod.SHALLOW_WARNING)
    ctx = ci.tag_pushed_as_branch(ctx, state.head_tags, env)
    notes = [f"--ref {options.ref} changes nothing here: a pull request's run builds only"
             ] if options.ref and ctx.event is Event.PULL_REQUEST else []
    tagged = ctx.event is Event.TAG  # released as its commit is, --allow-dirty or not
    if publishing and (tagged or not options.allow_dirty):
        try:
            version_mod.require_clean(config.root, state, tag=tagged)
        except VersionError as e:
            if not options.dry_run or tagged:  # a tag's version is wrong too: no plan to show
                raise
            notes.append(str(e))
    info = version_mod.VersionInfo(version(), state)
    plan = make_plan(ctx, info.version, config, tags=source.tags)
    if plan.latest and not options.rehearse:
        try:
            published = published_versions(config, env)
        except ReleaseError as e:
            if not options.dry_run:
                raise
            notes.append(f"what is published could not be read, so whether latest moves is "
                         f"decided by the real run: {e}")
            published = set()
        plan = make_plan(ctx, info.version, config, published, tags=source.tags)
    run = _target_share(Run(config, ctx, info, plan, options, env))
    if options.dry_run and run.plan.publishes:  # what the real run would do and refuse
        notes += [*sign.describe(run), *(f"the real run would stop: {problem}"
                                         for problem in preflight_problems(run))]
    if notes:
        run = replace(run, plan=replace(run.plan, reasons=(*run.plan.reasons, *notes)))
    return run


def _target_share(run: Run) -> Run:
    """A docker command's share of the run (``--target``): one image, no index upload; a stage
    signs nothing (the merge signs), so it needs no signing identity."""
    if not run.options.target:
        return run
    plan = run.plan
    image = plan.image(run.config.target(run.options.target).name)
    return replace(run, plan=replace(plan, images=(image,), upload=False),
                   config=replace(run.config, sign=run.config.sign and not run.options.stage))


def preflight_problems(run: Run) -> list[str]:
    """What the real run would refuse before building, a line each: ``--dry-run``'s notes."""
    return [str(problem) for problem in _problems(run, ask=True)]


def _problems(run: Run, *, ask: bool) -> list[ReleaseError]:
    """The settings' and credentials' problems, in the order the real run names them; then the
    index's simple API, where its settings are sound, if ``ask`` or the run stops anyway (every
    problem at once)."""
    index = _index_problems(run)
    found = index + _engine_problems(run) + _registry_problems(run) + sign.problems(run)
    if not index and (ask or found):
        found += _index_api_problems(run)
    return found


def preflight(run: Run) -> Callable[[], None]:
    """Stop, with every problem a line, unless each destination has sound settings and
    credentials; the returned function waits for the index's API, asked while things build
    (pypi-simple alone takes a quarter of a second to import)."""
    if problems := _problems(run, ask=False) or _trusted_publishing_problems(run):
        _stop(problems, "Nothing was built")
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
    if not _asks_index(run):
        return []
    try:
        index = run.index
    except ReleaseError as e:
        return [e]
    found: list[ReleaseError] = [ConfigError(problem) for problem in index.problems()]
    missing = index.missing_credentials() if run.plan.upload else ()
    if missing:
        one = len(missing) == 1
        found.append(CredentialsError(
            f"this run uploads {run.plan.version} to {index.display_upload_url} but "
            f"{' and '.join(missing)} {'is' if one else 'are'} not set: add "
            f"{'it' if one else 'them'} to the CI secrets (on PyPI an API token, with "
            "TWINE_USERNAME=__token__), or use trusted publishing on GitHub Actions (PyPI and "
            "TestPyPI)"))
    return found


def _trusted_publishing_problems(run: Run) -> list[ReleaseError]:
    """Whether the index mints an upload token for the run's OIDC identity: asked before
    anything is built, while nothing else runs, since GitHub's OIDC variables go back into the
    process environment for it (the real run only: minting is not a dry run's to do)."""
    if not run.plan.upload:
        return []
    index = run.index
    if not index.trusted_publishing or index.password is not None:
        return []
    with exposed(run.env, OIDC_VARS):
        why = index.trusted_publishing_problem(run.config.name)
    return [] if why is None else [CredentialsError(
        f"trusted publishing to {index.display_upload_url} gave no upload token: {why}")]


def _index_api_problems(run: Run) -> list[ReleaseError]:
    """The index's simple API, found: asked only once `_index_problems` found nothing."""
    if _asks_index(run):
        try:
            run.index.simple_api(run.config.name)
        except ReleaseError as e:
            return [e]
    return []


def _engine_problems(run: Run) -> list[ReleaseError]:
    """The docker CLI, which every image step runs (through python-on-whales)."""
    if run.plan.images and shutil.which("docker") is None:
        return [ReleaseError("the docker CLI is not on PATH: install docker with its buildx "
                             "plugin (docs/troubleshooting.md), or run from a machine that has "
                             "it")]
    return []


def _registry_problems(run: Run) -> list[ReleaseError]:
    """The registry's settings and credentials: read, not asked of any server."""
    try:
        image = run.config.require_image()
    except ReleaseError as e:
        return [e]
    if not any(image_plan.push for image_plan in run.plan.images):
        return []
    has_user, has_password = (bool(run.env.get(v)) for v in ("DOCKER_USERNAME", "DOCKER_PASSWORD"))
    if has_user != has_password:
        missing = "DOCKER_PASSWORD" if has_user else "DOCKER_USERNAME"
        return [CredentialsError(f"{missing} is not set but its partner is: set both, or "
                                 "neither to use an existing `docker login`")]
    if not (has_user or is_loopback(split_image(image)[0]) or has_login(image, env=run.env)):
        return [CredentialsError(
            f"this run pushes to {registry_host(image)} but DOCKER_USERNAME and "
            "DOCKER_PASSWORD are not set and there is no `docker login` for it: add them to "
            "the CI secrets")]
    return []


def preload(*modules: str) -> None:
    """Import ``modules`` in a thread (python-on-whales takes a fifth of a second, twine and
    pypi-simple a third) while the caller goes on; an error is the importing step's to report."""
    import importlib

    def load() -> None:
        for module in modules:
            with contextlib.suppress(Exception):
                importlib.import_module(module)

    background(load, "preload")


class Effects(Protocol):
    """What a release does to the world, a step each; `carry_out` decides their order.
    `Engine` does them for real; tests/test_pipeline.py records them, to check the order."""

    def preflight(self) -> None: ...
    def build(self) -> list[Path]: ...
    def confirm(self) -> None: ...
    def publishing(self, files: Sequence[Path]) -> AbstractContextManager[None]: ...
    def push(self) -> Pushed: ...
    def upload(self, files: Sequence[Path]) -> None: ...
    def sign(self, files: Sequence[Path], pushed: Pushed) -> None: ...
    def overtaken(self) -> str | None: ...
    def move_latest(self) -> None: ...
    def verify(self, pushed: Pushed) -> None: ...


def carry_out(run: Run, effects: Effects) -> None:
    """The order of every release (docs/how-it-works.md, The order): everything built before
    anything is published, the upload after the pushes, ``latest`` last, then exactly what was
    published is verified."""
    effects.preflight()
    files = effects.build()
    if not run.plan.publishes:
        return
    effects.confirm()
    pushes = any(image.push for image in run.plan.images)
    with step("publish"), effects.publishing(files):
        check_stopping()  # a stop that was swallowed somewhere (a finalizer) still stops here
        pushed = effects.push() if pushes else Pushed()
        if run.plan.upload:
            check_stopping()
            effects.upload(files)
        if pushes and run.config.sign:
            check_stopping()
            effects.sign(files, pushed)
        moves = any(t in run.config.latest_tags for i in run.plan.images if i.push for t in i.tags)
        if moves and effects.overtaken() is None:
            check_stopping()
            effects.move_latest()
    with step("verify"):
        effects.verify(pushed)


class Engine:
    """The real `Effects` of a run and their `Summary`. ``package``: not for a docker session;
    ``records``: a split build's merge, which builds the package alone (docs/multi-platform.md)."""

    _login: DockerConfig  # this run's, and its registry: set by `publishing`, before any push
    _registry: Registry

    def __init__(self, run: Run, *, package: bool = True,
                 records: Mapping[str, Record] | None = None) -> None:
        self.run, self.package, self.records = run, package, records
        self.summary = Summary()
        self._confirm: Callable[[], None] = lambda: None
        self._pushes = [image for image in run.plan.images if image.push]

    def preflight(self) -> None:
        self._confirm = preflight(self.run)

    def confirm(self) -> None:
        self._confirm()

    def build(self) -> list[Path]:
        from . import _dist as dist

        run = self.run
        if self.records is not None:  # the images were built by the stages
            with step(f"dist: {run.config.name} {run.info.version}"):
                return dist.build(run.config, run.info.version,
                                  source_date_epoch=run.info.git.commit_time)
        files: list[Path] = []
        with ThreadPoolExecutor(max_workers=2) as pool:
            checked = None
            if self.package:
                if run.plan.upload:
                    preload("pypi_simple", "twine.commands.upload", "twine.settings")
                with step(f"dist: {run.config.name} {run.info.version}"):
                    files = dist.build(run.config, run.info.version,
                                       source_date_epoch=run.info.git.commit_time, twine=False)
                    dist.copy(run.config)
                checked = pool.submit(dist.check, run.config, files)
            build_images(run, run.plan.images)
            if checked is not None:
                with step("twine check"):
                    checked.result()
        for image in (i for i in run.plan.images if not i.push):
            self.summary.add(f"engine {image.platform}", ", ".join(image.tags), "built and loaded")
        if self.package:
            for reason in run.plan.reasons:
                log(reason)
        return files

    @contextlib.contextmanager
    def publishing(self, files: Sequence[Path]) -> Iterator[None]:
        """This run's docker login for the pushes (removed when publishing ends, however it
        ends), once the registry answers and the index holds no release file in the way."""
        from ._registry import Registry

        run = self.run
        with contextlib.ExitStack() as stack:
            if self._pushes:
                repository = run.config.require_image()
                self._registry = Registry.from_env(repository, run.env)
                self._registry.tags()  # reachable, before anything is pushed
                self._login = stack.enter_context(docker_login(repository, run.env))
            if run.plan.upload:
                run.index.check(run.config.name, files, release=not run.plan.is_dev)
            yield

    def push(self) -> Pushed:
        """Every tag of the pushed images but ``latest``: pushed, or made from their digests."""
        from . import _docker as docker  # python-on-whales

        run, pushes, login = self.run, self._pushes, self._login
        if run.config.multi_arch or self.records is not None:
            records = self.records
            if records is None:  # this run built the images: push each under a tag of its own
                with ThreadPoolExecutor(max_workers=len(pushes)) as pool:
                    staged = pool.map(lambda i: stage(run, i, None, login), pushes)
                    records = {record.target: record for record in staged}
            return make_tags(run, records, login, self._registry, self.summary)
        batches = [[r for r, t in zip(image.refs, image.tags, strict=True)
                    if t not in run.config.latest_tags] for image in pushes]
        with ThreadPoolExecutor(max_workers=len(pushes)) as pool:
            digests = list(pool.map(functools.partial(docker.push, config=login), batches))
        pushed = Pushed()
        for image, refs, found in zip(pushes, batches, digests, strict=True):
            for ref in refs:
                tag = ref.rsplit(":", 1)[1]
                pushed.images[tag] = found.get(ref) or self._registry.digest(tag) or ""
                self.summary.add(f"registry {image.platform}", ref, "pushed")
        return pushed

    def upload(self, files: Sequence[Path]) -> None:
        run = self.run
        trusted = run.index.trusted_publishing  # twine reads GitHub's OIDC variables itself
        attest = run.config.sign and trusted
        if attest:
            sign.attest_files(files, run.env)
        elif run.config.sign:
            log("sign = true: PEP 740 attestations of the package are made with trusted "
                "publishing on GitHub Actions only; the package is uploaded without them")
        with exposed(run.env, OIDC_VARS) if trusted else contextlib.nullcontext():
            outcomes = run.index.upload(run.config.name, files, release=not run.plan.is_dev,
                                        attestations=attest)
        for outcome in outcomes:
            self.summary.add(f"index {run.index.display_upload_url}", outcome.path.name,
                             outcome.status)

    def sign(self, files: Sequence[Path], pushed: Pushed) -> None:
        from python_on_whales import DockerException

        config = self.run.config
        with step("sign"):
            bases = {}  # each pushed target's BASE_IMAGE and its image id in the engine, if there
            for image in self._pushes:
                args = {**config.build_args, **config.target(image.target).build_args}
                if (base := args.get("BASE_IMAGE")) and base not in bases:
                    with contextlib.suppress(DockerException):
                        bases[base] = str(self._login.client().image.inspect(base).id)
            sign.sign(self.run, self._registry, pushed, own_tags(self.run, self._pushes),
                      files=files, base_images=bases, docker_config=self._login,
                      summary=self.summary)

    def overtaken(self) -> str | None:
        """Why ``latest`` must not move after all: a higher release finished while this ran."""
        run = self.run
        top = highest_final(published_by(run))
        if top is None or top <= Version(run.plan.version):
            return None
        reason = (f"{top} was published while this release ran: latest stays on it, not "
                  f"{run.plan.version}")
        log(reason)
        moving = [t for i in self._pushes for t in i.tags if t in run.config.latest_tags]
        self.summary.add("registry", ", ".join(moving), f"skipped: {reason}")
        return reason

    def move_latest(self) -> None:
        """Each ``latest`` tag moved in the registry to the manifest this run pushed (not pushed
        from the engine, where another build may have re-tagged it)."""
        is_latest, moved = self.run.config.latest_tags, set()
        for image in self._pushes:
            source = own_tag(self.run, image)
            for tag in (t for t in image.tags if t in is_latest):
                if (source, tag) not in moved:
                    moved.add((source, tag))
                    self._registry.tag(source, tag)
                    log(f"moved {image.repository}:{tag} to {source}")
                    self.summary.add(f"registry {image.platform}", f"{image.repository}:{tag}",
                                     f"moved to {source}")

    def verify(self, pushed: Pushed) -> None:
        verify(self.run, self.summary, pushed)


def build_images(run: Run, images: Sequence[ImagePlan]) -> None:
    """Build the images of ``images`` at once, after checking that each ``pkg/`` is current."""
    from . import _dist as dist, _docker as docker

    for image in images:
        dist.check_context(run.config, run.config.target(image.target), run.info.version)
    host = {"gitlab": "https://gitlab.com", "azure": None}.get(run.context.provider,
                                                               "https://github.com")
    repo = run.context.repository
    source = f"{host}/{repo}" if host and repo else None

    def one(image: ImagePlan) -> ImagePlan:
        built = built_as(run, image)
        with step(f"image {image.target} ({image.platform})"):
            docker.build(run.config, built, version=run.info.version,
                         revision=run.info.git.commit, created=run.info.git.commit_time,
                         source=source, prefix=f"[{image.target}] " if len(images) > 1 else "")
            if image.push and not uses_template(run.config.root /
                                                run.config.target(image.target).context):
                _holds_this_version(run, built)
        return built

    with ThreadPoolExecutor(max_workers=max(1, len(images))) as pool:
        futures = [pool.submit(one, image) for image in images]
    failed: list[ReleaseError] = []
    for future in futures:  # every image that failed is named, not the first alone
        error = future.exception()
        if error is None:
            built = future.result()
            log(f"built {built.target} image: {', '.join(built.refs)}")
        elif isinstance(error, ReleaseError):
            failed.append(error)
        else:
            raise error
    if failed:
        kinds = {type(error) for error in failed}
        raise (kinds.pop() if len(kinds) == 1 else ReleaseError)(
            "\n".join(str(error) for error in failed))


def _holds_this_version(run: Run, image: ImagePlan) -> None:
    """Before anything is pushed: the image of a Dockerfile not made from the template (whose
    stages refuse another wheel) holds the version just built, read by running it; where it
    cannot run here (a builder of another machine, no python3), verification reads it after."""
    from . import _docker as docker

    name, version = run.config.name, run.info.version
    try:
        got = docker.package_version(image.refs[0], image.platform, name, pull=False)
    except ReleaseError as e:
        log(f"the {image.target} image was not run to read its version before the push ({e}); "
            "verification reads it after")
        return
    if as_version(got) != Version(version):
        raise BuildError(f"the {image.target} image holds {name} {got}, not {version}, the "
                         "version just built: its Dockerfile must install the wheel that "
                         "`nox -s distcopy` put in pkg/; nothing was published")


def merge(run: Run, directory: Path) -> Summary:
    """The second half of a split build (docs/multi-platform.md): check the stage records in
    ``directory``, then release from them (the package built again: reproducibly)."""
    if not run.plan.publishes:
        for reason in run.plan.reasons:
            log(reason)
        return Summary()
    engine = Engine(run, records=read_records(run, directory))  # before anything: whole
    carry_out(run, engine)
    return engine.summary


def release(run: Run) -> Summary:
    """The whole plan: preflight, dist, distcopy, build every image, publish, verify."""
    engine = Engine(run)
    carry_out(run, engine)
    return engine.summary
