"""The process environment, read once (`run.capture`) into a frozen snapshot with its credentials
set apart: no subprocess inherits them, a consumer gets one explicitly (docs/sessions.md, secrets).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from types import MappingProxyType
from urllib.parse import unquote

from ._secret import Redactor, url_password

#: Variables that carry publishing credentials: no subprocess inherits them.
CREDENTIAL_VARS = ("TWINE_USERNAME", "TWINE_PASSWORD", "TWINE_REPOSITORY_URL",
                   "BREWBLOX_RELEASE_INDEX_URL", "DOCKER_USERNAME", "DOCKER_PASSWORD",
                   "ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
                   "COSIGN_PRIVATE_KEY", "COSIGN_PASSWORD")
#: URLs whose password is masked in output (pip's own variables stay pip's: a build may need
#: its private index).
_URL_VARS = ("TWINE_REPOSITORY_URL", "BREWBLOX_RELEASE_INDEX_URL", "PIP_INDEX_URL",
             "PIP_EXTRA_INDEX_URL", "ACTIONS_ID_TOKEN_REQUEST_URL")
#: Variables whose whole value is masked in output (``TWINE_USERNAME`` unless ``__token__``).
_MASKED_WHOLE = tuple(name for name in CREDENTIAL_VARS if name not in _URL_VARS)
#: User names: masked, but no secret another variable can copy (`Environment.copies`).
_USER_VARS = ("TWINE_USERNAME", "DOCKER_USERNAME")
#: Never passed on, never kept: a debug switch that prints the environment.
DROPPED = ("PYTHON_ON_WHALES_DEBUG",)
#: A macro Azure Pipelines left as written, as it does where the variable is not defined (an
#: unset secret mapped into a step's ``env``): no value at all.
_UNEXPANDED = re.compile(r"\$\([\w.-]+\)")


class Environment(Mapping[str, str]):
    """A frozen copy of an environment; its ``repr`` names variables, never values.

    >>> env = Environment({"HOME": "/root", "TWINE_PASSWORD": "pypi-xyz"})
    >>> env["HOME"], env
    ('/root', Environment(2 variables; secret: TWINE_PASSWORD))
    """

    def __init__(self, values: Mapping[str, str], secret_vars: Iterable[str] = ()) -> None:
        self._given = dict(values)  # as read, for `with_secret_vars`
        azure = values.get("TF_BUILD", "").lower() == "true"
        #: Variables Azure left as an unexpanded ``$(NAME)``: unset, here and for subprocesses.
        self.unexpanded = tuple(k for k, v in values.items() if azure and _UNEXPANDED.fullmatch(v))
        self._values = MappingProxyType({k: v for k, v in self._given.items()
                                         if k not in self.unexpanded})
        #: The service's own ``secret-vars``: masked whole, whatever they are.
        self.service_vars = tuple(dict.fromkeys(secret_vars))
        self.secret_vars = tuple(dict.fromkeys((*CREDENTIAL_VARS, *self.service_vars)))

    def __getitem__(self, name: str) -> str:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        present = [name for name in self.secret_vars if self._values.get(name)]
        return f"Environment({len(self)} variables; secret: {', '.join(present) or 'none'})"

    def with_secret_vars(self, names: Iterable[str]) -> Environment:
        """The same values, with a service's own ``secret-vars`` secret too."""
        return Environment(self._given, (*self.service_vars, *names))

    def copies(self) -> tuple[str, ...]:
        """Other variables that hold a secret variable's value (GitLab's ``CI_JOB_TOKEN`` given
        as ``TWINE_PASSWORD``): kept from subprocesses as that variable is. A user name, a URL
        (an index pip installs from may be the one released to: ``PIP_INDEX_URL`` stays pip's)
        or a value shorter than 8 characters (``true``) is no secret another variable copies."""
        values = {value for name in self.secret_vars if name not in (*_USER_VARS, *_URL_VARS)
                  and len(value := self._values.get(name, "")) >= 8}
        return tuple(name for name, value in self._values.items()
                     if value in values and name not in self.secret_vars)

    def masked_values(self) -> list[str]:
        """The values to mask in output: every secret variable's whole value (a URL variable's
        password only, unless a service names it in ``secret-vars``)."""
        values = [self._values.get(name, "") for name in (*_MASKED_WHOLE, *self.service_vars)
                  if not (name == "TWINE_USERNAME" and self._values.get(name) == "__token__")]
        for name in _URL_VARS:
            for url in self._values.get(name, "").split():  # PIP_EXTRA_INDEX_URL: several
                if password := url_password(url):
                    values += [password, unquote(password)]
        return values

    def redactor(self) -> Redactor:
        return Redactor(self.masked_values())


@contextlib.contextmanager
def exposed(env: Mapping[str, str], names: Iterable[str]) -> Iterator[None]:
    """Put ``names`` back into ``os.environ`` for a library that reads them there itself
    (twine's trusted publishing reads GitHub's OIDC request variables), and take them out again."""
    added = {name: env[name] for name in names if name in env and name not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)
