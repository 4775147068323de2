"""The commands of docs/sessions.md: one table, one option parser, one implementation of each.
The front-ends (nox sessions, invoke tasks, ``__main__``) are glue over `execute`."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import errno
import functools
import gc
import logging
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from . import _ci as ci, _config as config, _project as project, _version as version
from ._buildenv import cache_dir
from ._config import Config
from ._environment import Environment
from ._errors import Interrupted, ReleaseError, UsageError
from ._prepared import Options, Run
from ._release import Engine, carry_out, merge, preload, prepare, release
from ._run import (
    CommandError,
    capture,
    log,
    out,
    redact,
    redacted_streams,
    step,
    stop_starting,
    warnings_into_log,
)


@dataclass(frozen=True)
class Option:
    flag: str
    help: str
    metavar: str | None = None  # None: a switch
    choices: tuple[str, ...] | None = None

    @property
    def dest(self) -> str:
        return self.flag.removeprefix("--").replace("-", "_")


OPTIONS = {o.flag: o for o in (
    Option("--dry-run", "print what would be done and change nothing"),
    Option("--json", "print the plan as JSON on standard output"),
    Option("--publish", "release the checked-out ref from a workstation (a branch: a dev "
           "release; an exact tag: a release)"),
    Option("--ref", "reproduce a CI run for this ref", "refs/heads/NAME|refs/tags/NAME"),
    Option("--allow-dirty", "publish although tracked files differ from the commit"),
    Option("--rehearse", "the whole run against a throwaway registry and index on loopback"),
    Option("--target", "the target to build (a name from [tool.brewblox-release] targets)",
           "NAME"),
    Option("--stage", "build this target, push it under a staging reference and write its "
           "record into DIR (a split build, docs/multi-platform.md)", "DIR"),
    Option("--merge", "publish from the records of the targets' --stage runs in DIR", "DIR"),
    Option("--ci", "the CI provider to write a definition for (default: from the remote URL)",
           "PROVIDER", ("github", "gitlab", "travis", "azure")),
    Option("--image", "the image repository to write into [tool.brewblox-release]", "IMAGE"),
    Option("--force", "overwrite files that exist"),
    Option("--verbose", "show the output of buildx, pip and twine as it comes (it is always in "
           "the log file a failing step names)"),
)}

_PLANNING = ("--dry-run", "--json", "--publish", "--ref", "--allow-dirty", "--rehearse")
_DOCKER = (*_PLANNING, "--stage")


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    options: tuple[str, ...]
    action: Callable[[Options], None]

    @property
    def summary(self) -> str:
        """``help`` as a sentence: what ``nox -l`` shows."""
        return self.help[:1].upper() + self.help[1:] + "."

    @property
    def flags(self) -> tuple[str, ...]:
        """Its options, ``--verbose`` (every command's) among them: what every front-end takes."""
        return (*self.options, "--verbose")


def _version(options: Options) -> None:
    with _prepared(replace(options, dry_run=True)) as run:
        if not options.json:
            out(run.info.version)
        _show_plan(run)


def _dist(options: Options) -> None:
    from . import _dist as dist

    cfg, env = _load()
    source = project.version_source(cfg.root, stamp=cfg.stamp_version)
    info = version.read(cfg.root, cfg.name, source=source, branch=ci.detect(env).branch)
    if options.dry_run:
        out(dist.describe_build(cfg, info.version))
        return
    if info.shallow:
        log(version.SHALLOW_WARNING)
    with step(f"dist: {cfg.name} {info.version}"):
        files = dist.build(cfg, info.version, source_date_epoch=info.git.commit_time)
    log(f"built {', '.join(p.name for p in files)}")


def _distcopy(options: Options) -> None:
    from . import _dist as dist

    cfg, _ = _load()
    if options.dry_run:
        out(dist.describe_copy(cfg))
    else:
        dist.copy(cfg)


def _docker(target: str | None) -> Callable[[Options], None]:
    def action(options: Options) -> None:
        name = options.target or target
        if name is None:
            raise ReleaseError("say which target to build: --target NAME (a name from "
                               "[tool.brewblox-release] targets)")
        with _prepared(replace(options, target=name)) as run:  # the target's share
            (image,) = run.plan.images
            if options.dry_run:
                _show_plan(run)
                return
            if options.stage and Path(options.stage).exists() and not Path(options.stage).is_dir():
                raise ReleaseError(f"--stage {options.stage}: not a directory; give the "
                                   "directory the records go to")
            if image.push and run.config.multi_arch and not options.stage:
                raise ReleaseError(
                    f"multi-arch = true: a tag is one list of every target, so the {name} "
                    "session alone publishes nothing: run `nox -s release`, or stage each "
                    "target with --stage DIR and merge with `nox -s release -- --merge DIR`")
            engine = Engine(run, package=False)
            if not options.stage:
                carry_out(run, engine)
                if image.push:
                    out(engine.summary.render())
                return
            from . import _dockerconfig as dockerconfig, _multiarch as multiarch

            engine.preflight()
            engine.build()
            engine.confirm()
            if not image.push:
                log(f"{image.target}: this run publishes nothing, so nothing is staged")
                return
            with step(f"stage {image.target}"), \
                    dockerconfig.login(image.repository, run.env) as login:
                multiarch.stage(run, image, Path(options.stage), login)

    return action


def _release(options: Options) -> None:
    with _prepared(options) as prepared:
        run = prepared
        if options.merge and options.dry_run and run.plan.publishes:
            # The plan of a dry merge, with what the real one would refuse of the records.
            from ._multiarch import read_records

            try:
                read_records(run, Path(options.merge))
            except ReleaseError as e:
                note = f"the real run would stop: {e}"
                run = replace(run, plan=replace(run.plan, reasons=(*run.plan.reasons, note)))
        _show_plan(run)
        if not options.dry_run:
            out((merge(run, Path(options.merge)) if options.merge else release(run)).render())


def _init(options: Options) -> None:
    from . import _init as init

    changes = init.init(Path.cwd(), ci=options.ci, force=options.force,
                        dry_run=options.dry_run, image=options.image)
    out(init.render(changes, dry_run=options.dry_run))


COMMANDS = {c.name: c for c in (
    Command("version", "print the version and the plan (builds and publishes nothing)",
            ("--json", "--publish", "--ref", "--allow-dirty", "--rehearse"), _version),
    Command("dist", "build the sdist and wheel into the dist dir and twine-check them",
            ("--dry-run",), _dist),
    Command("distcopy", "copy the dist dir's sdist and wheel into each target's pkg/",
            ("--dry-run",), _distcopy),
    Command("docker", "build one target's image and push it when the plan says so",
            (*_DOCKER, "--target"), _docker(None)),
    Command("docker-amd64", "build the amd64 image and push it when the plan says so",
            _DOCKER, _docker("amd64")),
    Command("docker-arm", "build the arm/v7 image and push it when the plan says so",
            _DOCKER, _docker("arm")),
    Command("release", "preflight, dist, distcopy, every image, publish, verify, summary",
            (*_PLANNING, "--merge"), _release),
    Command("init", "add brewblox-release to a service (pyproject, noxfile, Dockerfiles, CI)",
            ("--ci", "--image", "--force", "--dry-run"), _init),
)}


def parser(command: Command, prog: str, *, add_help: bool = False) -> argparse.ArgumentParser:
    """The parser of one command's options; never abbreviates, never exits."""
    result = argparse.ArgumentParser(prog=prog, description=command.help, add_help=add_help,
                                     allow_abbrev=False, exit_on_error=False)
    for flag in command.flags:
        option = OPTIONS[flag]
        kind: dict[str, Any] = ({"action": "store_true"} if option.metavar is None
                                else {"metavar": option.metavar, "choices": option.choices})
        result.add_argument(flag, help=option.help, **kind)
    return result


def parse(command: Command, args: Sequence[str], prog: str) -> Options:
    """``args`` as this command's `Options`; anything else is a one-line `UsageError`."""
    known = ", ".join(command.flags)
    try:
        ns, extra = parser(command, prog).parse_known_args(list(args))
    except argparse.ArgumentError as e:
        raise UsageError(f"{e}; the options of {command.name} are: {known}") from None
    for word in extra:
        why = (f"{word} is not an option of {command.name}; its options are" if word in OPTIONS
               else f"unknown option {word!r}; the options of {command.name} are")
        raise UsageError(f"{why}: {known}")
    options = Options(**vars(ns))
    # --json prints the plan instead of carrying it out: a dry run, quiet on stdout.
    return replace(options, dry_run=True) if options.json else options


def execute(name: str, args: Sequence[str], prog: str) -> None:
    """Run command ``name`` with the words ``args``, everything it prints masked; a
    `ReleaseError` (its message masked) is left for the front-end to show."""
    _tolerant_streams()
    stop_starting(False)  # a command before this one in the process may have been stopped
    capture()
    quiet_library_logs()
    _quick_exit()
    command = COMMANDS[name]
    if {"-h", "--help"} & set(args):  # through every front-end: nox -s release -- --help
        out(parser(command, prog, add_help=True).format_help().rstrip())
        return
    with redacted_streams(), warnings_into_log(), _stopped_by_signals() as received:
        try:
            options = parse(command, args, prog)
            with _console(name, options):
                command.action(options)
        except (KeyboardInterrupt, _Stop) as e:
            raise _interrupted(e.args[0] if isinstance(e, _Stop) else signal.SIGINT) from None
        except Exception as e:
            if received:  # the stop was raised where it was lost (a finalizer): what failed next
                raise _interrupted(received[0]) from None
            if isinstance(e, CommandError):
                raise ReleaseError(redact(str(e))) from None
            if isinstance(e, ReleaseError):
                raise
            if isinstance(e, OSError):
                raise ReleaseError(redact(os_error(e))) from None
            log(traceback.format_exc())  # a bug: its traceback, masked, then one line
            raise ReleaseError(redact(f"unexpected {type(e).__name__}: {e} (a bug in "
                                      "brewblox-release: the traceback is above)")) from None


def _interrupted(signum: int) -> Interrupted:
    stop_starting()
    _end_children()
    return Interrupted(f"stopped by {signal.Signals(signum).name}: every process "
                       "brewblox-release started has ended, nothing more is published; run the "
                       "command again to complete it", 128 + signum)


def _console(name: str, options: Options) -> contextlib.AbstractContextManager[None]:
    """The command's output: its programs' in a log file, the running steps on a terminal
    (docs/sessions.md, output)."""
    from ._run import console

    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    try:
        path: Path | None = cache_dir(capture()) / "logs" / f"{stamp}-{name}-{os.getpid()}.log"
    except RuntimeError:  # no home directory to put a cache in: everything is shown instead
        path = None
    shown = sys.__stderr__ if sys.__stderr__ is not None and sys.__stderr__.isatty() else None
    return console(path, verbose=options.verbose, terminal=shown)


def os_error(error: OSError) -> str:
    """One line for an error of the operating system: the path, what is wrong, what to do.

    >>> os_error(PermissionError(13, "Permission denied", "dist/x.whl"))
    'dist/x.whl: permission denied: give the user who runs the release write access to it, or \
choose another place (dist-dir, BREWBLOX_RELEASE_CACHE)'
    """
    where = f"{error.filename}: " if error.filename else ""
    what = (error.strerror or str(error)).lower()
    fix = {
        errno.EACCES: "give the user who runs the release write access to it, or choose another "
                      "place (dist-dir, BREWBLOX_RELEASE_CACHE)",
        errno.EPERM: "give the user who runs the release write access to it",
        errno.EROFS: "the file system is read-only: run from a writable checkout",
        errno.ENOSPC: "the disk is full: free some space (docker builder prune, old dist files)",
        errno.ENOTDIR: "a file stands where a directory should be: remove or rename it",
        errno.EISDIR: "a directory stands where a file should be: remove or rename it",
        errno.EEXIST: "something is in the way: remove or rename it",
        errno.ENOENT: "it does not exist: check the path",
    }.get(error.errno or 0, "check the path and its permissions")
    return f"{where}{what}: {fix}"


def _tolerant_streams() -> None:
    """Output never fails on a character the terminal cannot show (an ASCII terminal, a
    branch named in another script): it is escaped instead."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None and getattr(stream, "errors", "") == "strict":
            with contextlib.suppress(ValueError, OSError):
                reconfigure(errors="backslashreplace")


class _Stop(BaseException):
    """SIGTERM or SIGHUP (its number the one argument), raised in the main thread so that every
    ``with`` block unwinds: rehearsal servers, temporary docker configs and directories end."""


@contextlib.contextmanager
def _stopped_by_signals() -> Iterator[list[int]]:
    """SIGTERM, SIGHUP (a CI cancel, a closed terminal) and Ctrl-C stop the run alike, unless
    ignored; yields the signals received, which end the run when the stop lands in a finalizer
    (Python drops it) and mark it as stopping, so that nothing more is published."""
    received: list[int] = []

    def stop(signum: int, _frame: object) -> None:
        received.append(signum)
        stop_starting()  # no new process, no retry
        _end_children()  # a thread that waits for a build or a push is freed
        raise _Stop(signum)

    def unraisable(info: Any) -> None:
        if not isinstance(info.exc_value, _Stop):
            hook(info)

    saved, hook = {}, sys.unraisablehook
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            current = signal.getsignal(signum)
            # An ignored signal stays ignored (nohup: SIGHUP and Ctrl-C); Ctrl-C is taken over
            # from Python's own handler only, not from a host's.
            if current is signal.SIG_IGN or (signum == signal.SIGINT
                                             and current is not signal.default_int_handler):
                continue
            saved[signum] = signal.signal(signum, stop)
        sys.unraisablehook = unraisable
    try:
        yield received
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
        if saved:
            sys.unraisablehook = hook
        # The stop stays in force: a worker thread still finishing a push must not retry while
        # the interpreter waits for it at exit. The next command starts afresh (`execute`).


def _end_children() -> None:
    """End every process this one started that still runs, and theirs (a build, a push, a
    server): a stopped run leaves nothing behind (docs/how-it-works.md, interrupts)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            parent = int(stat.read_text().rpartition(")")[2].split()[1])
            children.setdefault(parent, []).append(int(stat.parent.name))
    todo = children.get(os.getpid(), [])
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)


