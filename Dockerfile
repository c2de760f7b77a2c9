# Multi-stage build: compile with the full toolchain, run on a slim image as a non-root user.
FROM rust:1.95-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends cmake libssl-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked --bin tim-relay

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libssl3 curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 relay \
    && useradd --system --uid 10001 --gid 10001 --no-create-home relay \
    && mkdir -p /var/lib/tim-relay/spool && chown -R 10001:10001 /var/lib/tim-relay
COPY --from=build /src/target/release/tim-relay /usr/local/bin/tim-relay
# Numeric, so that Kubernetes' runAsNonRoot can check it without reading /etc/passwd.
USER 10001:10001
# The spool holds events answered OK that Kafka has not acknowledged yet: keep it on a volume.
VOLUME /var/lib/tim-relay
ENV RELAY_LISTEN=0.0.0.0:8080 RELAY_ADMIN_LISTEN=0.0.0.0:9090 \
    RELAY_SPOOL_DIR=/var/lib/tim-relay/spool RUST_LOG=info
# 8080: callbacks. 9090: admin (/healthz, /readyz, /metrics); keep it off the public network.
EXPOSE 8080 9090
HEALTHCHECK --interval=10s --timeout=3s CMD curl -fsS http://127.0.0.1:9090/healthz || exit 1
ENTRYPOINT ["/usr/local/bin/tim-relay"]
