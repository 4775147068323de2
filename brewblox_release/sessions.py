"""The nox sessions. A service's whole noxfile can be::

    from brewblox_release.sessions import *  # noqa: F403

A bare ``nox`` runs only ``version``: releasing is always asked for by name. Every session runs
in the environment nox runs in (no virtualenv per session), so it starts in
a fraction of a second; options go after ``--``: ``--dry-run``, ``--publish``,
``--ref refs/heads/NAME|refs/tags/NAME``, ``--allow-dirty``, ``--rehearse``.

Nothing here but glue: parse the options, call the library, turn a `ReleaseError` into
``session.error`` with its message (masked).
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import nox

from .errors import ReleaseError

if TYPE_CHECKING:
    from .release import Run

__all__ = ["dist", "distcopy", "docker_amd64", "docker_arm", "release", "version"]

Session = nox.Session


def _guard(func: Callable[[Session], None]) -> Callable[[Session], None]:
    @functools.wraps(func)
    def wrapper(session: Session) -> None:
        from .run import CommandError, Redactor, configure, redact

        configure(redactor=Redactor.from_env(os.environ))
        _quiet_logging()
        try:
            func(session)
        except (ReleaseError, CommandError) as e:
            session.error(redact(str(e)))

    return wrapper


class _LibraryFilter(logging.Filter):
    """Keep nox's records and warnings; drop the debug chatter of the libraries underneath
    (python-on-whales logs every docker command line, urllib3 every request); mask the rest."""

    def filter(self, record: logging.LogRecord) -> bool:
        from .run import redact

        if record.levelno < logging.WARNING and not record.name.startswith("nox"):
            return False
        record.msg, record.args = redact(record.getMessage()), None
        return True


def _quiet_logging() -> None:
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, _LibraryFilter) for f in handler.filters):
            handler.addFilter(_LibraryFilter())


def _prepare(session: Session, *, dry_run: bool = False) -> Run:
    from dataclasses import replace

    from .release import Options, prepare
    from .run import Redactor, configure

    options = Options.parse(session.posargs, prog=f"nox -s {session.name} --")
    if dry_run:
        options = replace(options, dry_run=True)
    run = prepare(Path.cwd(), options)
    configure(redactor=Redactor.from_env(os.environ, run.config.secret_vars))
    return run


@nox.session(python=False)
@_guard
def version(session: Session) -> None:
    """Print the version from git and the plan of this run (it builds and publishes nothing)."""
    run = _prepare(session, dry_run=True)
    print(run.info.version)
    print(run.plan.render())


@nox.session(python=False, default=False)
@_guard
def dist(session: Session) -> None:
    """Build the sdist and wheel into the dist dir and check them (twine check --strict)."""
    from . import config
    from . import dist as dist_mod
    from . import version as version_mod

    cfg = config.load(Path.cwd(), os.environ)
    info = version_mod.read(cfg.root)
    files = dist_mod.build(cfg, info.version, source_date_epoch=info.git.commit_time)
    session.log(f"built {', '.join(p.name for p in files)}")


@nox.session(python=False, default=False)
@_guard
def distcopy(session: Session) -> None:
    """Copy the dist dir's files into each target's pkg/, removing what was there."""
    from . import config
    from . import dist as dist_mod

    dist_mod.copy(config.load(Path.cwd(), os.environ))


def _docker(session: Session, target: str) -> None:
    from dataclasses import replace

    from .release import Summary, build_images, preflight, publish, verify

    run = _prepare(session)
    image = run.plan.image(run.config.target(target).name)
    # This session's share of the plan: one image, no index upload.
    run = replace(run, plan=replace(run.plan, images=(image,), upload=False))
    if run.options.dry_run:
        print(run.plan.render())
        return
    preflight(run)
    build_images(run, [image])
    if image.push:
        summary = Summary()
        publish(run, [], summary)
        verify(run, summary)
        print(summary.render())


@nox.session(name="docker-amd64", python=False, default=False)
@_guard
def docker_amd64(session: Session) -> None:
    """Build the amd64 image and, when the plan says so, push its tags."""
    _docker(session, "amd64")


@nox.session(name="docker-arm", python=False, default=False)
@_guard
def docker_arm(session: Session) -> None:
    """Build the arm/v7 image and, when the plan says so, push its tags."""
    _docker(session, "arm")


@nox.session(python=False, default=False)
@_guard
def release(session: Session) -> None:
    """Release: preflight, dist, distcopy, every image, publish, verify, summary."""
    from .release import Options, prepare
    from .release import release as run_release
    from .run import Redactor, configure

    options = Options.parse(session.posargs, prog="nox -s release --")
    if options.rehearse:
        from . import config
        from .rehearse import rehearsal

        cfg = config.load(Path.cwd(), os.environ)
        with rehearsal(cfg.require_image(), os.environ) as env:
            run = prepare(Path.cwd(), options, env)
            print(run.plan.render())
            if not options.dry_run:
                summary = run_release(run)
                print(summary.render())
        return
    run = prepare(Path.cwd(), options)
    configure(redactor=Redactor.from_env(os.environ, run.config.secret_vars))
    print(run.plan.render())
    if options.dry_run:
        return
    summary = run_release(run)
    print(summary.render())
