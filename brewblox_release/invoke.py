"""invoke tasks: a service's ``tasks.py`` of ``from brewblox_release.invoke import namespace``
runs the commands of the nox sessions, their options as flags (``invoke docker --target arm``).
Needs ``brewblox-release[invoke]``. Glue over `commands.execute`, like the sessions."""

from __future__ import annotations

import inspect
from typing import Any

from invoke.collection import Collection
from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import Task

from ._commands import COMMANDS, OPTIONS, execute, message
from ._errors import ReleaseError

__all__ = ["namespace"]

#: The tasks whose description (``invoke --list``) is not their session's.
_DOCS = {
    "docker": "Build one target's image (--target NAME) and push it when the plan says so.",
    "release": "Release: preflight, dist, distcopy, every image, publish, verify, summary.",
    "init": "Add brewblox-release to a service (pyproject, noxfile, Dockerfiles, CI definition).",
}


def _task(name: str) -> Task[Any]:
    """Command ``name`` as a task: its options as keyword parameters, handed back as words."""
    command = COMMANDS[name]

    def body(c: Context, **given: Any) -> None:
        words = []
        for flag in command.flags:
            value = given[OPTIONS[flag].dest]
            if value is True:
                words.append(flag)
            elif value not in (None, False):  # "" too: the command says what is wrong with it
                words += [flag, str(value)]
        try:
            execute(name, words, prog=f"invoke {name}")
        except ReleaseError as e:
            raise Exit(f"invoke {name}: error: {message(e)}", code=e.exit_code) from None

    # invoke reads the flags off the signature, and gives short flags in its order: -t --target.
    flags = sorted(command.flags, key=lambda flag: flag != "--target")
    body.__signature__ = inspect.Signature([  # type: ignore[attr-defined]
        inspect.Parameter("c", inspect.Parameter.POSITIONAL_OR_KEYWORD),
        *(inspect.Parameter(OPTIONS[flag].dest, inspect.Parameter.KEYWORD_ONLY,
                            default=False if OPTIONS[flag].metavar is None else None)
          for flag in flags)])
    body.__doc__ = _DOCS.get(name, command.summary)
    return Task(body, name=name, help={OPTIONS[f].dest: OPTIONS[f].help for f in command.flags})


namespace = Collection(*map(_task, COMMANDS))
