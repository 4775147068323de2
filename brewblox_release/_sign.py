"""Signed, attested releases: every published image digest signed with ``cosign``, with a
CycloneDX SBOM and an SLSA provenance attestation (see docs/signing.md)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._errors import CredentialsError, PublishError, ReleaseError
from ._hosts import is_loopback, split_image
from ._identity import KEY_VAR, OIDC_VARS, PASSWORD_VAR, Identity
from ._run import CommandError, Result, log, run

if TYPE_CHECKING:
    from ._dockerconfig import DockerConfig
    from ._prepared import Pushed, Run, Summary
    from ._registry import Registry


BUILD_TYPE = "https://github.com/BrewBlox/brewblox-release/blob/main/docs/signing.md#provenance"


def problems(release: Run) -> list[ReleaseError]:
    """What the real run would refuse before building (docs/signing.md)."""
    if not release.config.sign or not any(image.push for image in release.plan.images):
        return []
    if shutil.which("cosign") is None:
        return [CredentialsError("sign = true but there is no cosign program on PATH: install "
                                 "cosign (docs/signing.md), or set sign = false")]
    identity = release.signer
    if identity is None:
        return [CredentialsError(
            f"sign = true but {KEY_VAR} is not set and this is not GitHub Actions with "
            f"id-token: write: add {KEY_VAR} and {PASSWORD_VAR} to the CI secrets "
            "(docs/signing.md)")]
    if identity.key is not None:
        try:
            _ = identity.public_key
        except CredentialsError as e:
            return [e]
    return []


def attest_files(files: Sequence[Path], env: Mapping[str, str]) -> None:
    """PEP 740 attestations of the sdist and wheel, for twine's ``--attestations``."""
    if importlib.util.find_spec("pypi_attestations") is None:
        raise PublishError("sign = true with trusted publishing makes PEP 740 attestations: "
                           "install pypi-attestations (pip install brewblox-release[sign])")
    try:
        run([sys.executable, "-m", "pypi_attestations", "sign", *map(str, files)],
            env={v: env[v] for v in OIDC_VARS if v in env}, echo=False)
    except CommandError as e:
        raise PublishError(f"making the package's PEP 740 attestations failed "
                           f"(pypi-attestations exited with {e.result.returncode}); nothing "
                           "was uploaded") from e


def describe(release: Run) -> list[str]:
    """The signing steps, for ``--dry-run``."""
    if not release.config.sign or not release.plan.publishes:
        return []
    identity = release.signer
    how = "keyless (GitHub OIDC)" if identity and identity.key is None else f"the key in {KEY_VAR}"
    return [f"sign: every pushed image digest is signed with cosign ({how}), with its "
            "CycloneDX SBOM and SLSA provenance attached, before latest moves"]


def _images(registry: Registry, digest: str) -> list[str]:
    """The images of the list ``digest`` (not buildx's attestation entries); none for an image."""
    return [m["digest"] for m in (registry.manifest(digest) or {}).get("manifests") or []
            if (m.get("platform") or {}).get("os") != "unknown"]


def sbom(release: Run, registry: Registry, digest: str) -> dict[str, Any]:
    """The CycloneDX SBOM of the image ``digest`` (of each image of a list)."""
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.output.json import JsonV1Dot5
    from packageurl import PackageURL

    from ._buildenv import cache_dir

    found: dict[str, str] = {}
    for image in _images(registry, digest) or [digest]:
        found |= registry.distributions(image, cache=cache_dir(release.env) / "layers")
    bom = Bom()
    top = Component(name=registry.image, version=release.plan.version,
                    type=ComponentType.CONTAINER, bom_ref=f"{registry.image}@{digest}")
    bom.metadata.component = top
    components = [Component(name=name, version=version, type=ComponentType.LIBRARY,
                            purl=PackageURL("pypi", name=name, version=version),
                            bom_ref=f"pkg:pypi/{name}@{version}")
                  for name, version in sorted(found.items())]
    bom.components.update(components)
    bom.register_dependency(top, components)
    return dict(json.loads(JsonV1Dot5(bom).output_as_string()))


