"""Images: build each target with ``docker buildx`` through python-on-whales, push, check.

python-on-whales is imported inside the functions that use it (it costs about half a second),
so that ``--dry-run`` and the other sessions do not pay for it. Its streamed output and its
errors pass the redactor of `run.py` like everything else.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from .config import Config, Target
from .errors import BuildError, CredentialsError, EmulationError, PublishError
from .plan import ImagePlan
from .registry import split_image
from .run import CommandError, log, mask, redact, run

if TYPE_CHECKING:
    from python_on_whales import DockerException

__all__ = ["BuiltImage", "build", "check_emulation", "login", "push", "registry_host"]

T = TypeVar("T")

#: Attempts and first pause of the retries of a push (transient faults: 5xx, resets, refused).
PUSH_ATTEMPTS = 4
PUSH_BACKOFF = 1.0
_REFUSED = ("unauthorized", "denied", "authentication required", "forbidden",
            "no basic auth credentials")
#: Answers that no retry changes, and that are not about credentials.
_PERMANENT = ("manifest invalid", "name unknown", "name invalid")


@dataclass(frozen=True)
class BuiltImage:
    """A target built into the engine under its refs."""

    plan: ImagePlan
    image_id: str


def registry_host(image: str) -> str:
    """The registry an image repository lives on, as ``docker login`` names it.

    >>> registry_host("brewblox/svc"), registry_host("127.0.0.1:5000/demo/svc")
    ('docker.io', '127.0.0.1:5000')
    """
    host = split_image(image)[0]
    return "docker.io" if host == "registry-1.docker.io" else host


def labels(config: Config, version: str, revision: str, source: str | None,
           created: int) -> dict[str, str]:
    """The OCI labels of SPEC §8."""
    result = {
        "org.opencontainers.image.version": version,
        "org.opencontainers.image.revision": revision,
        "org.opencontainers.image.created":
            datetime.fromtimestamp(created, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "org.opencontainers.image.title": config.name,
    }
    if source:
        result["org.opencontainers.image.source"] = source
    return result


def build_args(config: Config, target: Target, version: str) -> dict[str, str]:
    """``VERSION`` and ``PACKAGE``, then the config's build args, then the target's own."""
    return {"PACKAGE": config.name, "VERSION": version, **config.build_args,
            **target.build_args}


def _wrap(e: DockerException, what: str) -> str:
    """One line: what failed, and the last line docker said about it (the rest was shown)."""
    detail = "\n".join(x for x in (e.stdout, e.stderr) if x).strip().splitlines()
    last = detail[-1].strip() if detail else "its output is above"
    return redact(f"{what} failed (docker exit code {e.return_code}): {last}")


def check_emulation(platform: str) -> None:
    """Stop, building nothing, when the engine cannot run ``platform`` (arm without qemu)."""
    if platform in {"linux/amd64", "linux/386"}:
        return
    arch = {"linux/arm/v7": "arm", "linux/arm/v6": "arm", "linux/arm64": "aarch64"}.get(
        platform)
    if arch is None:
        return
    handler = Path("/proc/sys/fs/binfmt_misc") / f"qemu-{arch}"
    enabled = False
    try:
        enabled = handler.read_text().splitlines()[0].strip() == "enabled"
    except (OSError, IndexError):
        enabled = False
    if not enabled:
        raise EmulationError(
            f"this machine cannot run {platform} images: the qemu-{arch} binfmt handler is "
            "not enabled, so nothing was built. Enable emulation with "
            "`docker run --privileged --rm tonistiigi/binfmt --install arm` or, on Debian, "
            f"`apt-get install qemu-user-static binfmt-support && update-binfmts --enable "
            f"qemu-{arch}`")


def build(config: Config, image: ImagePlan, *, version: str, revision: str, created: int,
          source: str | None = None, prefix: str = "") -> BuiltImage:
    """Build one target with buildx and load it into the engine under the plan's refs.

    Output streams to the user as it comes, each line masked; ``prefix`` marks the lines of
    one target when several build at once.
    """
    from python_on_whales import DockerException, docker

    target = config.target(image.target)
    check_emulation(target.platform)
    context = config.root / target.context
    with tempfile.TemporaryDirectory() as tmp:
        metadata = Path(tmp) / "metadata.json"
        try:
            stream = docker.buildx.build(
                context,
                platforms=[target.platform],
                tags=list(image.refs),
                build_args=build_args(config, target, version),
                labels=labels(config, version, revision, source, created),
                load=True,
                provenance=False,
                network=config.network,
                metadata_file=metadata,
                progress="plain",
                stream_logs=True,
            )
            for line in stream:  # type: ignore[union-attr]
                log(f"{prefix}{line.rstrip()}")
        except DockerException as e:
            raise BuildError(_wrap(e, f"building the {target.name} image ({target.platform})") +
                             "; nothing was published") from e
        image_id = json.loads(metadata.read_text()).get("containerimage.config.digest", "")
    return BuiltImage(image, image_id)


def _retrying(what: str, action: Callable[[], T], *, attempts: int = PUSH_ATTEMPTS,
              backoff: float = PUSH_BACKOFF) -> T:
    from python_on_whales import DockerException

    for attempt in range(1, attempts + 1):
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
            if attempt == attempts:
                raise PublishError(_wrap(e, what) + f"\ngave up after {attempts} attempts; "
                                   "re-run the release to complete it") from e
            pause = backoff * 2 ** (attempt - 1)
            log(f"{what}: attempt {attempt} of {attempts} failed "
                f"({(e.stderr or e.stdout or '').strip().splitlines()[-1:] or ['?']}); "
                f"retrying in {pause:.0f} s")
            time.sleep(pause)
    raise AssertionError("unreachable")  # pragma: no cover


def push(refs: Iterable[str]) -> None:
    """Push tags that the engine holds, each with retries on transient faults."""
    from python_on_whales import docker

    for ref in refs:
        def one(ref: str = ref) -> None:
            stream = docker.image.push(ref, stream_logs=True)
            for _, line in stream or ():
                log(f"  {line.decode(errors='replace').rstrip()}")
        _retrying(f"pushing {ref}", one)
        log(f"pushed {ref}")


def login(image: str, env: Mapping[str, str]) -> bool:
    """``docker login`` through standard input when DOCKER_USERNAME/DOCKER_PASSWORD are set."""
    user, password = env.get("DOCKER_USERNAME"), env.get("DOCKER_PASSWORD")
    if not (user and password):
        return False
    host = registry_host(image)
    try:
        run(["docker", "login", "--username", user, "--password-stdin", host], input=password)
    except CommandError as e:
        raise CredentialsError(f"docker login to {host} failed (exit code "
                               f"{e.result.returncode}, output above): check DOCKER_USERNAME and "
                               "DOCKER_PASSWORD") from e
    return True


def _docker_config(path: Path | None) -> dict[str, Any]:
    """docker's config.json: ``path``, else in ``$DOCKER_CONFIG``, else in ~/.docker."""
    if path is None:
        path = Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker") / "config.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _config_keys(image: str) -> list[str]:
    """The keys under which docker's config may name the image's registry."""
    host = registry_host(image)
    if host == "docker.io":
        return ["https://index.docker.io/v1/", "index.docker.io", "docker.io"]
    return [host, f"https://{host}", f"http://{host}"]


