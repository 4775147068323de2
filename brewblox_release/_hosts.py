"""Where things live: an image's registry host, loopback, and whether two URLs share an origin
(a credential goes only to its own origin: a redirect elsewhere carries none, unlike urllib's)."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


def split_image(image: str) -> tuple[str, str]:
    """(registry host, repository path) of an image name, with Docker Hub's defaults.

    >>> split_image("brewblox/svc"), split_image("127.0.0.1:5000/demo/svc")
    (('registry-1.docker.io', 'brewblox/svc'), ('127.0.0.1:5000', 'demo/svc'))
    """
    first, _, rest = image.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return "registry-1.docker.io", image if "/" in image else f"library/{image}"


def registry_host(image: str) -> str:
    """The registry an image repository lives on, as ``docker login`` names it."""
    host = split_image(image)[0]
    return "docker.io" if host == "registry-1.docker.io" else host


def is_loopback(host: str) -> bool:
    """Whether a host (``name``, ``name:port``, ``[v6]:port``) is this machine: plain HTTP, and
    no credentials needed, as the engine allows for 127.0.0.0/8."""
    if host.startswith("["):
        host = host[1:].split("]", maxsplit=1)[0]
    elif host.count(":") == 1:
        host = host.split(":", maxsplit=1)[0]
    if host == "localhost":
        return True
    try:  # an address, not a name that starts like one (127.0.0.1.nip.io)
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)  # which lower-cases the scheme and the host name
    try:
        port = parts.port
    except ValueError:
        port = None
    return parts.scheme, parts.hostname or "", port or {"http": 80, "https": 443}.get(parts.scheme)


def same_origin(url: str, other: str) -> bool:
    """Whether a credential for ``url`` may be sent to ``other``: the same scheme, host and port.

    >>> same_origin("https://ghcr.io/v2/x", "https://user:pw@GHCR.io:443/v2/y")
    True
    >>> same_origin("http://127.0.0.1:5000/v2/", "http://127.0.0.2:5000/blob")
    False
    """
    return _origin(url) == _origin(other)
