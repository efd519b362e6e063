# proflabd in a container (ECS, Kubernetes, Docker, podman).
#
#   docker build -t proflab .                  # builds from source (stage "build")
#   docker run -p 8080:8080 -e LAB_ENABLE=true -e LAB_TOKEN=... proflab
#
# The image runs proflabd on 0.0.0.0:8080 with artifacts in /var/lib/proflab;
# `proflab` (the client) and `proflabd export-helper` (what `proflab export`
# runs through `docker exec -i` / `kubectl exec` / ECS Exec) are in it too.
# SIGTERM drains and exits 0, as ECS and Kubernetes expect.
#
# The "prebuilt" target copies binaries already built on a Debian 12 host
# (build/proflabd, build/proflab) instead of compiling: the tests use it.
#   podman build --target prebuilt -t proflab:dev .

FROM debian:12-slim AS runtime-base
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libuv1 libmicrohttpd12 libssl3 libdw1 libelf1 libprotobuf-c1 zlib1g libzstd1 \
      libcurl4 libjansson4 libwslay1 curl ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/proflab && chmod 0700 /var/lib/proflab
ENV PROFLAB_LISTEN=0.0.0.0:8080 \
    LAB_ARTIFACT_DIR=/var/lib/proflab
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s CMD curl -fsS http://127.0.0.1:${PORT:-8080}/api/health || exit 1
STOPSIGNAL SIGTERM
CMD ["proflabd"]

FROM debian:12-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      gcc libc6-dev pkg-config meson ninja-build libuv1-dev libmicrohttpd-dev libssl-dev \
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
RUN meson setup /build --buildtype=debugoptimized && ninja -C /build proflabd proflab

FROM runtime-base AS prebuilt
COPY build/proflabd build/proflab /usr/local/bin/

FROM runtime-base
COPY --from=build /build/proflabd /build/proflab /usr/local/bin/
