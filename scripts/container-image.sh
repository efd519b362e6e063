#!/bin/sh
# Container images for the tests, with Debian's podman (no registry is
# needed or reached; see the Dockerfile):
#   localhost/deb12:min  a Debian 12 base made with debootstrap from the
#                        machine's own apt mirror, once per machine, also
#                        tagged debian:12-slim (what the Dockerfile starts
#                        FROM) unless that image exists already;
#   proflab:test         the Dockerfile's "prebuilt" target: the runtime
#                        image with what `meson install --tags runtime`
#                        installs from build/ (proflabd, proflab, the agent).
# Needs root, podman, runc and debootstrap (scripts/deps.sh test installs
# them) and a built build/ (make build).
#   PROFLAB_BUILD_DIR   the meson build directory to install from (build)
#   PROFLAB_IMAGE       the image's name (proflab:test)
set -eu
cd "$(dirname "$0")/.."
P="podman --runtime runc" # crun refuses this kind of machine's hybrid cgroups
U="--ulimit nofile=1024:1024 --ulimit nproc=4096:4096"
B=${PROFLAB_BUILD_DIR:-build}
IMAGE=${PROFLAB_IMAGE:-proflab:test}

[ -x "$B/proflabd" ] && [ -x "$B/proflab" ] || { echo "container-image: build first (make build)" >&2; exit 1; }
ctx=$(mktemp -d /var/tmp/proflab-ctx.XXXXXX)
rootfs=""
trap 'rm -rf "$ctx" ${rootfs:+"$rootfs"}' EXIT INT TERM
if ! podman image exists localhost/deb12:min; then
  mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [ -n "$mirror" ] || mirror=http://deb.debian.org/debian
  rootfs=$(mktemp -d /var/tmp/proflab-rootfs.XXXXXX)
  echo "container-image: building the Debian 12 base image (debootstrap, about a minute)" >&2
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >/dev/null
  tar -C "$rootfs" -c . | podman import - localhost/deb12:min >/dev/null
fi
podman image exists docker.io/library/debian:12-slim ||
  podman tag localhost/deb12:min docker.io/library/debian:12-slim
# The build context: the Dockerfile and the staged runtime install of $B.
meson install -C "$B" --no-rebuild --tags runtime --destdir "$ctx/stage" >/dev/null
cp Dockerfile "$ctx/"
# shellcheck disable=SC2086
$P build --pull=never --network=host --format docker $U --target prebuilt -t "$IMAGE" "$ctx" >&2
