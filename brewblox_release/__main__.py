"""The command line: ``brewblox-release COMMAND [options]`` or ``python -m brewblox_release``;
glue over `commands.execute`, like the nox sessions and the invoke tasks."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ._commands import COMMANDS, execute, message
from ._errors import ReleaseError


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; 0 on success, 1 when it fails, 2 for a wrong command line, 128 and the
    signal's number when it was interrupted or told to stop (130 for Ctrl-C)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help"}:
        usage = argparse.ArgumentParser(
            prog="brewblox-release",
            description="Release a Python service to a package index and as Docker images.",
            epilog="`brewblox-release COMMAND --help` shows a command's options.")
        commands = usage.add_subparsers(title="commands", metavar="COMMAND")
        for command in COMMANDS.values():
            commands.add_parser(command.name, help=command.help, add_help=False)
        usage.print_help()
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"brewblox-release: unknown command {name!r}; the commands are: "
              f"{', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    prog = f"brewblox-release {name}"
    try:
        execute(name, rest, prog)
    except ReleaseError as e:
        print(f"{prog}: error: {message(e)}", file=sys.stderr)
        return e.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
