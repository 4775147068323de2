"""One tag for every platform, and builds spread over machines (docs/multi-platform.md): each
target's image pushed under a tag of its own, a `Record` of it for a split build's merge, and the
plan's tags made from the pushed images' digests."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ._errors import PublishError, ReleaseError
from ._prepared import Pushed, Run, Summary
from ._run import log

if TYPE_CHECKING:
    from ._dockerconfig import DockerConfig
    from ._plan import ImagePlan
    from ._registry import Registry


@dataclass(frozen=True)
class Record:
    """What one ``--stage`` run pushed: ``DIR/<target>.json``."""

    target: str
    platform: str
    digest: str
    version: str
    commit: str
    repository: str

    @property
    def source(self) -> str:
        return f"{self.repository}@{self.digest}"

    def write(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{self.target}.json"
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return path

    @classmethod
    def read(cls, path: Path) -> Record:
        try:
            data = json.loads(path.read_text())
            return cls(**{k: str(data[k]) for k in cls.__dataclass_fields__})
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ReleaseError(f"{path}: not a stage record ({type(e).__name__}: {e}); stage "
                               "the target again with --stage") from None


def own_tag(run: Run, image: ImagePlan) -> str:
    """The target's version or branch tag (not ``latest``)."""
    return next(t for t in image.tags if t not in run.config.latest_tags)


def own_tags(run: Run, images: Sequence[ImagePlan]) -> list[str]:
    """`own_tag` of each image, once each (targets that share a list share their tags)."""
    return list(dict.fromkeys(own_tag(run, image) for image in images))


def shares_tags(run: Run, image: ImagePlan) -> bool:
    """Whether another target of the plan has one of the image's tags (a shared prefix)."""
    return any(set(image.tags) & set(other.tags) for other in run.plan.images
               if other.target != image.target)


def built_as(run: Run, image: ImagePlan) -> ImagePlan:
    """The image as built: where targets share its tags, under its `stage_tag` instead (the
    engine holds one image per name)."""
    return replace(image, tags=(stage_tag(run, image),)) if shares_tags(run, image) else image


def stage_tag(run: Run, image: ImagePlan) -> str:
    """Where a split build's stage pushes a target's image: upper case, so that no plan's tag
    is ever this one and until the merge no tag a user pulls has changed."""
    target = re.sub(r"[^A-Za-z0-9_.-]", "-", image.target)
    return f"STAGE-{run.info.git.commit[:12]}-{target}"


def stage(run: Run, image: ImagePlan, directory: Path | None, config: DockerConfig) -> Record:
    """Push one target's built image, return its record: under its own tag; under its
    `stage_tag` in a split build (to ``directory``) or where targets share tags (no push
    overwrites another's)."""
    from . import _docker as docker

    shared = shares_tags(run, image)  # then it was built under its stage tag
    tag = stage_tag(run, image) if shared or directory is not None else own_tag(run, image)
    ref = f"{image.repository}:{tag}"
    if directory is not None and not shared:
        config.client().image.tag(image.refs[0], ref)
    digest = docker.push([ref], config=config).get(ref)
    if digest is None:  # docker did not say: the registry does
        from ._registry import Registry

        digest = Registry.from_env(image.repository, run.env).digest(tag)
    if not digest:
        raise PublishError(f"{ref} was pushed but the registry does not show it: re-run the stage")
    record = Record(image.target, image.platform, digest, run.plan.version,
                    run.info.git.commit, image.repository)
    written = f"; record {record.write(directory)}" if directory is not None else ""
    log(f"staged {image.target} ({image.platform}) as {image.repository}:{tag} "
        f"({record.digest}){written}")
    return record


def read_records(run: Run, directory: Path) -> dict[str, Record]:
    """The records of ``directory``, after checking that they are exactly one per target, all
    of this commit, this version and this repository; else one error that says which."""
    where = f"--merge {directory}"
    if not directory.is_dir():
        raise ReleaseError(f"{where}: no such directory: stage each target first "
                           "(nox -s docker -- --target NAME --stage DIR); nothing was published")
    found = {path.stem: Record.read(path) for path in sorted(directory.glob("*.json"))}
    problems = []
    for target in run.config.targets:
        record = found.get(target.name)
        if record is None:
            problems.append(f"no record of target {target.name} ({target.platform}): stage it "
                            f"with `nox -s docker -- --target {target.name} --stage DIR`")
            continue
        image = run.plan.image(target.name)
        for what, got, want in (("commit", record.commit, run.info.git.commit),
                                ("version", record.version, run.plan.version),
                                ("repository", record.repository, image.repository),
                                ("platform", record.platform, target.platform),
                                ("target", record.target, target.name)):
            if got != want:
                problems.append(f"{target.name}.json is of {what} {got}, not {want}: stage it "
                                "again from this commit")
    for extra in sorted(set(found) - {t.name for t in run.config.targets}):
        problems.append(f"{extra}.json is the record of no target of this service: remove it")
    if problems:
        raise ReleaseError(f"{where}: " + "; ".join(problems) + "; nothing was published")
    return found  # exactly one record per target


def make_tags(run: Run, records: Mapping[str, Record], config: DockerConfig,
              registry: Registry, summary: Summary) -> Pushed:
    """Every tag of the plan but ``latest``, from the pushed images' digests: one manifest list
    over all platforms (``multi-arch``), else each target's tags put on its own manifest."""
    from ._docker import retrying_docker

    pushed, latest = Pushed(), run.config.latest_tags
    pushes = [image for image in run.plan.images if image.push]
    if not run.config.multi_arch:
        for image in pushes:  # every record's image is there before any tag is made
            if registry.digest(records[image.target].digest) is None:
                raise PublishError(f"{records[image.target].source} is not in the registry: "
                                   f"stage {image.target} again; nothing was published")
        for image in pushes:
            record = records[image.target]
            for tag in (t for t in image.tags if t not in latest):
                registry.tag(record.digest, tag)
                log(f"made {image.repository}:{tag} from {record.source}")
                summary.add(f"registry {image.platform}", f"{image.repository}:{tag}", "pushed")
                pushed.images[tag] = record.digest
        return pushed
    listed = [records[image.target] for image in pushes]
    platforms = [record.platform for record in listed]
    if len(set(platforms)) != len(platforms):
        raise ReleaseError(f"two targets build the same platform ({', '.join(platforms)}): a "
                           "manifest list holds each platform once; give each target its own")
    tags = list(dict.fromkeys(t for image in pushes for t in image.tags if t not in latest))
    refs = [f"{listed[0].repository}:{tag}" for tag in tags]
    sources = [record.source for record in listed]
    client = config.client()
    retrying_docker(f"making {', '.join(refs)}", lambda: client.buildx.imagetools.create(
        sources=sources, tags=refs, builder=run.config.builder))
    log(f"made {', '.join(refs)} from {', '.join(sources)}")
    for tag in tags:
        summary.add(f"registry {','.join(platforms)}", f"{pushes[0].repository}:{tag}",
                    "manifest list")
        pushed.lists[tag] = {record.platform: record.digest for record in listed}
    return pushed
