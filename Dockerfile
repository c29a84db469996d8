# syntax=docker/dockerfile:1.7
# One image for every Shippy service: `shippy subgraph <name>`, `shippy router`, or `shippy up`.
#
#   docker build -t shippy .
#
# Build stage: the workspace compiled in release mode. Cache mounts keep the registry and target/ between
# builds, so a code change rebuilds our crates only (the binary is copied out: the cache is not in the image).
FROM rust:1.95-bookworm AS builder
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bin shippy \
    && cp target/release/shippy /usr/local/bin/shippy

# Runtime stage: Debian slim (glibc, CA roots for TLS to managed databases), curl for health checks, and a
# non-root user that owns nothing but the data directory.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /app --shell /usr/sbin/nologin shippy \
    && mkdir -p /app/data /app/schema \
    && chown shippy:shippy /app/data
COPY --from=builder /usr/local/bin/shippy /usr/local/bin/shippy
# The router plans over this file (`shippy router --supergraph /app/schema/supergraph.graphql`);
# `shippy up` has it built in.
COPY schema/supergraph.graphql /app/schema/supergraph.graphql
WORKDIR /app
USER shippy:shippy
# Listen on every interface inside the container; SQLite files (only without DATABASE_URL) under /app/data.
ENV SHIPPY_HOST=0.0.0.0 \
    SHIPPY_DATA_DIR=/app/data \
    SHIPPY_LOG_FORMAT=json
EXPOSE 4000
# `SHIPPY_HEALTH_PORT`: the port this container's service listens on (4000 for `up` and the router).
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=5 \
    CMD curl -fsS "http://127.0.0.1:${SHIPPY_HEALTH_PORT:-4000}/ready" || exit 1
ENTRYPOINT ["shippy"]
CMD ["up"]
