"""Images: build each target with ``docker buildx`` through python-on-whales, push, check.
python-on-whales is imported in the functions that use it: it costs about half a second."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from . import _stages as stages
from ._config import Config, Target, normalise_platform
from ._dockerconfig import DockerConfig
from ._errors import BuildError, CredentialsError, EmulationError, PublishError
from ._plan import ImagePlan
from ._run import ATTEMPTS, TransientError, check_stopping, detail, environ, log, redact, retrying
from ._secret import display_url

if TYPE_CHECKING:
    from python_on_whales import DockerException


T = TypeVar("T")
_REFUSED = ("unauthorized", "denied", "authentication required", "forbidden",
            "no basic auth credentials")
#: Answers that no retry changes, and that are not about credentials.
_PERMANENT = ("manifest invalid", "name unknown", "name invalid")
#: The arm platforms' emulators: tonistiigi/binfmt's name, and Debian's binfmt handler.
_EMULATORS = {"linux/arm/v7": ("arm", "qemu-arm"), "linux/arm/v6": ("arm", "qemu-arm"),
              "linux/arm64": ("arm64", "qemu-aarch64")}
#: A line of the template's stages that says why they stopped, or warns (``imagebuild.say``).
_STAGE_ERROR = re.compile(r"brewblox-release: error: (.+)")
_STAGE_WARNING = re.compile(r"brewblox-release: warning: (.+)")
#: The line ``docker push`` ends with: ``TAG: digest: sha256:... size: N``.
_PUSHED = re.compile(r"\bdigest: (sha256:[0-9a-f]{64})\b")


def labels(config: Config, version: str, revision: str, source: str | None,
           created: int) -> dict[str, str]:
    """The OCI labels of docs/image.md."""
    return {
        "org.opencontainers.image.version": version,
        "org.opencontainers.image.revision": revision,
        "org.opencontainers.image.created":
            datetime.fromtimestamp(created, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "org.opencontainers.image.title": config.name,
        **({"org.opencontainers.image.source": source} if source else {}),
    }


def build_args(config: Config, target: Target, version: str) -> dict[str, str]:
    """``VERSION`` and ``PACKAGE``, then the config's build args, then the target's own."""
    return {"PACKAGE": config.name, "VERSION": version, **config.build_args, **target.build_args}


def _wrap(e: DockerException, what: str) -> str:
    """One line: what failed, and the last line docker said about it (the rest was shown)."""
    detail = "\n".join(x for x in (e.stdout, e.stderr) if x).strip().splitlines()
    last = detail[-1].strip() if detail else "its output is above"
    return redact(f"{what} failed (docker exit code {e.return_code}): {last}")


def _builder(builder: str | None) -> tuple[str, list[str]] | None:
    """The builder's driver and platforms (``buildx inspect --bootstrap``), None if unknown."""
    from python_on_whales import DockerException, docker

    try:
        found = docker.buildx.inspect(builder, bootstrap=True)
    except DockerException:
        return None
    return found.driver or "", [p for node in found.nodes or [] for p in node.platforms or []]


def _local_handler_off(platform: str) -> str | None:
    """The binfmt handler of ``platform`` when it exists on this machine and is disabled (the
    ``docker`` driver reports the platforms its engine found when it started)."""
    host = environ().get("DOCKER_HOST", "")
    binfmt = Path("/proc/sys/fs/binfmt_misc")
    if platform not in _EMULATORS or (host and not host.startswith("unix://")) or \
            not (binfmt / "status").exists():
        return None
    handler = _EMULATORS[platform][1]
    with contextlib.suppress(OSError, IndexError):
        if (binfmt / handler).read_text().splitlines()[0].strip() == "enabled":
            return None
    return handler


