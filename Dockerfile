# Both binaries in one image: `auth-api` (default) and `auth-verifier`.
# auth-api links the system OpenSSL (webauthn-rs, for passkeys): libssl-dev to build, libssl3 to run.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --workspace --bins

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libssl3 && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 auth
COPY --from=build /src/target/release/auth-api /src/target/release/auth-verifier /usr/local/bin/
USER auth
WORKDIR /var/lib/auth
EXPOSE 8080 8081
CMD ["auth-api", "serve"]
