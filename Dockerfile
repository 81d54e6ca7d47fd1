# syntax=docker/dockerfile:1
# Gatehouse and the example resource server in one image.
#   docker build -t gatehouse .      (docker-compose.yml builds it too)
#   default command: gatehouse serve; the resource server is /usr/local/bin/resource_server.

# ---- build ---------------------------------------------------------------------------------
FROM rust:1-bookworm AS builder

# OpenSSL headers: josekit and the TLS of the bundled libpq. (SQLite and libpq are built in.)
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libssl-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . .
# .git stays out of the context: name the commit for `gatehouse --version` with
# `--build-arg GATEHOUSE_BUILD_COMMIT=$(git rev-parse --short HEAD)` ("unknown" otherwise).
ARG GATEHOUSE_BUILD_COMMIT=""

# The cargo registry and target/ are BuildKit cache mounts: a rebuild after a source change
# recompiles only Gatehouse, not its dependencies. The binaries are copied out of the cache.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin gatehouse \
    && cargo build --release --locked --example resource_server --features verify \
    && mkdir -p /out \
    && cp target/release/gatehouse target/release/examples/resource_server /out/

# ---- run -----------------------------------------------------------------------------------
FROM debian:bookworm-slim

RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libssl3 ca-certificates \
    && rm -rf /var/lib/apt/lists/*

# An unprivileged user; its home is the working directory (keys/ lands there when no
# GATEHOUSE_MASTER_KEY is given on a single node).
RUN groupadd --system --gid 10001 gatehouse \
    && useradd --system --uid 10001 --gid gatehouse --home-dir /var/lib/gatehouse \
        --create-home --shell /usr/sbin/nologin gatehouse

COPY --from=builder /out/gatehouse /usr/local/bin/gatehouse
COPY --from=builder /out/resource_server /usr/local/bin/resource_server

USER 10001:10001
WORKDIR /var/lib/gatehouse

# Inside a container Gatehouse must listen on every interface (the built-in default is loopback).
ENV GATEHOUSE_BIND=0.0.0.0:8080
EXPOSE 8080

CMD ["gatehouse", "serve"]
