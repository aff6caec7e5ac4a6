# syntax=docker/dockerfile:1
# ferry's production image: the binary built without the `dev` stand-ins, on a distroless base with
# glibc and CA certificates, running as a non-root user. Nothing is written to the root file system:
# run it read-only (`docker run --read-only …`; deploy/kubernetes/ sets readOnlyRootFilesystem).
# crates/ferry-server/tests/deploy.rs checks the user and ports here against ferry's defaults.
#
#   docker build -t ferry .
#   docker run --read-only -p 8080:8080 -p 9090:9090 --env-file ferry.env ferry

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
# The production build: `serve` and `ticket` only, no emulators, no embedded S3 store.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p ferry-server --no-default-features \
    && install -D -m 0755 target/release/ferry /out/ferry

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/ferry /usr/local/bin/ferry
# distroless's `nonroot` user.
USER 65532:65532
# Inside a container ferry listens on every address (the default is loopback only); the admin port
# serves /metrics, /healthz and /readyz. Logs are JSON lines.
ENV FERRY_LISTEN=0.0.0.0:8080 \
    FERRY_ADMIN_LISTEN=0.0.0.0:9090 \
    FERRY_LOG_JSON=true
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/ferry"]
CMD ["serve"]