def check_emulation(platform: str, builder: str | None = None) -> None:
    """Raise `EmulationError` when the builder says it cannot build ``platform``
    (docs/multi-platform.md: asked of the builder, not of this machine)."""
    found = _builder(builder)
    name = f"builder {builder}" if builder else "the current builder"
    if found is None:
        raise EmulationError(f"buildx cannot inspect {name}: check `docker buildx ls` (and the "
                             "builder setting or BUILDX_BUILDER)")
    driver, platforms = found
    platforms = [normalise_platform(each) or each for each in platforms]
    off = _local_handler_off(platform) if driver == "docker" else None
    if platform in platforms and off is None:
        return
    last = platform.rsplit("/", 1)[-1]
    arch, handler = _EMULATORS.get(platform, (last, f"qemu-{last}"))
    why = (f"the {off} binfmt handler of this machine's engine is disabled" if off else
           f"it builds {', '.join(platforms) or 'nothing'}")
    raise EmulationError(
        f"{name} cannot run {platform} programs ({why}), and this build runs one (a RUN in the "
        f"image's own stages, or pip for a dependency with no {platform} wheel). Enable "
        f"emulation on the engine's machine with `docker run --privileged --rm "
        f"tonistiigi/binfmt --install {arch}` or, on Debian, `apt-get install qemu-user-static "
        f"binfmt-support && update-binfmts --enable {off or handler}`; or set builder to one that "
        "builds it natively")


def build(config: Config, image: ImagePlan, *, version: str, revision: str, created: int,
          source: str | None = None, prefix: str = "") -> None:
    """Build one target into the engine under the plan's refs (``prefix`` marks its lines); again
    with ``IMAGE_PIP=yes`` where the template says it needs pip in the image (docs/image.md)."""
    from python_on_whales import DockerException, docker

    target = config.target(image.target)
    context = config.root / target.context
    template = stages.uses_template(context)
    if template and (context / "pkg").is_dir():
        stages.ship(context / "pkg", config.name, version)
    args = build_args(config, target, version)
    while True:
        # Steps in the target's image (a Dockerfile of another kind, the IMAGE_PIP=yes build)
        # need emulation; the template's own build does not (docs/multi-platform.md).
        in_image = args.get("IMAGE_PIP", "no") != "no"
        if not template or in_image:
            check_emulation(target.platform, config.builder)
        if template and in_image:
            _refuse_recorded_credentials(context, args)
        said: list[str] = []
        stage_error = None  # the template's stages say what to do in one line: the last one
        warnings: set[str] = set()  # and what the user should know (buildx repeats lines)
        try:
            stream = docker.buildx.build(
                context, platforms=[target.platform], builder=config.builder,
                tags=list(image.refs), build_args=args,
                labels=labels(config, version, revision, source, created), load=True,
                provenance=False, network=config.network, progress="plain",
                stream_logs=True)
            for line in stream:  # type: ignore[union-attr]
                said += [line] if needs_image_pip(line) else []
                stage_error = _STAGE_ERROR.search(line) or stage_error
                if (warned := _STAGE_WARNING.search(line)) and warned[1] not in warnings:
                    warnings.add(warned[1])
                    log(f"{prefix}warning: {warned[1].strip()}")
                detail(f"{prefix}{line.rstrip()}")
        except DockerException as e:
            said += [e.stdout or "", e.stderr or ""]
            if args.get("IMAGE_PIP", "no") == "no" and any(map(needs_image_pip, said)):
                log(f"{prefix}building the {target.name} image again with IMAGE_PIP=yes: "
                    "pip installs in the image what has no wheel for "
                    f"{target.platform} (named above)")
                args = {**args, "IMAGE_PIP": "yes"}
                continue
            what = f"building the {target.name} image ({target.platform})"
            failed = redact(f"{what} failed: {stage_error[1].strip()}") if stage_error else \
                _wrap(e, what)
            try:  # a possible cause: the builder cannot run the target's programs
                check_emulation(target.platform, config.builder)
            except EmulationError as why:
                raise EmulationError(f"{failed}; {why}; nothing was published") from e
            raise BuildError(f"{failed}; nothing was published") from e
        break


#: An ``image-pip-yes`` stage of a template before pip's settings came through the deps stage.
_IMAGE_PIP_STAGE = re.compile(r"\bAS\s+image-pip-yes[ \t]*\n((?:(?!\s*FROM\b)[^\n]*\n)*)",
                              re.IGNORECASE)