def has_login(image: str, docker_config: Path | None = None) -> bool:
    """Whether ``docker login`` already stored credentials for the image's registry.

    Read from ~/.docker/config.json as docker reads it: ``auths``, a credential helper for the
    registry (``credHelpers``), or the credential store (``credsStore``), which is asked for the
    registries it holds (``docker-credential-<store> list``: names, no secrets). A store that
    cannot be asked is taken at its word.
    """
    data = _docker_config(docker_config)
    keys = _config_keys(image)
    if any(k in data.get("auths", {}) for k in keys) or any(
            k in data.get("credHelpers", {}) for k in keys):
        return True
    store = data.get("credsStore")
    if not store:
        return False
    try:
        listed = run([f"docker-credential-{store}", "list"], echo=False, stream=False,
                     timeout=30)
        servers = {_server(s) for s in json.loads(listed.output)}
    except (CommandError, ValueError, TypeError):
        return True
    return bool({_server(k) for k in keys} & servers)


def _server(key: str) -> str:
    """A registry as docker's config and credential stores name it, without scheme and path."""
    return urlsplit(key).netloc or key.split("/", maxsplit=1)[0]


def stored_credentials(image: str, docker_config: Path | None = None) -> tuple[str, str] | None:
    """The user and password ``docker login`` stored for the image's registry, as docker
    finds them: in ``auths``, or from the registry's credential helper or the credential store
    (``docker-credential-<name> get``). The password is masked in all output from then on."""
    data = _docker_config(docker_config)
    keys = _config_keys(image)
    for key in keys:
        entry = data.get("auths", {}).get(key) or {}
        if entry.get("auth"):
            try:
                user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            except ValueError:
                continue
            mask(password)
            return user, password
    helpers = data.get("credHelpers", {})
    helper = next((helpers[k] for k in keys if k in helpers), None) or data.get("credsStore")
    for key in keys if helper else ():
        try:
            found = run([f"docker-credential-{helper}", "get"], input=key, echo=False,
                        stream=False, timeout=30)
            creds = json.loads(found.output)
            user, password = str(creds["Username"]), str(creds["Secret"])
        except (CommandError, ValueError, KeyError, TypeError):
            continue
        mask(password)
        return user, password
    return None


def package_version(ref: str, platform: str, name: str, *, pull: bool = True) -> str:
    """The version of ``name`` installed in the image ``ref`` (run under qemu for arm).

    With ``pull`` the image is pulled first, so that what runs is what the registry holds.
    """
    code = f"import importlib.metadata as m; print(m.version({name!r}))"
    try:
        result = run(["docker", "run", "--rm", "--pull", "always" if pull else "missing",
                      "--platform", platform, "--entrypoint", "python3", ref, "-c", code],
                     stream=False)
    except CommandError as e:
        raise PublishError(f"running {ref} to read its package version failed (exit code "
                           f"{e.result.returncode}): {(e.result.lines or ['?'])[-1]}") from e
    return result.lines[-1].strip()