def provenance(release: Run, files: Sequence[Path],
               base_images: Mapping[str, str]) -> dict[str, Any]:
    """The SLSA provenance predicate (v1) of this run (docs/signing.md#provenance)."""
    ctx, env, commit = release.context, release.env, release.info.git.commit
    name, version = release.config.name, release.plan.version
    repository = ctx.repository or ""
    ci_run = (env.get("GITHUB_RUN_ID") or env.get("CI_JOB_ID") or env.get("TRAVIS_JOB_ID")
              or env.get("BUILD_BUILDID") or "")
    dependencies: list[dict[str, Any]] = [
        {"uri": f"git+{repository or 'local'}@{ctx.ref or ''}", "digest": {"gitCommit": commit}},
        *({"uri": base, "digest": {"sha256": image_id.removeprefix("sha256:")}}
          for base, image_id in sorted(base_images.items())),
        *({"uri": f"pkg:pypi/{name}@{version}", "name": path.name,
           "digest": {"sha256": hashlib.sha256(path.read_bytes()).hexdigest()}} for path in files)]
    return {
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": {"repository": repository, "ref": ctx.ref,
                                   "commit": commit, "version": version},
            "internalParameters": {"ci": ctx.provider, "run": ci_run},
            "resolvedDependencies": dependencies,
        },
        "runDetails": {
            "builder": {"id": "https://github.com/BrewBlox/brewblox-release"},
            "metadata": {"invocationId": ci_run,
                         "startedOn": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")},
        },
    }


def _cosign(identity: Identity, args: Sequence[str], ref: str, docker_config: DockerConfig,
            *, doing: str | None = None) -> Result:
    """cosign ``args`` on ``ref``. With ``doing`` (what the call does), a failure raises a
    `PublishError` that names it; without, the result is the caller's to judge (a check)."""
    http = ["--allow-http-registry"] if is_loopback(split_image(ref)[0]) else []
    try:
        # Its command line and output into the log (masked), for a failing step to show.
        return run(["cosign", *args, *http, ref], env=identity.env(docker_config),
                   check=doing is not None)
    except CommandError as e:
        if doing is None:  # not started: no result to tell
            raise
        raise PublishError(f"{doing} failed (cosign exited with {e.result.returncode}): "
                           f"{(e.result.lines or ['?'])[-1]}; re-run the release to complete "
                           "it") from e


#: What signing attaches to an image, each with the cosign command that verifies it.
_CHECKS = {"signature": ["verify"],
           "SBOM": ["verify-attestation", "--type", "cyclonedx"],
           "provenance": ["verify-attestation", "--type", "slsaprovenance1"]}
_DOING = {"signature": "signing", "SBOM": "attaching the SBOM to",
          "provenance": "attaching the provenance to"}


def keyless_trust(repository: str | None) -> list[str]:
    r"""cosign's flags that trust the workflows of ``repository`` on GitHub, and no other's (none
    where the run does not know its repository, which GitHub Actions always tells).

    >>> print(keyless_trust("org/my-svc.v2")[-1])
    ^https://github\.com/org/my\-svc\.v2/
    """
    return ["--certificate-oidc-issuer", "https://token.actions.githubusercontent.com",
            "--certificate-identity-regexp",
            f"^{re.escape(f'https://github.com/{repository}/')}" if repository else "^$"]


def _trust(release: Run, identity: Identity, tmp: str) -> list[str]:
    """cosign's flags that trust the identity: its public key (put in ``tmp``), or GitHub's OIDC."""
    if identity.key is None:
        return keyless_trust(release.context.repository)
    public = Path(tmp) / "cosign.pub"
    public.write_text(identity.public_key)
    return ["--key", str(public), "--insecure-ignore-tlog"]


