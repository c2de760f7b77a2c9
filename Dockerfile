# Multi-stage build: compile with the full toolchain, run on a slim image as a non-root user.
FROM rust:1.95-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends cmake libssl-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked --bin tim-relay

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libssl3 curl \
    && rm -rf /var/lib/apt/lists/* && useradd --system --uid 10001 relay \
    && mkdir -p /var/lib/tim-relay/spool && chown -R relay /var/lib/tim-relay
COPY --from=build /src/target/release/tim-relay /usr/local/bin/tim-relay
USER relay
# The spool holds events answered OK that Kafka has not acknowledged yet: keep it on a volume.
VOLUME /var/lib/tim-relay
ENV RELAY_LISTEN=0.0.0.0:8080 RELAY_SPOOL_DIR=/var/lib/tim-relay/spool RUST_LOG=info
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["/usr/local/bin/tim-relay"]
