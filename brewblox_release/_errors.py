"""The one exception family: every message says what to do next."""

from __future__ import annotations


class ReleaseError(Exception):
    """Base class: a release cannot go on. The message is shown to the user as is; a command
    line exits with ``exit_code``."""

    exit_code = 1


class UsageError(ReleaseError):
    """The words given are no command line of the command (an unknown option, a missing value)."""

    exit_code = 2


class ConfigError(ReleaseError):
    """`[tool.brewblox-release]` is wrong; the message names the key and the file."""


class VersionError(ReleaseError):
    """The version from git cannot be published (dirty tree, shallow clone, tag mismatch)."""


class CredentialsError(ReleaseError):
    """A destination the plan publishes to has no credentials; names the variable to set."""


class BuildError(ReleaseError):
    """Building the distribution or an image failed; nothing was published."""


class PublishError(ReleaseError):
    """Uploading or pushing failed; re-running the release completes it."""


class EmulationError(ReleaseError):
    """The engine cannot run the target's platform (arm/v7 without qemu)."""


class Interrupted(ReleaseError):  # noqa: N818 (a stop asked for, as KeyboardInterrupt)
    """The run was interrupted (Ctrl-C) or told to stop (SIGTERM, SIGHUP); every process it
    started was ended. ``exit_code`` is the shell's: 128 and the signal's number."""

    def __init__(self, message: str, exit_code: int = 130) -> None:
        super().__init__(message)
        self.exit_code = exit_code
