"""The plan: what one run publishes where, computed before anything is built (pure); the rows of
docs/how-it-works.md's table are the branches of `make_plan`."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

from packaging.version import Version

from ._ci import CiContext, Event
from ._config import Config, Target
from ._errors import VersionError
from ._project import TagRule
from ._tags import LOCAL, as_version, branch_tag, version_tags

#: setuptools_scm's default tags: ``1.2.3``, ``v1.2.3``, ``name-1.2.3``.
DEFAULT_TAGS = TagRule()


@dataclass(frozen=True)
class ImagePlan:
    """One target's image: where it goes and under which tags."""

    target: str
    platform: str
    context: str
    repository: str
    tags: tuple[str, ...]
    push: bool

    @property
    def refs(self) -> tuple[str, ...]:
        return tuple(f"{self.repository}:{tag}" for tag in self.tags)


@dataclass(frozen=True)
class Plan:
    """What a run does: ``upload`` the sdist and wheel, push or load (``push=False``) each
    image, move ``latest``; ``reasons`` say why something is not published; with
    ``multi_arch``, every tag is one manifest list (docs/multi-platform.md)."""

    version: str
    context: CiContext
    upload: bool
    images: tuple[ImagePlan, ...]
    latest: bool = False
    reasons: tuple[str, ...] = ()
    multi_arch: bool = False

    @property
    def publishes(self) -> bool:
        return self.upload or any(image.push for image in self.images)

    @property
    def is_dev(self) -> bool:
        return Version(self.version).is_devrelease

    def image(self, target: str) -> ImagePlan:
        return {image.target: image for image in self.images}[target]

    def to_dict(self) -> dict[str, Any]:
        """The plan as plain data, for ``--json``."""
        ctx = self.context
        return {
            "version": self.version,
            "event": {"provider": ctx.provider, "kind": ctx.event.name.lower(),
                      "branch": ctx.branch, "tag": ctx.tag, "repository": ctx.repository,
                      "fork": ctx.fork, "manual": ctx.manual, "commit": ctx.commit,
                      "refused": ctx.refusal},
            "publishes": self.publishes,
            "index": {"upload": self.upload},
            "latest": self.latest,
            "multi_arch": self.multi_arch,
            "images": [{**asdict(i), "tags": list(i.tags)} for i in self.images],
            "notes": list(self.reasons),
        }

    def render(self) -> str:
        """The plan as the lines that ``version`` and ``--dry-run`` print."""
        lines = [f"event:   {self.context.describe()}", f"version: {self.version}",
                 f"index:   upload sdist and wheel of {self.version}" if self.upload
                 else "index:   nothing"]
        for image in self.images:
            action = "push" if image.push else "build and load"
            lines.append(f"{image.target + ':':<8} {action} {', '.join(image.refs)}")
        if self.multi_arch and any(image.push for image in self.images):
            platforms = ", ".join(image.platform for image in self.images)
            lines.append(f"lists:   every tag above is one manifest list of {platforms}")
        lines.extend(f"note:    {reason}" for reason in self.reasons)
        return "\n".join(lines)


def tag_version(tag: str, tags: TagRule = DEFAULT_TAGS) -> Version:
    """The version a release tag names: ``1.2.3``, ``v1.2.3``, or what the service's tag regex
    takes (``svc-1.2.3``); an error for a tag that is not one, has a local part or an epoch."""
    version = tags.version(tag)
    if version is None:
        regex = "" if tags.is_default else f" and this service's tag regex {tags.regex!r}"
        raise VersionError(
            f"tag {tag!r} is not a version: release tags look like 1.2.3 or v1.2.3 "
            f"(PEP 440{regex}). Delete it (git push --delete origin TAG) and tag again")
    return version


def highest_final(versions: Iterable[str]) -> Version | None:
    """The highest final release among ``versions``; dev and pre-releases do not count."""
    parsed = (as_version(text) for text in versions)
    # dev releases count as pre-releases too
    return max((v for v in parsed if v is not None and not v.is_prerelease), default=None)


