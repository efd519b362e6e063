# proflabd in a container (ECS, Kubernetes, Docker, podman). deploy/README.md
# tells how to run it on each platform.
#
#   docker build -t proflab .                  # builds from source (stage "build")
#   docker run -p 8080:8080 -e LAB_ENABLE=true -e LAB_TOKEN=... proflab
#
# The image runs proflabd on 0.0.0.0:8080 as the non-root user proflab
# (uid/gid 10001, numeric so Kubernetes' runAsNonRoot can check it), with
# artifacts in /var/lib/proflab (owned by that user, mode 0700). The lab is
# off unless the environment turns it on (LAB_ENABLE=true and LAB_TOKEN):
# nothing here sets either. `proflab` (the client) and `proflabd
# export-helper` (what `proflab export` runs through `docker exec -i` /
# `kubectl exec` / ECS Exec) are in it. SIGTERM drains and exits 0, as ECS and
# Kubernetes expect.
#
# What goes in is whatever `meson install --tags runtime` installs (the
# programs, and the preload agent libproflab-agent.so under
# /usr/local/lib/<multiarch>/), never a list of names kept here, so a user's
# own image can take the agent with
#   COPY --from=proflab /usr/local/lib/ /usr/local/lib/
#
# The "prebuilt" target takes a tree staged on a Debian 12 host instead of
# compiling (`meson install -C build --tags runtime --destdir <ctx>/stage`,
# then the build context <ctx> holds stage/): scripts/container-image.sh
# does that for the tests.
#   scripts/container-image.sh                 # -> localhost/proflab:test

FROM debian:12-slim AS runtime-base
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libuv1 libmicrohttpd12 libssl3 libdw1 libelf1 libprotobuf-c1 zlib1g libzstd1 \
      libcurl4 libjansson4 libwslay1 curl ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 proflab \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/proflab \
      --no-create-home --shell /usr/sbin/nologin proflab \
 && mkdir -p /var/lib/proflab \
 && chown 10001:10001 /var/lib/proflab \
 && chmod 0700 /var/lib/proflab
ENV PROFLAB_LISTEN=0.0.0.0:8080 \
    LAB_ARTIFACT_DIR=/var/lib/proflab
WORKDIR /var/lib/proflab
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD curl -fsS http://127.0.0.1:${PORT:-8080}/api/health || exit 1
STOPSIGNAL SIGTERM
USER 10001:10001
CMD ["proflabd"]

FROM debian:12-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      gcc g++ libc6-dev pkg-config meson ninja-build libuv1-dev libmicrohttpd-dev libssl-dev \
      libdw-dev zlib1g-dev libzstd-dev libprotobuf-c-dev protobuf-c-compiler libcurl4-openssl-dev \
      libjansson-dev libwslay-dev libcmocka-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY meson.build ./
COPY include include
COPY src src
COPY programs programs
COPY proto proto
COPY tests tests
COPY bench bench
# Build the targets meson installs (not the tests), then stage the runtime
# part of `meson install` in /install. libdir as on a Debian host
# (lib/<multiarch>), so both targets put the agent in the same place.
RUN meson setup /build --buildtype=debugoptimized --prefix=/usr/local \
      --libdir=lib/$(gcc -print-multiarch) \
 && ninja -C /build $(meson introspect /build --targets | python3 -c \
      'import json, os, sys; print(" ".join(os.path.relpath(f, "/build") for t in json.load(sys.stdin) if t["installed"] for f in t["filename"]))') \
 && meson install -C /build --no-rebuild --tags runtime --destdir /install

FROM runtime-base AS prebuilt
USER root
COPY stage/ /
RUN ldconfig
USER 10001:10001

FROM runtime-base
USER root
COPY --from=build /install/ /
RUN ldconfig
USER 10001:10001
