#!/bin/sh
# Install the Debian 12 packages proflab needs, only those missing.
#   scripts/deps.sh build   compilers, libraries, meson/ninja
#   scripts/deps.sh test    build + what the test suites use (curl, node, clang;
#                           podman, prometheus, python3-botocore for deploy/)
#   scripts/deps.sh bench   test + benchmark peers (wrk, nginx, gperftools, heaptrack)
# Fast when everything is present: one dpkg-query, no apt-get.
set -eu

level=${1:-build}

build="gcc g++ make pkg-config meson ninja-build
libuv1-dev libmicrohttpd-dev libwslay-dev libssl-dev libjansson-dev
libdw-dev zlib1g-dev libzstd-dev libprotobuf-c-dev
protobuf-c-compiler libcmocka-dev libcurl4-openssl-dev"
test_pkgs="binutils curl nodejs npm clang clang-format python3 groff-base golang-go chromium graphviz nginx-light libclang-rt-14-dev podman runc debootstrap prometheus python3-botocore wrk libc6-dbg"
bench_pkgs="wrk nginx-light libgoogle-perftools4 linux-perf time heaptrack"

case "$level" in
  build) want="$build" ;;
  test) want="$build $test_pkgs" ;;
  bench) want="$build $test_pkgs $bench_pkgs" ;;
  *) echo "usage: $0 build|test|bench" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
  # nodejs may come from outside Debian (the machine's own node): accept a working node
  if [ "$p" = nodejs ] && command -v node >/dev/null 2>&1; then continue; fi
  if [ "$p" = npm ] && command -v npm >/dev/null 2>&1; then continue; fi
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  case "$status" in
    *"install ok installed"*) ;;
    *) missing="$missing $p" ;;
  esac
done

[ -z "$missing" ] && exit 0

echo "proflab: installing Debian packages:$missing" >&2
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "proflab: need root (or sudo) to install:$missing" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
# A stale package index makes installs fail with 404: refresh it once if needed.
if ! $SUDO apt-get install -y -q --no-install-recommends $missing >/tmp/proflab-apt.log 2>&1; then
  $SUDO apt-get update -q >/tmp/proflab-apt.log 2>&1 || true
  if ! $SUDO apt-get install -y -q --no-install-recommends $missing >>/tmp/proflab-apt.log 2>&1; then
    tail -n 20 /tmp/proflab-apt.log >&2
    echo "proflab: apt-get failed for:$missing (log: /tmp/proflab-apt.log)" >&2
    exit 1
  fi
fi
