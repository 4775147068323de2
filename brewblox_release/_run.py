"""The one way to run a subprocess and to print: every line that reaches the user passes `redact`
(docs/how-it-works.md, secrets; docs/sessions.md, output), python-on-whales' (`_docker`) too."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO, TypeVar

from ._environment import DROPPED, Environment
from ._errors import Interrupted
from ._secret import Redactor


@dataclass
class _Output:
    """The one output path: what is masked, where lines go, and a command's log file."""

    redactor: Redactor
    sink: Callable[[str], None]
    log_path: Path | None = None  #: None: the programs' output (`detail`) is shown
    verbose: bool = False
    terminal: TextIO | None = None  #: where `step` shows the running steps
    file: TextIO | None = None
    #: The latest detail lines: (number, thread, line); a failing step shows its own thread's.
    recent: deque[tuple[int, int, str]] = field(default_factory=lambda: deque(maxlen=400))
    count: int = 0
    #: The tool's own lines until the first detail line makes the log (``version`` makes none).
    pending: list[str] = field(default_factory=list)
    steps: dict[object, tuple[str, float]] = field(default_factory=dict)
    ticking: bool = False
    shown: bool = False  #: the terminal shows the running steps' line


# Until `capture` says what to mask, the process environment's credentials (the library alone).
_output = _Output(Environment(os.environ).redactor(),
                  lambda line: print(line, file=sys.stderr, flush=True))
_lock = threading.RLock()
#: Set when the run is told to stop (a signal): no new process starts, no retry waits.
_stopping = threading.Event()
#: Logs kept per directory: the latest, and any younger than `_PRUNED_AFTER` s (another job's).
KEPT_LOGS = 20
_PRUNED_AFTER = 600


def stop_starting(stop: bool = True) -> None:
    """From now on (until called with False), start no process: the run is stopping."""
    if stop:
        _stopping.set()
    else:
        _stopping.clear()


def check_stopping() -> None:
    """Raise `Interrupted` when the run is told to stop: before each step that publishes, so
    that a stop that was raised where Python drops it (a finalizer) still stops publishing."""
    if _stopping.is_set():
        raise Interrupted("stopped: nothing more is published; run the command again to "
                          "complete it")


def pause(seconds: float) -> bool:
    """Wait ``seconds`` (a retry's pause); False at once when the run is stopping."""
    return not _stopping.wait(seconds)


def configure(*, redactor: Redactor, sink: Callable[[str], None] | None = None) -> None:
    """Set the secrets to mask and where lines go."""
    with _lock:
        _output.redactor, _output.sink = redactor, sink or _output.sink


@contextmanager
def console(log_path: Path | None, *, verbose: bool = False,
            terminal: TextIO | None = None) -> Iterator[None]:
    """A command's output: the programs' output into ``log_path`` (made on its first line),
    shown as well with ``verbose``; the running steps on ``terminal``, where there is one."""
    _output.log_path, _output.verbose, _output.terminal = log_path, verbose, terminal
    _output.count = 0
    _output.recent.clear()
    _output.pending.clear()
    try:
        yield
    finally:
        with _lock:
            _clear_ticker()
            if _output.file is not None:
                _output.file.close()
            _output.file = _output.log_path = _output.terminal = None
            _output.verbose = False


def mask(*values: str) -> None:
    """Mask these values too from now on (a password read from docker's credential store)."""
    with _lock:  # two threads learning a secret each keep both
        _output.redactor = _output.redactor.adding(values)


def redact(text: str) -> str:
    return _output.redactor(text)


