"""Credentials as values that never show themselves, and the redactor that masks them in text;
`display_url` is uv's ``DisplaySafeUrl`` idea for the URLs that carry credentials."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

MASK = "****"


class Secret:
    """A credential value: ``****`` however it is printed; `reveal` hands it to its consumer.

    >>> token = Secret("pypi-AgEIcHlwaS5vcmc")
    >>> f"{token} {token!r}", token.reveal()[:4], bool(Secret(""))
    ("**** Secret('****')", 'pypi', False)
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
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


def _userinfo(url: str) -> tuple[str, str, str, str] | None:
    """(``scheme://``, user, password, the rest) of a URL with userinfo, read as leniently as a
    leak would be: the userinfo runs to the last ``@`` (a raw ``/`` or ``@`` in a password)."""
    scheme, sep, rest = url.partition("://") if "://" in url else ("", "", url)
    if "@" not in rest:
        return None
    userinfo, _, host = rest.rpartition("@")
    user, _, password = userinfo.partition(":")
    if any(c in user for c in "/?#"):  # the @ is in the path or query, not in a userinfo
        return None
    return scheme + sep, user, password, host


def url_password(url: str) -> str:
    """The password of a URL's userinfo, or ``""``.

    >>> url_password("https://u:pypi-x/p@ss@host.example/legacy/")
    'pypi-x/p@ss'
    """
    parts = _userinfo(url)
    return parts[2] if parts else ""


def display_url(url: str) -> str:
    """``url`` (or an image reference) with its whole userinfo (a token may be the user) masked.

    >>> display_url("https://user:pa55@upload.example.org/legacy/")
    'https://****@upload.example.org/legacy/'
    >>> display_url("http://ci:pa/ss@127.0.0.1:9/simple/"), display_url("https://h/a@b")
    ('http://****@127.0.0.1:9/simple/', 'https://h/a@b')
    >>> display_url("https://ghp_T0KEN@github.com/o/r"), display_url("u:p@host/o/r")
    ('https://****@github.com/o/r', '****@host/o/r')
    >>> display_url("org/svc@sha256:abc")
    'org/svc@sha256:abc'
    """
    parts = _userinfo(url)
    return url if parts is None else f"{parts[0]}{MASK}@{parts[3]}"


_MIN_SECRET = 3  # shorter values would mask ordinary text without protecting anything
#: The whole userinfo of a URL, whatever the URL: ``scheme://USER:PASSWORD@host``, and the
#: token written as a user name alone (``https://TOKEN@host/``).
_URL_USERINFO = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@]+@")
#: The userinfo of a reference without a scheme: ``USER:PASSWORD@host/path`` (an image name).
_REF_USERINFO = re.compile(
    r"(?<![\w.@/:-])[\w.~%!$&'()*+,;=-]+:[^\s/@]+@(?=[A-Za-z0-9.-]+(?::\d+)?/)")


class Redactor:
    """Masks a fixed set of secret values in text, and the password of any URL.

    >>> Redactor(["s3cr3t"])("login with s3cr3t to https://me:pw@example.org/")
    'login with **** to https://****@example.org/'
    >>> Redactor()("https://TOKEN@github.com/o/r and user:pw@127.0.0.1:5000/o/r, a@b.c")
    'https://****@github.com/o/r and ****@127.0.0.1:5000/o/r, a@b.c'
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        variants = set()
        for secret in secrets:
            # Output is masked a line at a time: each line of a multi-line secret (a key in PEM
            # form) is a secret of its own. URL-quoted and form-encoded forms too.
            for part in {secret.strip(), *(line.strip() for line in secret.splitlines())}:
                if len(part) >= _MIN_SECRET:
                    variants.update({part, quote(part, safe=""), quote(part),
                                     quote_plus(part, safe="")})
        # Longest first, so that a secret containing another is masked whole.
        self.secrets = sorted(variants, key=len, reverse=True)

    def adding(self, secrets: Iterable[str]) -> Redactor:
        """This redactor and ``secrets`` (with their variants) together."""
        merged = Redactor()
        merged.secrets = sorted({*self.secrets, *Redactor(secrets).secrets}, key=len, reverse=True)
        return merged

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        if "@" in text:
            text = _URL_USERINFO.sub(rf"\g<head>{MASK}@", text)
            text = _REF_USERINFO.sub(f"{MASK}@", text)
        return text
