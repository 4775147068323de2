"""Credentials as values that never show themselves (STYLE: secrets as types).

A `Secret` prints as ``****`` through ``str``, ``repr``, f-strings and logging alike: showing
the value takes a call to `Secret.reveal`, made only where the value is handed to the one
consumer that needs it (twine's settings, ``docker login``'s standard input, an HTTP header).
`display_url` is uv's ``DisplaySafeUrl`` idea for the URLs that carry credentials.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

__all__ = ["MASK", "Secret", "display_url"]

MASK = "****"


class Secret:
    """A credential value.

    >>> token = Secret("pypi-AgEIcHlwaS5vcmc")
    >>> f"{token} {token!r}", token.reveal()[:4], bool(Secret(""))
    ("**** Secret('****')", 'pypi', False)
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The value itself: for the one place that hands it to its consumer."""
        return self._value

    def __str__(self) -> str:
        return MASK

    def __repr__(self) -> str:
        return f"Secret('{MASK}')"

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __reduce__(self) -> tuple[object, ...]:  # no pickling a credential into a file
        raise TypeError("a Secret is not pickled")


def display_url(url: str) -> str:
    """``url`` with the password of its userinfo masked, for messages.

    >>> display_url("https://user:pa55@upload.example.org/legacy/")
    'https://user:****@upload.example.org/legacy/'
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK if "@" in url else url
    if parts.password is None and "@" not in parts.netloc:
        return url
    user, _, host = parts.netloc.rpartition("@")
    name = user.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{name}:{MASK}@{host}" if name else
                                     f"{MASK}@{host}"))