def _write_log(line: str, *, opens: bool = True) -> None:
    if _output.log_path is None:
        return
    if _output.file is None and not opens:
        _output.pending.append(line)
        return
    if _output.file is None:
        directory = _output.log_path.parent
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)  # the runner's user's
            for old in sorted(directory.glob("*.log"))[:-KEPT_LOGS + 1 or None]:
                if time.time() - old.stat().st_mtime > _PRUNED_AFTER:  # not a running job's
                    old.unlink(missing_ok=True)
            descriptor = os.open(_output.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            _output.file = open(descriptor, "a", encoding="utf-8",  # noqa: PTH123, SIM115
                                errors="backslashreplace")
            _output.file.writelines(f"{pending}\n" for pending in _output.pending)
        except OSError as e:  # no log (a cache that is a file): everything is shown instead
            _output.log_path = None
            _show(f"no log file ({e.strerror or e}: {directory}): all output is shown")
            return
    _output.file.write(line + "\n")
    _output.file.flush()


def _show(line: str) -> None:
    _clear_ticker()
    _output.sink(line)


def log(message: str) -> None:
    """Print one message of the tool's own (each of its lines masked); the log keeps it too."""
    with _lock:
        for line in redact(message).splitlines() or [""]:
            _write_log(line, opens=False)
            _show(line)


def detail(message: str) -> None:
    """A line of a program the tool runs (or its command line): into the command's log, shown
    with ``--verbose`` or where no log is kept; a step that fails shows its latest ones."""
    with _lock:
        for line in redact(message).splitlines() or [""]:
            _output.count += 1
            _output.recent.append((_output.count, threading.get_ident(), line))
            _write_log(line)
            if _output.verbose or _output.log_path is None:
                _show(line)


def out(text: str) -> None:
    """Print a result (the version, the plan, the summary, JSON) on standard output, masked."""
    with _lock:
        _clear_ticker()
        sys.stdout.write(redact(text) + "\n")
        sys.stdout.flush()


def out_json(data: object) -> None:
    """Print ``data`` as JSON on standard output, each string in it masked before it is
    serialised: the output stays JSON whatever a secret looks like (``false``, a quote)."""

    def masked(value: object) -> object:
        if isinstance(value, str):
            return redact(value)
        if isinstance(value, Mapping):
            return {masked(k): masked(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [masked(v) for v in value]
        return value

    text = json.dumps(masked(data), indent=2) + "\n"
    with _lock:
        _clear_ticker()
        getattr(sys.stdout, "write_masked", sys.stdout.write)(text)
        sys.stdout.flush()


TAIL = 15  #: the lines of its output a failing step shows


@contextmanager
def step(what: str) -> Iterator[None]:
    """Announce a long step and end it with its elapsed time (shown on a terminal meanwhile);
    one that fails shows the latest lines of the programs it ran and where the whole log is."""
    log(f"==> {what}")
    start, mark = time.monotonic(), _output.count
    key = object()  # unique while the step runs, as an id() would not be
    with _lock:
        _output.steps[key] = (what, start)
        if _output.terminal is not None and not _output.verbose and not _output.ticking:
            _output.ticking = True
            threading.Thread(target=_tick, name="progress", daemon=True).start()
    try:
        yield
    except BaseException as e:
        with _lock:
            _output.steps.pop(key)
        ended = "failed" if isinstance(e, Exception) else "stopped"
        log(f"<== {what}: {ended} after {time.monotonic() - start:.1f} s")
        # The innermost failing step shows the tail; the steps around it show none of their own.
        shown = isinstance(e, Exception) and vars(e).setdefault("brewblox_release_tail", what)
        if shown == what and _output.log_path is not None and not _output.verbose:
            with _lock:
                since = [(thread, line) for number, thread, line in _output.recent if number > mark]
            own = [line for thread, line in since if thread == threading.get_ident()]
            tail = (own or [line for _, line in since])[-TAIL:]
            if tail:
                log("    its last lines:\n" + "\n".join(f"    | {line}" for line in tail))
            if _output.file is not None:
                log(f"    the whole log: {_output.log_path}")
        raise
    with _lock:
        _output.steps.pop(key)
    log(f"<== {what} ({time.monotonic() - start:.1f} s)")


def _tick() -> None:
    """Show the running steps on the terminal once a second, on a line the next one replaces."""
    turn = 0
    try:
        while True:
            with _lock:
                terminal = _output.terminal
                if terminal is None or not _output.steps:
                    _clear_ticker()
                    return
                now = time.monotonic()
                running = ", ".join(f"{what} {now - since:.0f} s"
                                    for what, since in list(_output.steps.values())[-2:])
                try:
                    width = os.get_terminal_size(terminal.fileno()).columns or 80  # 0: no size
                except (OSError, ValueError):
                    width = 80
                line = ("|/-\\"[turn % 4] + f" {running}")[:max(20, width - 1)]
                with suppress(OSError, ValueError):
                    terminal.write(f"\r\033[K{line}")
                    terminal.flush()
                _output.shown = True
            turn += 1
            time.sleep(1)
    finally:
        with _lock:
            _output.ticking = False


def _clear_ticker() -> None:
    if _output.terminal is not None and _output.shown:
        with suppress(OSError, ValueError):
            _output.terminal.write("\r\033[K")
            _output.terminal.flush()
        _output.shown = False


@contextmanager
def warnings_into_log() -> Iterator[None]:
    """Python's warnings of the libraries (setuptools_scm's about a shallow clone) go into the
    log, as the programs' lines do; what matters of them the tool says in a line of its own."""

    def show(  # noqa: PLR0917 (warnings.showwarning's own signature)
            message: Warning | str, category: type[Warning], filename: str, lineno: int,
            file: TextIO | None = None, line: str | None = None) -> None:
        detail(f"{filename}:{lineno}: {category.__name__}: {message}")

    saved, warnings.showwarning = warnings.showwarning, show
    try:
        yield
    finally:
        warnings.showwarning = saved


class _RedactingStream:
    """A text stream that masks each whole line before passing it on (what libraries print)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._pending = ""

    def write(self, text: str) -> int:
        self._pending += text
        if "\n" in self._pending:
            complete, _, self._pending = self._pending.rpartition("\n")
            self._stream.write(redact(complete) + "\n")
        return len(text)

    def flush(self) -> None:  # a partial line waits for its end: a secret may straddle writes
        self._stream.flush()

    def write_masked(self, text: str) -> None:
        """Pass on ``text`` that its writer masked already (`out_json`), as it is."""
        self.close_line()
        self._stream.write(text)

    def close_line(self) -> None:
        if self._pending:
            self._stream.write(redact(self._pending))
            self._pending = ""
        self._stream.flush()

    def __getattr__(self, name: str) -> object:
        return getattr(self._stream, name)


@contextmanager
def redacted_streams() -> Iterator[None]:
    """Mask everything written to ``sys.stdout`` and ``sys.stderr`` while it lasts."""
    saved = sys.stdout, sys.stderr
    wrapped = _RedactingStream(sys.stdout), _RedactingStream(sys.stderr)
    sys.stdout, sys.stderr = wrapped
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved
        for stream in wrapped:
            stream.close_line()


@dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    returncode: int
    output: str

    @property
    def lines(self) -> list[str]:
        return self.output.splitlines()


class CommandError(Exception):
    """A command exited non-zero; its message holds the (masked) command and output tail."""

    def __init__(self, result: Result) -> None:
        self.result = result
        tail = "\n".join(result.lines[-20:])
        super().__init__(redact(f"command failed with exit code {result.returncode}: "
                                f"{shlex.join(result.argv)}\n{tail}".rstrip()))


T = TypeVar("T")


class TransientError(Exception):
    """A fault another attempt may mend (a 5xx, a reset), raised by `retrying`'s action: with
    the error the last attempt raises, and the reason its retry line names."""

    def __init__(self, error: Exception, reason: str) -> None:
        super().__init__(reason)
        self.error, self.reason = error, reason


ATTEMPTS = 4  #: how often `retrying` tries an action, the first time included


def retrying(what: str, action: Callable[[], T], *, attempts: int = ATTEMPTS,
             backoff: float = 1.0) -> T:
    """``action``, tried again after a doubling pause while it raises `TransientError`: the one
    retry of the index's reads and uploads and of the registry's pushes. The last attempt raises
    the fault's error; a run that is stopping raises `Interrupted` instead of waiting."""
    attempt = 1
    while True:
        try:
            return action()
        except TransientError as e:
            if attempt == attempts:
                raise e.error from e.__cause__
            wait = backoff * 2 ** (attempt - 1)
            log(f"{what}: attempt {attempt} of {attempts} failed ({e.reason}); "
                f"retrying in {wait:.0f} s")
            if not pause(wait):
                check_stopping()
        attempt += 1


def background(function: Callable[[], T], name: str) -> Callable[[], T]:
    """Run ``function`` in a daemon thread (a run that ends does not wait for it); returns the
    function that waits for its result, or raises what it raised."""
    future: Future[T] = Future()

    def target() -> None:
        try:
            future.set_result(function())
        except BaseException as e:  # raised again by future.result(), in the caller
            future.set_exception(e)

    threading.Thread(target=target, name=name, daemon=True).start()
    return future.result


def environ() -> Mapping[str, str]:
    """The command's environment snapshot (`capture`), or a snapshot of the process's own (the
    library alone), read the same way (Azure's unexpanded macros are no values)."""
    return _captured if _captured is not None else Environment(os.environ)


#: git's variables that point it at another repository (a hook's): removed for every git command,
#: as setuptools_scm does (docs/configuration.md); CI's GIT_CONFIG_COUNT (safe.directory) stays.
GIT_REPOSITORY_VARS = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY",
                       "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_COMMON_DIR", "GIT_NAMESPACE",
                       "GIT_PREFIX", "GIT_IMPLICIT_WORK_TREE", "GIT_GRAFT_FILE",
                       "GIT_SHALLOW_FILE", "GIT_REPLACE_REF_BASE", "GIT_NO_REPLACE_OBJECTS")
GIT_TIMEOUT = 300.0  #: how long a git command may take (a fetch of a whole history included)


def _child_env(args: tuple[str, ...], env: Mapping[str, str] | None,
               drop: str | None) -> dict[str, str]:
    full = {k: v for k, v in os.environ.items() if not (drop and k.startswith(drop))}
    removed = {*DROPPED, *(GIT_REPOSITORY_VARS if args[0] == "git" else ())}
    return {k: v for k, v in {**full, **(env or {})}.items() if k not in removed}


def run(argv: Sequence[str | Path], *, cwd: Path | str | None = None,
        env: Mapping[str, str] | None = None, check: bool = True, echo: bool = True,
        stream: bool = True, input: str | None = None, timeout: float | None = None,
        drop: str | None = None) -> Result:
    """Run a command: `detail` it (``echo``) and its output (``stream``); non-zero raises
    `CommandError` (``check``). Its environment: ``os.environ`` (`capture` took the credentials
    out) less ``drop*``, ``env`` on top."""
    args = tuple(str(a) for a in argv)
    if _stopping.is_set():
        raise CommandError(Result(args, 130, "not started: the run is stopping"))
    if echo:
        detail(f"$ {shlex.join(args)}")
    try:
        proc = subprocess.Popen(args, cwd=cwd, env=_child_env(args, env, drop), text=True,
                                stdin=subprocess.DEVNULL if input is None else subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=1,
                                errors="replace")
    except FileNotFoundError as e:
        raise CommandError(Result(args, 127, f"{args[0]}: not found ({e.strerror})")) from None
    if timeout is None and args[0] == "git":
        timeout = GIT_TIMEOUT
    lines: list[str] = []
    with proc:
        if proc.stdin is not None:  # one that ended early says why in its output
            with suppress(BrokenPipeError):
                proc.stdin.write(input or "")
            with suppress(BrokenPipeError):
                proc.stdin.close()
        assert proc.stdout is not None
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            proc.kill()

        timer = threading.Timer(timeout, expire) if timeout else None
        if timer:
            timer.daemon = True  # never what keeps the interpreter from exiting
            timer.start()
        try:
            for raw in proc.stdout:
                line = raw.rstrip("\n")
                lines.append(line)
                if stream:
                    detail(f"  {line}")
            code = proc.wait()
        finally:  # an interrupt included
            if timer:
                timer.cancel()
        if expired.is_set():
            lines.append(f"(stopped after {timeout:.0f} s)")
    result = Result(args, code, "\n".join(lines))
    if check and code != 0:
        raise CommandError(result)
    return result


_captured: Environment | None = None


def capture(secret_vars: Iterable[str] = ()) -> Environment:
    """The process environment, read on the first call and kept (later calls: more
    ``secret-vars``); the credentials are removed from ``os.environ`` and masked in all output."""
    global _captured  # noqa: PLW0603 (one snapshot per process is the point)
    if _captured is None:
        _captured = Environment(os.environ)
    if secret_vars:
        _captured = _captured.with_secret_vars(secret_vars)
    for name in (*_captured.secret_vars, *_captured.copies(), *_captured.unexpanded, *DROPPED):
        os.environ.pop(name, None)
    # git status and describe --dirty refresh .git/index as they read it; a release tool
    # writes nothing in the user's repository (git's switch for background readers).
    os.environ["GIT_OPTIONAL_LOCKS"] = "0"
    configure(redactor=_captured.redactor())
    return _captured
