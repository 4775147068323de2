"""The nox sessions: a service's whole noxfile can be ``from brewblox_release.sessions import *``.
A bare ``nox`` runs only ``version``: releasing is always asked for by name. Glue over
`commands.execute`, with ``session.posargs`` (``nox -s release -- --dry-run``)."""

from __future__ import annotations

from typing import Any

import nox
import nox.registry

from ._commands import COMMANDS, execute, message
from ._errors import Interrupted, ReleaseError

__all__ = ["dist", "distcopy", "docker", "docker_amd64", "docker_arm", "init", "release",
           "version"]


def _session(name: str, *, default: bool = False) -> Any:
    # A session of the service's own of this name, registered before this import (`init` puts
    # the import after the service's code), stays its own: nox never sees the name twice.
    if (own := nox.registry.get().get(name)) is not None:
        return own

    def session(session: nox.Session) -> None:
        try:
            execute(name, session.posargs, prog=f"nox -s {name} --")
        except Interrupted as e:
            session.log(message(e))
            raise KeyboardInterrupt from None  # nox's own way out: exit 130, its summary
        except ReleaseError as e:
            session.error(message(e))

    session.__name__ = session.__qualname__ = name.replace("-", "_")
    session.__doc__ = COMMANDS[name].summary
    # No virtualenv, whatever the noxfile's default backend is (uv where uv is not installed).
    return nox.session(name=name, venv_backend="none", default=default)(session)


version = _session("version", default=True)
dist = _session("dist")
distcopy = _session("distcopy")
docker = _session("docker")
docker_amd64 = _session("docker-amd64")
docker_arm = _session("docker-arm")
release = _session("release")
init = _session("init")
