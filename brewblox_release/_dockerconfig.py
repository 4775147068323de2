"""docker's own configuration: the logins it stores, and a login of this run's own (the two ways
to the registry's credentials: docs/sessions.md). Passwords read here are masked at once."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ._errors import CredentialsError
from ._hosts import registry_host
from ._run import CommandError, environ, log, mask, run
from ._secret import Secret

if TYPE_CHECKING:  # python-on-whales loads on use (half a second)
    from python_on_whales import DockerClient


_HUB = "https://index.docker.io/v1/"


def config_dir(env: Mapping[str, str] | None = None) -> Path:
    """docker's config directory: ``$DOCKER_CONFIG``, else ``~/.docker``."""
    return Path((environ() if env is None else env).get("DOCKER_CONFIG") or Path.home() / ".docker")


def _read(path: Path) -> dict[str, Any]:
    """docker's config.json, read as docker reads it: a login setting of another shape (``null``)
    is no setting."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = {}
    data = data if isinstance(data, dict) else {}
    auths, helpers = data.get("auths"), data.get("credHelpers")
    data["auths"] = {k: v if isinstance(v, dict) else {}
                     for k, v in (auths if isinstance(auths, dict) else {}).items()}
    data["credHelpers"] = {k: v for k, v in (helpers if isinstance(helpers, dict) else {}).items()
                           if isinstance(v, str) and v}
    if not isinstance(data.get("credsStore"), str):
        data.pop("credsStore", None)
    return data


def _config(image: str, path: Path | None,
            env: Mapping[str, str] | None) -> tuple[dict[str, Any], list[str]]:
    """docker's config.json (``path``, else `config_dir`'s); the keys that may name the registry."""
    host = registry_host(image)
    keys = [_HUB, "index.docker.io", "docker.io"] if host == "docker.io" else \
        [host, f"https://{host}", f"http://{host}"]
    return _read(path or config_dir(env) / "config.json"), keys


def _server(key: str) -> str:
    """A registry as docker's config and credential stores name it, without scheme and path."""
    return urlsplit(key).netloc or key.split("/", maxsplit=1)[0]


def has_login(image: str, docker_config: Path | None = None, *,
              env: Mapping[str, str] | None = None) -> bool:
    """Whether ``docker login`` stored credentials for the image's registry (a ``credsStore``
    that cannot be asked is taken at its word: Docker Desktop sets one with no login at all)."""
    data, keys = _config(image, docker_config, env)
    if any(k in data.get("auths", {}) or k in data.get("credHelpers", {}) for k in keys):
        return True
    if not (store := data.get("credsStore")):
        return False
    try:
        listed = run([f"docker-credential-{store}", "list"], echo=False, stream=False, timeout=30)
        servers = {_server(s) for s in json.loads(listed.output)}
    except (CommandError, ValueError, TypeError):
        return True
    return bool({_server(k) for k in keys} & servers)


def stored_credentials(image: str, docker_config: Path | None = None, *,
                       env: Mapping[str, str] | None = None) -> tuple[str, Secret] | None:
    """The user and password ``docker login`` stored for the registry: in auths, else a helper."""
    data, keys = _config(image, docker_config, env)
    helpers = data["credHelpers"]
    helper = next((helpers[k] for k in keys if k in helpers), None) or data.get("credsStore")
    for key in keys:
        with contextlib.suppress(ValueError):
            if isinstance(auth := data["auths"].get(key, {}).get("auth"), str) and auth:
                user, _, password = base64.b64decode(auth).decode().partition(":")
                mask(password)
                return user, Secret(password)
    for key in keys if helper else ():
        with contextlib.suppress(CommandError, ValueError, KeyError, TypeError):
            found = run([f"docker-credential-{helper}", "get"], input=key, echo=False,
                        stream=False, timeout=30)
            creds = json.loads(found.output)
            user, password = str(creds["Username"]), str(creds["Secret"])
            mask(password)
            return user, Secret(password)
    return None


@dataclass(frozen=True)
class DockerConfig:
    """The docker config of a run's registry calls: a ``--config`` directory, or the user's."""

    path: Path | None = None

    def client(self) -> DockerClient:
        """A python-on-whales client that passes ``--config`` to every docker call. Without
        ``PYTHON_ON_WHALES_DEBUG``, which would print each call's environment (its secrets)."""
        from python_on_whales import DockerClient

        os.environ.pop("PYTHON_ON_WHALES_DEBUG", None)
        return DockerClient(config=self.path)


@contextlib.contextmanager
def login(image: str, env: Mapping[str, str]) -> Iterator[DockerConfig]:
    """The docker config of this run's registry calls: the user's, or with ``DOCKER_USERNAME`` and
    ``DOCKER_PASSWORD`` a copy without its logins, logged in to the registry, removed at the end."""
    user, password = env.get("DOCKER_USERNAME"), Secret(env.get("DOCKER_PASSWORD") or "")
    if not (user and password):
        own = env.get("DOCKER_CONFIG")
        yield DockerConfig(Path(own) if own else None)
        return
    host = registry_host(image)
    tmp = Path(tempfile.mkdtemp(prefix="brewblox-release-docker-"))
    try:
        user_dir = config_dir(env)
        for entry in user_dir.iterdir() if user_dir.is_dir() else ():  # linked: the same engine
            if not entry.name.startswith("config.json"):
                with contextlib.suppress(OSError):
                    (tmp / entry.name).symlink_to(entry)
        data = {k: v for k, v in _read(user_dir / "config.json").items()
                if k not in {"auths", "credsStore", "credHelpers"}}
        # Named in auths: into a config with no login at all, docker logs in to a credential store.
        data["auths"] = {_HUB if host == "docker.io" else host: {}}
        (tmp / "config.json").touch(mode=0o600)
        (tmp / "config.json").write_text(json.dumps(data, indent="\t"))
        try:
            run(["docker", "--config", str(tmp), "login", "--username", user, "--password-stdin",
                 host], input=password.reveal(), timeout=120)
        except CommandError as e:
            raise CredentialsError(f"docker login to {host} failed (exit code "
                                   f"{e.result.returncode}, output above): check "
                                   "DOCKER_USERNAME and DOCKER_PASSWORD") from e
        log(f"logged in to {host} as DOCKER_USERNAME, in a docker config of this run's own")
        yield DockerConfig(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
