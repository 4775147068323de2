"""Sample service repositories in tmp_path, with real git histories (test support, not shipped)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import brewblox_release

TEMPLATE = Path(brewblox_release.__file__).parent / "templates" / "Dockerfile"

#: A fixed identity and clock, like setuptools_scm's WorkDir: commits are reproducible.
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "test@example.invalid",
    "GIT_AUTHOR_DATE": "2024-01-01T00:00:00+00:00",
    "GIT_COMMITTER_DATE": "2024-01-01T00:00:00+00:00",
    "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
}


class GitRepo:
    """A git work tree with helpers to commit and tag."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def git(self, *args: str) -> str:
        return subprocess.run(["git", *args], cwd=self.path, env={**os.environ, **GIT_ENV},
                              check=True, capture_output=True, text=True).stdout.strip()

    def init(self, branch: str = "main") -> GitRepo:
        self.path.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", branch)
        return self

    def write(self, name: str, text: str) -> Path:
        path = self.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def commit(self, message: str = "change", *, files: dict[str, str] | None = None) -> str:
        for name, text in (files or {}).items():
            self.write(name, text)
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD")

    def tag(self, name: str) -> None:
        self.git("tag", "-a", name, "-m", name)

    def checkout(self, *args: str) -> None:
        self.git("checkout", "-q", *args)

    @property
    def head(self) -> str:
        return self.git("rev-parse", "HEAD")


def pyproject(name: str = "demo-svc", *, image: str | None = "brewblox/demo-svc",
              dependencies: Sequence[str] = (), extra: str = "") -> str:
    deps = ", ".join(f'"{d}"' for d in dependencies)
    table = f'image = "{image}"\n' if image else ""
    return f"""\
[build-system]
requires = ["setuptools>=64", "setuptools-scm>=8"]
build-backend = "setuptools.build_meta"

[project]
name = "{name}"
description = "A sample service"
readme = "README.md"
requires-python = ">=3.10"
dependencies = [{deps}]
dynamic = ["version"]

[tool.setuptools]
packages = ["{name.replace("-", "_")}"]

[tool.setuptools_scm]

[tool.brewblox-release]
secret-vars = ["SERVICE_SIGNING_KEY"]
{table}{extra}"""


NOXFILE = "from brewblox_release.sessions import *  # noqa: F403\n"


def make_service(path: Path, name: str = "demo-svc", *, image: str | None = "brewblox/demo-svc",
                 dependencies: Sequence[str] = (), extra: str = "",
                 branch: str = "main") -> GitRepo:
    """A service repository as docs/versions.md describes it, with one commit on ``branch``."""
    repo = GitRepo(path).init(branch)
    module = name.replace("-", "_")
    repo.write("pyproject.toml", pyproject(name, image=image, dependencies=dependencies,
                                           extra=extra))
    repo.write("README.md", f"# {name}\n\nA sample service.\n")
    repo.write(f"{module}/__init__.py",
               "from importlib.metadata import version\n\n"
               f"__version__ = version({name!r})\n")
    repo.write("noxfile.py", NOXFILE)
    repo.write(".gitignore", "dist/\npkg/\n.nox/\n*.egg-info/\n__pycache__/\n")
    for context in ("docker", "rpi-docker"):
        (path / context).mkdir(exist_ok=True)
        shutil.copy(TEMPLATE, path / context / "Dockerfile")
    repo.commit("initial commit")
    return repo


BASE_REPO = "brewblox-release/python-base"

#: One target, amd64, on the rig's base image (.ci/provision.sh), which no registry holds.
AMD64_TARGETS = f"""\
build-args = {{ BUILD_BASE_IMAGE = "{BASE_REPO}:bookworm-amd64" }}

[[tool.brewblox-release.targets]]
name = "amd64"
context = "docker"
platform = "linux/amd64"
build-args = {{ BASE_IMAGE = "{BASE_REPO}:bookworm-amd64" }}
"""

#: Both default targets on the rig's base images.
RIG_TARGETS = AMD64_TARGETS + f"""
[[tool.brewblox-release.targets]]
name = "arm"
context = "rpi-docker"
platform = "linux/arm/v7"
prefix = "rpi-"
build-args = {{ BASE_IMAGE = "{BASE_REPO}:bookworm-armv7" }}
"""


# --- running the sessions as a user would -------------------------------------------------------

_PROVIDER_VARS = ("GITHUB_", "TRAVIS", "GITLAB_CI", "CI_", "TF_BUILD", "BUILD_", "SYSTEM_",
                  "TWINE_", "DOCKER_USERNAME", "DOCKER_PASSWORD", "BREWBLOX_RELEASE_",
                  "ACTIONS_ID_TOKEN")


def clean_env() -> dict[str, str]:
    """os.environ without any CI provider's, twine's or the tool's own variables."""
    return {k: v for k, v in os.environ.items() if not k.startswith(_PROVIDER_VARS)}


