#!/usr/bin/env bash
# Provision the test rig on a Debian 12 or 13 host (as root): a Docker engine with buildx,
# arm/v7 emulation through qemu, the registry program, and python base images for
# linux/amd64 and linux/arm/v7 built from debootstrap (no image can be pulled here).
#
# Idempotent: every step checks first, so a second run on a provisioned machine takes seconds.
# The base images are cached as rootfs tarballs in $CACHE, so they survive an engine reset.
set -euo pipefail

CACHE=${BREWBLOX_RIG_CACHE:-/var/cache/brewblox-release}
MIRROR=${BREWBLOX_RIG_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
BASE_REPO=brewblox-release/python-base
# The base of brewblox-release's own CI job image (docker/, rpi-docker/ of this repository):
# trixie packages the docker CLI and buildx; python3-cffi because PyPI has no arm/v7 wheel of
# cffi; python3-ply because debootstrap does not resolve the virtual packages pycparser needs;
# docker-registry for --rehearse inside the image.
CI_BASE_REPO=brewblox-release/ci-base
CI_SUITE=trixie
CI_PACKAGES=python3,python3-pip,python3-venv,python3-cffi,python3-ply,git,docker-cli,docker-buildx,docker-registry,ca-certificates
log() { printf '[rig] %s\n' "$*" >&2; }

# unpack_from_trixie PACKAGE DIR: Debian 13's package, unpacked into DIR (not installed).
unpack_from_trixie() {
    local tmp
    tmp=$(mktemp -d)
    mkdir -p "$tmp/lists/partial" "$tmp/archives/partial"
    echo "deb $MIRROR trixie main" >"$tmp/sources.list"
    local apt_opts=(-o "Dir::Etc::sourcelist=$tmp/sources.list" -o "Dir::Etc::sourceparts=-"
                    -o "Dir::State::Lists=$tmp/lists" -o "Dir::Cache::Archives=$tmp/archives")
    apt-get "${apt_opts[@]}" update -qq
    (cd "$tmp" && apt-get "${apt_opts[@]}" download "$1" >/dev/null)
    dpkg -x "$tmp/$1"_*.deb "$2"
    rm -rf "$tmp"
}

need_pkgs=()
for pkg in docker.io docker-registry qemu-user-static binfmt-support debootstrap rsync; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need_pkgs+=("$pkg")
done
if ((${#need_pkgs[@]})); then
    log "installing ${need_pkgs[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

# gitlab-ci-local runs the GitLab definition that `init` writes (tests/test_gitlab_ci_local.py);
# it copies files with rsync (installed above). 4.60.0 is the last release that runs on Node 18
# and 20.
GITLAB_CI_LOCAL=4.60.0
if [ "$(gitlab-ci-local --version 2>/dev/null)" != "$GITLAB_CI_LOCAL" ]; then
    if ! command -v npm >/dev/null; then
        log "installing nodejs and npm"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
    fi
    log "installing gitlab-ci-local@$GITLAB_CI_LOCAL (a minute or two)"
    npm install --global --no-fund --no-audit --loglevel=error "gitlab-ci-local@$GITLAB_CI_LOCAL" >&2
fi

# The registry package starts a system service on some hosts; the tests run their own.
if command -v systemctl >/dev/null && systemctl is-active --quiet docker-registry 2>/dev/null; then
    systemctl stop docker-registry || true
fi

if ! docker buildx version >/dev/null 2>&1; then
    if apt-cache policy docker-buildx 2>/dev/null | grep -q 'Candidate: [0-9]'; then
        log "installing docker-buildx"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-buildx >/dev/null
    else
        # Debian 12 does not package buildx; Debian 13's build works on it.
        log "installing docker-buildx from trixie"
        unpack_from_trixie docker-buildx /
    fi
    docker buildx version >&2
fi

# cosign signs and verifies the images of `sign = true` (tests/test_sign.py). Debian 12 does not
# package it; Debian 13's static build runs on it, unpacked.
if ! command -v cosign >/dev/null; then
    if apt-cache policy cosign 2>/dev/null | grep -q 'Candidate: [0-9]'; then
        log "installing cosign"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cosign >/dev/null
    else
        log "installing cosign from trixie"
        root=$(mktemp -d)
        unpack_from_trixie cosign "$root"
        install -m 0755 "$root/usr/bin/cosign" /usr/local/bin/cosign
        rm -rf "$root"
    fi
    cosign version >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
    log "starting dockerd"
    setsid dockerd >/var/log/dockerd.log 2>&1 </dev/null &
    for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
    docker info >/dev/null 2>&1 || { log "dockerd did not start: see /var/log/dockerd.log"; exit 1; }
fi

if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
for handler in qemu-arm qemu-aarch64; do  # arm/v7 and arm64 (linux/arm64 targets)
    if [ ! -e /proc/sys/fs/binfmt_misc/$handler ] || ! grep -q '^enabled' /proc/sys/fs/binfmt_misc/$handler; then
        log "enabling the $handler binfmt handler"
        update-binfmts --enable $handler >/dev/null 2>&1 || update-binfmts --enable >/dev/null 2>&1
    fi
done

# base_image ARCH PLATFORM TAG [REPO SUITE PACKAGES]
base_image() {
    local arch=$1 platform=$2 tag=$3 repo=${4:-$BASE_REPO} suite=${5:-$SUITE}
    local packages=${6:-python3,python3-pip,python3-venv}
    local tarball="$CACHE/rootfs-${repo##*/}-$suite-$arch.tar"
    [ "$repo" != "$BASE_REPO" ] || tarball="$CACHE/rootfs-$suite-$arch.tar"
    if docker image inspect "$repo:$tag" >/dev/null 2>&1; then
        return
    fi
    mkdir -p "$CACHE"
    if [ ! -s "$tarball" ]; then
        log "debootstrap $suite for $arch (a minute native, several under qemu)"
        local root debootstrap_log="$CACHE/debootstrap-${repo##*/}-$suite-$arch.log"
        root=$(mktemp -d "$CACHE/root-$arch.XXXX")
        debootstrap --arch="$arch" --variant=minbase --include="$packages" \
            "$suite" "$root" "$MIRROR" >"$debootstrap_log" 2>&1 \
            || { log "debootstrap failed: see $debootstrap_log"; exit 1; }
        if [ "$repo" != "$BASE_REPO" ] && compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
            # The job image's pip reaches PyPI as this machine does: trust this machine's own
            # local CAs (a TLS-intercepting proxy), as a base image made behind one must.
            cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
            chroot "$root" update-ca-certificates >/dev/null
        fi
        rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
        tar -C "$root" -cf "$tarball.part" .
        mv "$tarball.part" "$tarball"
        rm -rf "$root"
    fi
    log "building $repo:$tag for $platform"
    local ctx
    ctx=$(mktemp -d)
    ln "$tarball" "$ctx/rootfs.tar" 2>/dev/null || cp "$tarball" "$ctx/rootfs.tar"
    printf 'FROM scratch\nADD rootfs.tar /\nENV LANG=C.UTF-8\nCMD ["python3"]\n' >"$ctx/Dockerfile"
    docker buildx build --builder default --platform "$platform" --load -t "$repo:$tag" "$ctx" >&2
    rm -rf "$ctx"
}

base_image amd64 linux/amd64 bookworm-amd64 &
amd=$!
base_image armhf linux/arm/v7 bookworm-armv7 &
arm=$!
base_image arm64 linux/arm64 bookworm-arm64 &
arm64=$!
ci_base_image() { base_image "$1" "$2" "$3" "$CI_BASE_REPO" "$CI_SUITE" "$CI_PACKAGES"; }
ci_base_image amd64 linux/amd64 trixie-amd64 &
ci_amd=$!
ci_base_image armhf linux/arm/v7 trixie-armv7 &
ci_arm=$!
wait $amd
wait $arm
wait $arm64
wait $ci_amd
wait $ci_arm
log "ready: docker $(docker version -f '{{.Server.Version}}'), $(docker buildx version | cut -d' ' -f1-2), base images $BASE_REPO:bookworm-{amd64,armv7,arm64} and $CI_BASE_REPO:trixie-{amd64,armv7}"