def make_plan(ctx: CiContext, version: str, config: Config,
              published: Iterable[str] = (), tags: TagRule = DEFAULT_TAGS) -> Plan:
    """Decide what this run publishes, as one manifest list per tag with ``multi-arch``.

    ``published``: the versions the index and the registry hold (``latest`` moves only to a
    final release at least as high as theirs); ``tags``: the service's release tags (another
    service's tag builds only).

    >>> from pathlib import Path
    >>> cfg = Config(Path("."), "svc", image="org/svc")
    >>> make_plan(CiContext("github", Event.BRANCH, branch="feature/X"), "1.2.4.dev5",
    ...           cfg).image("arm").tags
    ('rpi-feature-x',)
    """
    image = config.image or "<image>"
    prefixes = tuple(t.prefix for t in config.targets)
    no_pypi = () if config.pypi else ("pypi = false: the package is not published to an index",)

    def plan(tags_of: Callable[[Target], tuple[str, ...]], reasons: Iterable[str], *,
             upload: bool = False, push: bool = True, latest: bool = False) -> Plan:
        images = tuple(ImagePlan(t.name, t.platform, t.context, image, tags_of(t), push)
                       for t in config.targets)
        return Plan(version, ctx, upload=upload, images=images, latest=latest,
                    reasons=tuple(reasons), multi_arch=config.multi_arch)

    def build_only(*reasons: str) -> Plan:
        return plan(lambda t: (t.prefix + LOCAL,), reasons, push=False)

    if ctx.event is Event.LOCAL:
        return build_only("local run: builds only; --publish releases the checked-out ref")
    if ctx.event is Event.PULL_REQUEST:
        return build_only("pull request: builds only, publishes nothing")
    # Publishing is allowed, not denied: a fork, a payload in doubt, an event off the
    # provider's allow-list or another commit than the one CI names builds only.
    refused = [f"{why}: builds only, publishes nothing" for why in (ctx.refusal, ctx.doubt)
               if why]
    if ctx.fork:
        refused.insert(0, "a fork's build: publishes nothing")
    if refused:
        return build_only(*refused)

    if ctx.event is Event.TAG:
        assert ctx.tag is not None
        if tags.version(ctx.tag) is None:  # another service's, or none's (nightly)
            rule = ("release tags look like 1.2.3 or v1.2.3" if tags.is_default
                    else f"its tag regex is {tags.regex}")
            return build_only(f"tag {ctx.tag} is not a release tag of {config.name} ({rule}): "
                              "builds only, publishes nothing")
        wanted = tag_version(ctx.tag, tags)
        if wanted != Version(version):
            raise VersionError(
                f"tag {ctx.tag} does not agree with the version setuptools_scm computes for "
                f"this checkout ({version}); is the tag on this commit, and does "
                f"{tags.declared_in} accept it? Nothing was built")
        top = highest_final(published)
        latest = not wanted.is_prerelease and (top is None or wanted >= top)
        held = (f"{version} is a pre-release: latest stays where it is" if wanted.is_prerelease
                else f"{version} is older than the highest release {top}: latest stays there")
        return plan(lambda t: version_tags(version, t.prefix, latest=latest),
                    no_pypi if latest else (held, *no_pypi), upload=config.pypi, latest=latest)

    branch = ctx.branch
    if not branch:
        raise VersionError("a branch push without a branch name: the CI environment does not say "
                           "which branch was pushed; pass --ref refs/heads/NAME")
    if branch in config.quiet_branches:
        return build_only(f"push to {branch}, a quiet branch: builds only, publishes nothing")

    def branch_tags(t: Target) -> tuple[str, ...]:
        return (branch_tag(branch, t.prefix, prefixes),)

    if Version(version).is_postrelease and not Version(version).is_devrelease:
        # A version scheme without dev versions (post-release): plain pip would install it.
        return plan(branch_tags, (
            f"{version} is no dev version, so it goes to no index (plain pip would install it): "
            "set a version_scheme that makes dev versions (guess-next-dev, the default) to "
            "publish branch builds to the index; this build pushes its branch tags only",))
    if not Version(version).is_devrelease:
        # The race guard: a release tag arrived on this commit while the branch built.
        return plan(branch_tags, (f"this commit carries release {version}: the tag's own build "
                                  "publishes it; this build pushes its branch tags only",))
    return plan(branch_tags, no_pypi, upload=config.pypi)
