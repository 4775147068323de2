"""invoke tasks: a service's ``tasks.py`` of ::

    from brewblox_release.invoke import namespace

lists and runs the same commands as the nox sessions, with the same options as flags
(``invoke release --dry-run``, ``invoke docker --target arm``). Needs ``brewblox-release[invoke]``.

Glue only: each task turns its keyword options back into the command's words and hands them to
`commands.execute`, so tasks and sessions cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from invoke.collection import Collection
from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task

from .commands import COMMANDS, OPTIONS, execute, message
from .errors import Interrupted, ReleaseError

__all__ = ["namespace"]


def _words(name: str, given: dict[str, Any]) -> list[str]:
    words = []
    for flag in COMMANDS[name].options:
        value = given.get(OPTIONS[flag].dest)
        if value is True:
            words.append(flag)
        elif value not in (None, False, ""):
            words += [flag, str(value)]
    return words


def _help(name: str) -> dict[str, str]:
    """The help lines of a command's options, by parameter name."""
    return {OPTIONS[flag].dest: OPTIONS[flag].help for flag in COMMANDS[name].options}


def _run(name: str, **given: Any) -> None:
    try:
        execute(name, _words(name, given), prog=f"invoke {name}")
    except ReleaseError as e:
        code = e.exit_code if isinstance(e, Interrupted) else 1
        raise Exit(f"invoke {name}: error: {message(e)}", code=code) from None


@task(help=_help("version"))
def version(c: Context, *, json: bool = False, publish: bool = False, ref: str | None = None,
            allow_dirty: bool = False, rehearse: bool = False) -> None:
    """Print the version and the plan (builds and publishes nothing)."""
    _run("version", json=json, publish=publish, ref=ref, allow_dirty=allow_dirty,
         rehearse=rehearse)


@task(help=_help("dist"))
def dist(c: Context, *, dry_run: bool = False) -> None:
    """Build the sdist and wheel into the dist dir and twine-check them."""
    _run("dist", dry_run=dry_run)


@task(help=_help("distcopy"))
def distcopy(c: Context, *, dry_run: bool = False) -> None:
    """Copy the dist dir's sdist and wheel into each target's pkg/."""
    _run("distcopy", dry_run=dry_run)


@task(help=_help("docker"))
def docker(c: Context, *, target: str | None = None, dry_run: bool = False, json: bool = False,
           publish: bool = False, ref: str | None = None, allow_dirty: bool = False,
           rehearse: bool = False, stage: str | None = None) -> None:
    """Build one target's image (--target NAME) and push it when the plan says so."""
    _run("docker", target=target, dry_run=dry_run, json=json, publish=publish, ref=ref,
         allow_dirty=allow_dirty, rehearse=rehearse, stage=stage)


@task(name="docker-amd64", help=_help("docker-amd64"))
def docker_amd64(c: Context, *, dry_run: bool = False, json: bool = False, publish: bool = False,
                 ref: str | None = None, allow_dirty: bool = False,
                 rehearse: bool = False, stage: str | None = None) -> None:
    """Build the amd64 image and push it when the plan says so."""
    _run("docker-amd64", dry_run=dry_run, json=json, publish=publish, ref=ref,
         allow_dirty=allow_dirty, rehearse=rehearse, stage=stage)


@task(name="docker-arm", help=_help("docker-arm"))
def docker_arm(c: Context, *, dry_run: bool = False, json: bool = False, publish: bool = False,
               ref: str | None = None, allow_dirty: bool = False,
               rehearse: bool = False, stage: str | None = None) -> None:
    """Build the arm/v7 image and push it when the plan says so."""
    _run("docker-arm", dry_run=dry_run, json=json, publish=publish, ref=ref,
         allow_dirty=allow_dirty, rehearse=rehearse, stage=stage)


@task(help=_help("release"))
def release(c: Context, *, dry_run: bool = False, json: bool = False, publish: bool = False,
            ref: str | None = None, allow_dirty: bool = False, rehearse: bool = False,
            merge: str | None = None) -> None:
    """Release: preflight, dist, distcopy, every image, publish, verify, summary."""
    _run("release", dry_run=dry_run, json=json, publish=publish, ref=ref,
         allow_dirty=allow_dirty, rehearse=rehearse, merge=merge)


@task(help=_help("init"))
def init(c: Context, *, ci: str | None = None, image: str | None = None, force: bool = False,
         dry_run: bool = False) -> None:
    """Add brewblox-release to a service (pyproject, noxfile, Dockerfiles, CI definition)."""
    _run("init", ci=ci, image=image, force=force, dry_run=dry_run)


#: The tasks, for a service's tasks.py: ``from brewblox_release.invoke import namespace``.
namespace = Collection(version, dist, distcopy, docker, docker_amd64, docker_arm, release, init)