@functools.cache  # once per process
def _quick_exit() -> None:
    """Spare the interpreter's last collections at exit (a tenth of a second or more with
    python-on-whales, pydantic and twine loaded): the process frees everything anyway."""
    atexit.register(gc.freeze)


def message(error: ReleaseError) -> str:
    """What a front-end shows of an error: its message, masked."""
    return redact(str(error))


def _load() -> tuple[Config, Environment]:
    """The configuration and the environment, the service's ``secret-vars`` set apart first:
    the build backend, asked for a setup.py's name, must see none of them."""
    env = capture(config.declared_secret_vars(Path.cwd()))
    return project.configuration(Path.cwd(), env), env


@contextlib.contextmanager
def _prepared(options: Options) -> Iterator[Run]:
    """Prepare the run; with ``--rehearse``, inside a rehearsal (docs/how-it-works.md),
    whichever command asked for it, so that a rehearsal never reaches a real destination."""
    if not options.dry_run:
        preload("python_on_whales")  # while the version and the plan are made
    cfg, env = _load()
    if options.rehearse:
        from ._rehearse import rehearsal

        with rehearsal(cfg.require_image(), env) as rehearsal_env:
            yield prepare(Path.cwd(), options, rehearsal_env)
    else:
        yield prepare(Path.cwd(), options, env, config=cfg)


def _show_plan(run: Run) -> None:
    if run.options.json:
        from ._run import out_json

        out_json(run.plan.to_dict())
    else:
        out(run.plan.render())


def _library_filter(record: logging.LogRecord) -> bool:
    """Keep nox's records and warnings, masked, tracebacks included; drop the libraries'
    debug chatter (python-on-whales logs every docker command line, urllib3 every request)."""
    if record.levelno < logging.WARNING and not record.name.startswith("nox"):
        return False
    record.msg, record.args = redact(record.getMessage()), None
    if record.exc_info:
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        record.exc_info = None
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    return True


def quiet_library_logs() -> None:
    """Put the filter on every handler of the root logger (nox's among them), for good: nox
    logs a session's unexpected traceback after the session has returned."""
    for handler in (*logging.getLogger().handlers, logging.lastResort):
        if handler is not None and _library_filter not in handler.filters:
            handler.addFilter(_library_filter)