def references(registry: Registry, pushed: Pushed, tags: Sequence[str]) -> list[str]:
    """``repository@digest`` of every image this run pushed under ``tags``, never what a tag
    names meanwhile (another run may have pushed to it): an image by the digest its push gave,
    a manifest list by its tag's digest once its images are checked to be this run's."""
    digests = []
    for tag in tags:
        digest = registry.digest(tag) if tag in pushed.lists else pushed.images.get(tag)
        if not digest:
            raise PublishError(f"{registry.image}:{tag} is not in the registry, so it cannot "
                               "be signed: re-run the release to complete it")
        images = _images(registry, digest)
        if tag in pushed.lists and set(images) != set(pushed.lists[tag].values()):
            raise PublishError(f"{registry.image}:{tag} is not the list this run made (another "
                               "run pushed to it meanwhile), so it was not signed: re-run the "
                               "release to complete it")
        digests += [digest, *images]
    return list(dict.fromkeys(f"{registry.image}@{d}" for d in digests))


def sign(release: Run, registry: Registry, pushed: Pushed, tags: Sequence[str], *,
         files: Sequence[Path], base_images: Mapping[str, str], docker_config: DockerConfig,
         summary: Summary) -> list[str]:
    """Sign every digest this run pushed under ``tags``, with its SBOM and provenance; the
    references signed."""
    identity = release.signer
    if identity is None:  # preflight refused this already
        raise CredentialsError(f"sign = true but {KEY_VAR} is not set")
    refs = references(registry, pushed, tags)
    key = ["--key", identity.key_ref, "--tlog-upload=false"] if identity.key is not None else []
    with tempfile.TemporaryDirectory(prefix="brewblox-release-sign-") as tmp:
        trust = _trust(release, identity, tmp)
        statement = Path(tmp) / "provenance.json"
        statement.write_text(json.dumps(provenance(release, files, base_images)))

        def done(ref: str, what: str) -> bool:
            """Whether a re-run finds this done: what verifies with the key (keyless: never)."""
            return bool(key) and _cosign(identity, [*_CHECKS[what], *trust], ref,
                                         docker_config).returncode == 0

        def one(numbered: tuple[int, str]) -> None:
            number, ref = numbered
            # A re-run does what a failed run left undone, and nothing again: they are made in
            # this order, so the first one missing and all after it.
            todo = list(_CHECKS)
            while todo and done(ref, todo[0]):
                todo.pop(0)
            if not todo:
                summary.add("sign", ref, "already signed")
                return
            predicates = {"SBOM": Path(tmp) / f"sbom-{number}.json", "provenance": statement}
            if "SBOM" in todo:
                predicates["SBOM"].write_text(
                    json.dumps(sbom(release, registry, ref.rpartition("@")[2])))
            for what in todo:
                make = ["sign"] if what == "signature" else [
                    "attest", "--type", _CHECKS[what][-1], "--predicate", str(predicates[what])]
                _cosign(identity, [*make, *key, "--yes"], ref, docker_config,
                        doing=f"{_DOING[what]} {ref}")
            log(f"signed {ref}, with its SBOM and provenance")
            summary.add("sign", ref, "signed, SBOM and provenance attached" if len(todo) == 3
                        else f"completed: {', '.join(todo)}")

        with ThreadPoolExecutor(max_workers=max(1, min(4, len(refs)))) as pool:
            list(pool.map(one, enumerate(refs)))  # each image at once; the first error raised
    return refs


def verify(release: Run, refs: Sequence[str], docker_config: DockerConfig,
           summary: Summary) -> list[str]:
    """Verify each reference's signature, SBOM and provenance; the problems, a line each."""
    identity = release.signer
    if identity is None:
        return ["sign = true but there is no identity to verify the signatures with"]
    problems = []
    with tempfile.TemporaryDirectory(prefix="brewblox-release-verify-") as tmp:
        trust = _trust(release, identity, tmp)
        def check(item: tuple[str, str]) -> Result:
            ref, what = item
            return _cosign(identity, [*_CHECKS[what], *trust], ref, docker_config)

        items = [(ref, what) for ref in refs for what in _CHECKS]
        with ThreadPoolExecutor(max_workers=max(1, min(6, len(items)))) as pool:
            results = pool.map(check, items)
            for (ref, what), result in zip(items, results, strict=True):
                ok = result.returncode == 0
                summary.add("verify signature", f"{ref} {what}", "ok" if ok else "WRONG")
                if not ok:
                    problems.append(f"{ref}: its {what} does not verify with the signing "
                                    f"identity ({(result.lines or ['?'])[-1]})")
    return problems