def _refuse_recorded_credentials(context: Path, args: Mapping[str, str]) -> None:
    """Refuse a Dockerfile made from an earlier template that would write a URL's credentials
    (``PIP_INDEX_URL``'s) into the image's history, which is published with it."""
    stage = _IMAGE_PIP_STAGE.search((context / "Dockerfile").read_text(errors="replace"))
    for name in re.findall(r"^\s*ARG\s+(PIP_\w+)", stage[1] if stage else "",
                           re.MULTILINE | re.IGNORECASE):
        if any(display_url(url) != url for url in args.get(name, "").split()):
            raise BuildError(
                f"{context / 'Dockerfile'} is of an earlier template whose image-pip-yes stage "
                f"writes the build arg {name}, with its credentials, into the image's history: "
                "remove the ARG PIP_* lines of that stage (the current template's stages hand "
                "them over, docs/image.md); nothing was published")


def needs_image_pip(text: str) -> bool:
    """Whether buildx's output says the template's ``image-pip-no`` stage failed: a copy of
    the ``nothing-for-pip`` marker not found, so something must be installed in the image."""
    marker = str(stages.program().NOTHING_FOR_PIP)
    return any(marker in line and "not found" in line for line in text.splitlines())


def retrying_docker(what: str, action: Callable[[], T], *, backoff: float = 1.0) -> T:
    """A docker command ``action``, retried on transient faults (5xx, resets, refused
    connections); a refused login or image stops at once."""
    from python_on_whales import DockerException

    def attempt() -> T:
        try:
            return action()
        except DockerException as e:
            text = f"{e.stdout or ''}\n{e.stderr or ''}".lower()
            # docker push reports a refused login only as text: no exit code tells it apart.
            if any(word in text for word in _REFUSED):
                raise CredentialsError(
                    _wrap(e, what) + "\nthe registry refused the credentials: check "
                    "DOCKER_USERNAME and DOCKER_PASSWORD, and that they may push to the image "
                    "repository") from e
            if any(word in text for word in _PERMANENT):
                raise PublishError(_wrap(e, what) + "\nthe registry refused the image itself "
                                   "(a retry would not change that): check the image name "
                                   "and that the registry accepts this kind of manifest") from e
            said = (e.stderr or e.stdout or "").strip().splitlines() or ["?"]
            gave_up = PublishError(_wrap(e, what) + f"\ngave up after {ATTEMPTS} attempts; "
                                   "re-run the release to complete it")
            raise TransientError(gave_up, said[-1]) from e

    return retrying(what, attempt, backoff=backoff)


def push(refs: Iterable[str], config: DockerConfig | None = None) -> dict[str, str]:
    """Push the engine's ``refs``, with retries, logged in as ``config`` says; their digests."""
    client = (config or DockerConfig()).client()
    digests = {}
    for ref in refs:
        check_stopping()

        def one(ref: str = ref) -> str | None:
            found = None
            for _, line in client.image.push(ref, stream_logs=True) or ():
                text = line.decode(errors="replace").rstrip()
                detail(f"  {text}")
                if match := _PUSHED.search(text):
                    found = match.group(1)
            return found
        digest = retrying_docker(f"pushing {ref}", one)
        if digest is not None:
            digests[ref] = digest
        log(f"pushed {ref}" + (f" ({digest})" if digest else ""))
    return digests


def package_version(ref: str, platform: str, name: str, *, pull: bool = True,
                    config: DockerConfig | None = None) -> str:
    """The version of ``name`` installed in the image ``ref`` (pulled first with ``pull``)."""
    from python_on_whales import DockerException

    code = f"import importlib.metadata as m; print(m.version({name!r}))"
    client = (config or DockerConfig()).client()
    printed = []
    try:
        # Streamed: python-on-whales lets a container's stderr through to the terminal
        # otherwise, past the redactor.
        for source, raw in client.container.run(
                ref, ["-c", code], entrypoint="python3", remove=True, platform=platform,
                pull="always" if pull else "missing", stream=True):
            line = raw.decode(errors="replace").rstrip()
            if source == "stdout":
                printed.append(line)
            else:
                detail(f"  {line}")
    except DockerException as e:
        raise PublishError(_wrap(e, f"running {ref} to read its package version")) from e
    if not printed:
        raise PublishError(f"running {ref} to read its package version printed nothing")
    return printed[-1].strip()
