# rds-token-broker: build with the pinned Rust toolchain, run from a distroless image as a
# non-root user. Read-only root filesystem friendly: the only writes are to the SQLite
# audit file, if one is used (mount a volume at /var/lib/rds-token-broker).

FROM rust:1.95.0-slim-bookworm AS build
WORKDIR /src
# aws-lc-rs (TLS and signing) builds C code with the image's gcc; no cmake needed.
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY openapi ./openapi
COPY ui ./ui
COPY tests ./tests
COPY examples ./examples
RUN cargo build --release --locked --bin rds-token-broker

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/rds-token-broker /usr/local/bin/rds-token-broker
COPY examples/broker.toml /etc/rds-token-broker/broker.example.toml
USER 65532:65532
EXPOSE 8443 9090
ENTRYPOINT ["/usr/local/bin/rds-token-broker"]
CMD ["serve", "--config", "/etc/rds-token-broker/broker.toml"]
