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

import contextlib
import functools
import logging
import os
from collections.abc import Callable, Iterator
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


@contextlib.contextmanager
def _prepared(session: Session, *, dry_run: bool = False) -> Iterator[Run]:
    """Parse the options and prepare the run; with ``--rehearse``, inside a rehearsal (SPEC §9),
    whichever session asked for it, so that a rehearsal never reaches a real destination."""
    from dataclasses import replace

    from . import config
    from .release import Options, prepare
    from .run import Redactor, configure

    options = Options.parse(session.posargs, prog=f"nox -s {session.name} --")
    if dry_run:
        options = replace(options, dry_run=True)
    cfg = config.load(Path.cwd(), os.environ)
    configure(redactor=Redactor.from_env(os.environ, cfg.secret_vars))
    if not options.rehearse:
        yield prepare(Path.cwd(), options, config=cfg)
        return
    from .rehearse import rehearsal

    with rehearsal(cfg.require_image(), os.environ) as env:
        yield prepare(Path.cwd(), options, env)


@nox.session(python=False)
@_guard
def version(session: Session) -> None:
    """Print the version from git and the plan of this run (it builds and publishes nothing)."""
    with _prepared(session, dry_run=True) as run:
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

    with _prepared(session) as prepared:
        image = prepared.plan.image(prepared.config.target(target).name)
        # This session's share of the plan: one image, no index upload.
        run = replace(prepared, plan=replace(prepared.plan, images=(image,), upload=False))
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
    from .release import release as run_release

    with _prepared(session) as run:
        print(run.plan.render())
        if not run.options.dry_run:
            print(run_release(run).render())
