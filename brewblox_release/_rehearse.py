"""Rehearsal (docs/how-it-works.md): the real publishing path against a throwaway registry and
index on loopback; the real destinations' credentials are removed, so it can never publish."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from ._hosts import split_image
from ._run import log
from ._servers import IndexServer, RegistryServer

#: Variables a rehearsal never passes on: the real destinations' credentials and addresses.
CLEARED = ("TWINE_USERNAME", "TWINE_PASSWORD", "TWINE_REPOSITORY", "TWINE_REPOSITORY_URL",
           "DOCKER_USERNAME", "DOCKER_PASSWORD", "ACTIONS_ID_TOKEN_REQUEST_URL",
           "ACTIONS_ID_TOKEN_REQUEST_TOKEN")


@contextlib.contextmanager
def rehearsal(image: str, env: Mapping[str, str]) -> Iterator[dict[str, str]]:
    """Start a registry and an index on loopback; yield the environment that points at them."""
    with tempfile.TemporaryDirectory(prefix="brewblox-rehearsal-") as tmp, \
            RegistryServer(Path(tmp)) as registry, IndexServer(Path(tmp)) as index:
        log(f"rehearsal: registry at {registry.address}, index at {index.url}")
        yield {**{k: v for k, v in env.items() if k not in CLEARED},
               "BREWBLOX_RELEASE_IMAGE": f"{registry.address}/{split_image(image)[1]}",
               "TWINE_REPOSITORY_URL": index.url, "BREWBLOX_RELEASE_INDEX_URL": index.simple_url}
        log("rehearsal: stopping the registry and the index")