def github_env(tmp: Path, ref: str, *, event: str = "push", payload: str | None = None,
               repository: str = "brewblox/demo-svc") -> dict[str, str]:
    """GitHub Actions' variables and an event payload (by default a push in ``repository``,
    not a fork) for a run of ``ref``."""
    path = tmp / "github-event.json"
    if payload is None:
        payload = json.dumps({"ref": ref, "repository": {"full_name": repository,
                                                         "fork": False}})
    path.write_text(payload)
    return {"GITHUB_ACTIONS": "true", "GITHUB_EVENT_NAME": event, "GITHUB_REF": ref,
            "GITHUB_REPOSITORY": repository, "GITHUB_EVENT_PATH": str(path)}


def travis_env(*, tag: str | None = None, branch: str | None = None,
               pull_request: str = "false") -> dict[str, str]:
    env = {"TRAVIS": "true", "TRAVIS_REPO_SLUG": "brewblox/demo-svc",
           "TRAVIS_PULL_REQUEST": pull_request, "TRAVIS_EVENT_TYPE": "push",
           "TRAVIS_BRANCH": tag or branch or ""}
    if tag:
        env["TRAVIS_TAG"] = tag
    return env


def gitlab_env(*, branch: str) -> dict[str, str]:
    return {"GITLAB_CI": "true", "CI_PIPELINE_SOURCE": "push", "CI_COMMIT_BRANCH": branch,
            "CI_COMMIT_REF_NAME": branch, "CI_PROJECT_PATH": "brewblox/demo-svc"}


def azure_pr_env(*, source: str, target: str = "develop") -> dict[str, str]:
    return {"TF_BUILD": "True", "BUILD_REASON": "PullRequest",
            "BUILD_SOURCEBRANCH": "refs/pull/7/merge", "BUILD_REPOSITORY_NAME": "demo-svc",
            "SYSTEM_PULLREQUEST_SOURCEBRANCH": f"refs/heads/{source}",
            "SYSTEM_PULLREQUEST_TARGETBRANCH": f"refs/heads/{target}",
            "SYSTEM_PULLREQUEST_ISFORK": "False"}


def destinations(registry: str, index_url: str, image: str = "brewblox/demo-svc") -> dict[str, str]:
    """Point the release at loopback servers, as a fork or a rehearsal would."""
    return {"BREWBLOX_RELEASE_IMAGE": f"{registry}/{image}",
            "TWINE_REPOSITORY_URL": index_url,
            "BREWBLOX_RELEASE_INDEX_URL": f"{index_url}simple/"}


#: Credentials every session run by the tests carries: the loopback servers accept any, so the
#: real publishing paths (docker login, twine upload) use them, and no output may show them.
#: The password has characters that a URL percent-encodes; SERVICE_SIGNING_KEY, a service's own
#: secret (``secret-vars`` of the samples), has several lines.
SENTINELS = {
    "TWINE_USERNAME": "sentinel-user-Qm7x",
    "TWINE_PASSWORD": "pypi-SENTINEL-9xKf3/p@ss+word",
    "DOCKER_USERNAME": "sentinel-docker",
    "DOCKER_PASSWORD": "SENTINEL-docker-Lp4w-password",
    "SERVICE_SIGNING_KEY": "-----BEGIN SENTINEL KEY-----\nSENTINEL-key-line-Zr8q\n"
                           "-----END SENTINEL KEY-----\n",
}
SECRET_VALUES = (SENTINELS["TWINE_USERNAME"], SENTINELS["TWINE_PASSWORD"],
                 SENTINELS["DOCKER_PASSWORD"], "SENTINEL-key-line-Zr8q")
#: Every output the tests' subprocesses printed, for the suite-wide scan (tests/conftest.py).
CAPTURED: list[tuple[str, str]] = []


def leaked_secrets(text: str, secrets: Sequence[str] = SECRET_VALUES) -> list[str]:
    """The secret values that appear in ``text``: plain, percent-encoded or form-encoded."""
    from urllib.parse import quote, quote_plus

    return [s for s in secrets
            if s in text or quote(s, safe="") in text or quote_plus(s, safe="") in text]


def nox(repo: GitRepo | Path, *args: str, env: dict[str, str] | None = None,
        timeout: float = 600, secrets: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``nox ARGS`` in the service, as a user would; output is stdout and stderr merged.

    With ``secrets`` (the default) the run carries `SENTINELS` as its credentials, with a
    docker config of its own, and its whole output is checked for them: every session the
    tests run doubles as a check that no secret reaches a log.
    """
    cwd = repo.path if isinstance(repo, GitRepo) else repo
    full_env = clean_env()
    if secrets:
        docker_config = cwd.parent / f".docker-config-{cwd.name}"
        docker_config.mkdir(exist_ok=True)
        full_env.update({**SENTINELS, "DOCKER_CONFIG": str(docker_config)})
    full_env.update(env or {})
    started = time.time()
    result = subprocess.run(["python", "-m", "nox", *args], cwd=cwd, env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            timeout=timeout, check=False)
    # What it printed and the log files it wrote (the programs' output, docs/sessions.md).
    logs = "".join(path.read_text(errors="replace") for path in run_logs(full_env, started))
    CAPTURED.append((f"nox {' '.join(args)} in {cwd}", result.stdout + logs))
    if secrets:
        leaks = leaked_secrets(result.stdout + logs)
        assert not leaks, f"secret values in the output or log of nox {' '.join(args)}: {leaks}"
    return result


def run_logs(env: Mapping[str, str], since: float) -> list[Path]:
    """The log files of the commands run since ``since`` with this environment's cache."""
    from brewblox_release._buildenv import cache_dir

    logs = cache_dir(env) / "logs"
    return sorted(p for p in logs.glob("*.log") if p.stat().st_mtime >= since - 1) \
        if logs.is_dir() else []


def htpasswd(path: Path, user: str, password: str) -> Path:
    """An htpasswd file with a bcrypt hash, as docker-registry requires (through libcrypt)."""
    import warnings

    with warnings.catch_warnings():  # crypt is deprecated since Python 3.11; it is the test's
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt

        hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH))  # noqa: S324 (bcrypt, what docker-registry reads)
    path.write_text(f"{user}:{hashed}\n")
    return path


