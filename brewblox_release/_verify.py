"""What every publishing run checks afterwards, reading the registry and the index as a user would
(docs/how-it-works.md, The order, step 5): every failing check is a line of the one error, and a
``WRONG`` row of the summary."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from packaging.version import Version

from . import _dockerconfig as dockerconfig, _sign as sign
from ._config import normalise_platform
from ._errors import PublishError, ReleaseError
from ._multiarch import own_tag, own_tags
from ._plan import highest_final
from ._prepared import Pushed, Run, Summary
from ._run import log, pause, redact, run as run_command
from ._tags import LATEST, as_version

if TYPE_CHECKING:
    from ._config import Config
    from ._index import Index
    from ._plan import ImagePlan
    from ._registry import Registry


#: The media types of a manifest list (an OCI index, or docker's own).
LISTS = ("application/vnd.oci.image.index.v1+json",
         "application/vnd.docker.distribution.manifest.list.v2+json")

#: Reads of a registry or index slow to show what was published, `PAUSE` seconds apart.
ATTEMPTS, PAUSE = 3, 2.0


def published_versions(config: Config, env: Mapping[str, str],
                       index: Index | None = None) -> set[str]:
    """This project's releases, which decide where ``latest`` goes: the index's (``pypi``; the
    run's ``index``, whose simple API is found once); else the highest final tag whose image's
    ``org.opencontainers.image.title`` is the project."""
    if config.pypi:
        from ._index import Index

        return (index or Index.from_env(env, config.index_url)).versions(config.name)
    if not config.image:
        return set()
    from ._registry import Registry

    registry = Registry.from_env(config.image, env)
    prefix = config.targets[0].prefix
    finals = [(version, tag) for tag in registry.tags() if tag.startswith(prefix)
              if (version := as_version(tag[len(prefix):])) is not None
              and not version.is_prerelease]
    for version, tag in sorted(finals, reverse=True):
        # A release's image: of this project, and of this version where its label says one (a
        # tag 20240101 put on an image of 1.0.0 is no release 20240101).
        labels = (registry.config(tag).get("config") or {}).get("Labels") or {}
        said = labels.get("org.opencontainers.image.version")
        if labels.get("org.opencontainers.image.title") == config.name and \
                (said is None or as_version(str(said)) == version):
            return {str(version)}
    return set()


def published_by(run: Run) -> set[str]:
    """`published_versions`, read through the run's own index (its simple API found once)."""
    return published_versions(run.config, run.env, run.index if run.config.pypi else None)


def verify(run: Run, summary: Summary, pushed: Pushed | None = None, *,
           attempts: int = ATTEMPTS) -> None:
    """Every check of the module's docstring that the plan calls for; without ``pushed`` (a
    verification of a past release) the digests are not compared, everything else is."""
    for attempt in range(1, attempts + 1):
        rows = Summary()
        problems = _problems(run, rows, pushed)
        if not problems or attempt == attempts:
            break
        log(f"verification: {len(problems)} check{'s'[:len(problems) - 1]} failed; reading "
            f"the registry and the index again in {PAUSE:.0f} s")
        if not pause(PAUSE):  # the run is stopping
            break
    summary.rows += rows.rows
    if problems:
        raise ReleaseError("verification failed:\n" + "\n".join(problems))


def _problems(run: Run, summary: Summary, pushed: Pushed | None) -> list[str]:
    problems = _index(run, summary) if run.config.pypi else []
    pushes = [image for image in run.plan.images if image.push]
    if pushes:
        from ._registry import Registry

        image = run.config.require_image()
        registry = Registry.from_env(image, run.env)
        if run.config.sign:  # `cosign verify` and `verify-attestation` of every image signed
            tags = own_tags(run, pushes)
            signed = pushed if pushed is not None else Pushed(
                {tag: registry.digest(tag) or "" for tag in tags})
            try:
                refs = sign.references(registry, signed, tags)
            except PublishError as e:  # a tag no longer names what this run pushed
                problems.append(str(e))
                refs = []
            with dockerconfig.login(image, run.env) as login:
                problems += sign.verify(run, refs, login, summary)
        problems += _latest(run, registry, pushes, summary)
        if pushed is not None:
            problems += _digests(registry, pushed, pushes[0].repository, summary)
        if run.config.multi_arch:
            problems += _lists(run, registry, pushes, summary)
        else:
            problems += _versions(run, registry, [(i.refs[0], i.tags[0], i.platform)
                                                  for i in pushes], summary)
    return problems


def _check(summary: Summary, where: str, what: str, problem: str | None) -> list[str]:
    summary.add(where, what, "ok" if problem is None else "WRONG")
    return [] if problem is None else [problem]


def _index(run: Run, summary: Summary) -> list[str]:
    """Plain ``pip install NAME`` resolves to the highest final release."""
    name = run.config.name
    top = highest_final(run.index.versions(name))
    if top is None:
        return []
    got = pip_resolves(run.index, name)
    return _check(summary, "verify index", f"pip install {name} -> {got}",
                  None if as_version(got) == top
                  else f"pip install {name} resolves to {got}, not {top}")


def pip_resolves(index: Index, name: str) -> str:
    """The version plain ``pip install NAME`` picks from the index: pip's own choice (pre-releases,
    yanked files), made without building an sdist and whatever Python the service requires (its
    image's, not necessarily this one's)."""
    from ._secret import display_url

    argv = [sys.executable, "-m", "pip", "index", "versions", "--ignore-requires-python",
            "--no-cache-dir", "--disable-pip-version-check", name]
    # This index only (in no command line), none of pip's own settings: no pip.conf, no PIP_*
    # variable adds another index or allows pre-releases.
    url = index.authenticated_simple_url(name)
    env = {"PIP_INDEX_URL": url, "PIP_CONFIG_FILE": os.devnull}
    if url.startswith("http://"):  # an index the release went to over plain HTTP: pip's too
        env["PIP_TRUSTED_HOST"] = urlsplit(url).netloc.rpartition("@")[2]
    for pre in ([], ["--pre"]):  # as pip install: a pre-release only where no final one is
        result = run_command([*argv, *pre], env=env, drop="PIP_", check=False, stream=False)
        found = re.search(r"^\S+ \((\S+)\)$", result.output, re.MULTILINE)  # "name (1.2.3)"
        if result.returncode == 0 and found is not None:
            return found[1]
        if "No matching distribution found" not in result.output:  # not a fall-back's case
            break
    why = next((line for line in reversed(result.lines) if line.strip()), "no answer")
    raise ReleaseError(redact(f"pip found no version of {name} to install from "
                              f"{display_url(index.simple_url)} ({why.strip()}): check that the "
                              "index serves the release's files"))


def _latest(run: Run, registry: Registry, pushes: Sequence[ImagePlan],
            summary: Summary) -> Iterator[str]:
    """Each published target's ``latest`` names its highest final release's image, where held;
    a one-target session checks its own (another job may be moving the others' right now)."""
    # This run's version only where it is a release that moves latest: a branch build of a
    # tagged commit (whose tag build may not have published yet) expects latest where it is.
    top = highest_final(published_by(run) | ({run.plan.version} if run.plan.latest else set()))
    if top is None:
        return
    tags, published = set(registry.tags()), {image.target for image in pushes}
    for target in (t for t in run.config.targets if t.name in published):
        latest, release = f"{target.prefix}{LATEST}", f"{target.prefix}{top}"
        if not {latest, release} <= tags:
            continue
        want = registry.digest(release)
        yield from _check(summary, "verify registry", f"{latest} -> {release}",
                          None if want is not None and registry.digest(latest) == want
                          else f"{latest} does not point at {release}")


def _digests(registry: Registry, pushed: Pushed, repository: str,
             summary: Summary) -> Iterator[str]:
    """Each tag names what this run pushed under it: its image's digest, or a list of exactly
    the images this run made it from, each platform once."""
    for tag, want in pushed.images.items():
        got = registry.digest(tag)
        yield from _check(summary, "verify registry", f"{repository}:{tag} is {want[:19]}",
                          None if got == want else f"{repository}:{tag} names "
                          f"{got or 'nothing'}, not the {want} this run pushed")
    for tag, platforms in pushed.lists.items():
        listed: dict[str, list[str]] = {}
        for platform, digest in _entries(registry, tag):
            listed.setdefault(platform, []).append(digest)
        made = {platform: digests[0] for platform, digests in listed.items() if len(digests) == 1}
        foreign = set()  # a platform's image that is neither the one pushed nor inside it
        for platform, digest in made.items():
            # An engine that stores images as indexes pushes one; the list made from it names
            # its image.
            if platform in platforms and digest != platforms[platform] and digest not in {
                    image for _, image in _entries(registry, platforms[platform])}:
                foreign.add(platform)
        reasons = [text.format(", ".join(sorted(names))) for names, text in (
            (set(platforms) - set(listed), "no {} image"),
            (set(listed) - set(platforms), "a {} image this run did not push"),
            ({p for p, digests in listed.items() if len(digests) > 1}, "{} more than once"),
            (foreign, "another {} image than this run pushed")) if names]
        yield from _check(summary, "verify registry",
                          f"{repository}:{tag} lists {', '.join(sorted(platforms))}",
                          f"{repository}:{tag} is not the list this run made: "
                          f"{'; '.join(reasons)}" if reasons else None)


def _entries(registry: Registry, reference: str) -> list[tuple[str, str]]:
    """The (``os/architecture[/variant]``, digest) of each image a manifest list holds (buildx's
    attestation entries, of platform ``unknown/unknown``, aside); nothing for a single image."""
    manifest = registry.manifest(reference) or {}
    if manifest.get("mediaType") not in LISTS:
        return []
    found = []
    for entry in manifest.get("manifests") or []:
        spec = entry.get("platform") or {}
        if spec.get("os") != "unknown":
            written = "/".join(str(spec[key]) for key in ("os", "architecture", "variant")
                               if spec.get(key))
            found.append((normalise_platform(written) or written, str(entry["digest"])))
    return found


def _lists(run: Run, registry: Registry, pushes: Sequence[ImagePlan],
           summary: Summary) -> Iterator[str]:
    """Every tag but ``latest`` is one list of every target's platform, of the version."""
    want = sorted(image.platform for image in pushes)
    lists = {registry.digest(t) for image in pushes for t in image.tags
             if t not in run.config.latest_tags}
    first = own_tag(run, pushes[0])
    entries = _entries(registry, first)
    got = sorted(platform for platform, _ in entries)
    repository = pushes[0].repository
    yield from _check(summary, "verify registry", f"{repository}:{first} lists {', '.join(got)}",
                      None if got == want and len(lists) == 1 else
                      f"{first} is not one manifest list of exactly {', '.join(want)} under "
                      f"every tag (platforms {got}, digests {sorted(d or '-' for d in lists)})")
    yield from _versions(run, registry, [(f"{repository}@{digest}", digest, platform)
                                         for platform, digest in entries], summary,
                         shown=f"{first} ")


def _versions(run: Run, registry: Registry, images: Sequence[tuple[str, str, str]],
              summary: Summary, shown: str = "") -> Iterator[str]:
    """Each image (its reference, its tag or digest, its platform) holds the plan's version: read
    from its top layers in the registry where the template built it, else pulled and run."""
    from . import _docker as docker

    name, version = run.config.name, run.plan.version
    with ThreadPoolExecutor(max_workers=max(1, len(images))) as pool:
        read = list(pool.map(lambda i: registry.package_version(i[1], name), images))
        if None in read:
            with dockerconfig.login(run.config.require_image(), run.env) as login:
                ran = iter(pool.map(lambda i: docker.package_version(
                    i[0], i[2], name, config=login),
                    [i for i, got in zip(images, read, strict=True) if got is None]))
                read = [got if got is not None else next(ran) for got in read]
    for (ref, _, platform), got in zip(images, read, strict=True):
        what = f"{shown}{platform} holds" if shown else f"{ref} holds"
        yield from _check(summary, "verify image", f"{what} {name} {got}",
                          None if as_version(str(got)) == Version(version)
                          else f"{what} {name} {got}, not {version}")