# --- reading a registry through its HTTP API (independently of the library) ---------------------

def _get(url: str, accept: str | None = None,
         auth: tuple[str, str] | None = None) -> tuple[dict[str, str], bytes]:
    request = urllib.request.Request(url)
    if accept:
        request.add_header("Accept", accept)
    if auth:
        basic = base64.b64encode(":".join(auth).encode()).decode()
        request.add_header("Authorization", f"Basic {basic}")
    with urllib.request.urlopen(request, timeout=10) as response:
        return {k.lower(): v for k, v in response.headers.items()}, response.read()


def registry_tags(address: str, repository: str,
                  auth: tuple[str, str] | None = None) -> list[str]:
    try:
        _, body = _get(f"http://{address}/v2/{repository}/tags/list", auth=auth)
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return []
        raise
    return sorted(json.loads(body).get("tags") or [])


_MANIFEST = ("application/vnd.docker.distribution.manifest.v2+json, "
             "application/vnd.oci.image.manifest.v1+json")


LISTS = ("application/vnd.oci.image.index.v1+json, "
         "application/vnd.docker.distribution.manifest.list.v2+json")


def registry_list(address: str, repository: str, tag: str) -> tuple[str, list[str]]:
    """(digest, platforms) of a tag that must be a manifest list, read from the registry."""
    headers, body = _get(f"http://{address}/v2/{repository}/manifests/{tag}", LISTS)
    manifest = json.loads(body)
    assert manifest.get("mediaType") in LISTS.split(", "), f"{tag} is not a list: {manifest}"
    platforms = []
    for entry in manifest["manifests"]:
        p = entry["platform"]
        if p.get("os") == "unknown":  # an attestation
            continue
        platforms.append("/".join([p["os"], p["architecture"], *([p["variant"]] if
                                   p.get("variant") and p["architecture"] != "arm64" else [])]))
    return headers["docker-content-digest"], sorted(platforms)


def registry_digest(address: str, repository: str, tag: str) -> str:
    headers, _ = _get(f"http://{address}/v2/{repository}/manifests/{tag}", _MANIFEST)
    return headers["docker-content-digest"]


def registry_config(address: str, repository: str, tag: str) -> dict[str, Any]:
    """The image config (architecture, variant, labels) behind a tag."""
    _, body = _get(f"http://{address}/v2/{repository}/manifests/{tag}", _MANIFEST)
    manifest = json.loads(body)
    assert "config" in manifest, f"{tag} is not a single-platform image manifest: {manifest}"
    _, blob = _get(f"http://{address}/v2/{repository}/blobs/{manifest['config']['digest']}")
    return dict(json.loads(blob))


def index_files(packages: Path) -> list[str]:
    """The files a pypiserver holds (its packages directory)."""
    return sorted(p.name for p in packages.iterdir()) if packages.is_dir() else []


def image_package_version(ref: str, platform: str, name: str = "demo-svc", *,
                          pull: bool = True) -> str:
    """Run the image (under qemu for arm) and print the installed package's version."""
    out = subprocess.run(
        ["docker", "run", "--rm", "--pull", "always" if pull else "never", "--platform", platform,
         "--entrypoint", "python3", ref, "-c",
         f"import importlib.metadata as m; print(m.version({name!r}))"],
        capture_output=True, text=True, check=True, timeout=300)
    return out.stdout.strip()


def push_started(registry_dir: Path, repository: str = "brewblox/demo-svc") -> bool:
    """Whether the registry has begun to receive an image (a blob upload or a layer link)."""
    repo = registry_dir / "registry" / "docker" / "registry" / "v2" / "repositories" / repository
    return (repo / "_uploads").is_dir() or (repo / "_layers").is_dir()


def when(condition: Callable[[], bool], action: Callable[[], None],
         deadline: float = 600) -> threading.Thread:
    """Run ``action`` (in a thread) as soon as ``condition`` holds: a fault at a chosen moment."""
    def watch() -> None:
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            if condition():
                action()
                return
            time.sleep(0.02)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread
