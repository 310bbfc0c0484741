# Doorman container image.
#   docker build -t doorman .
#   docker run -p 8080:8080 -v doorman-data:/app/data doorman
# Settings come from /app/settings (DOORMAN_ENV=<name> picks settings/<name>.toml) and from
# DOORMAN__SECTION__KEY environment variables.

# ---- Build stage ----
FROM rust:1.95-slim-bookworm AS builder
WORKDIR /src

# Build the dependencies alone first, so this layer stays cached until Cargo.toml/Cargo.lock change.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src

COPY src ./src
COPY templates ./templates
COPY settings ./settings
COPY static ./static
# touch: the copied sources may carry older timestamps than the dummy build above.
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked

# ---- Runtime stage ----
FROM debian:bookworm-slim

RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 doorman \
    && useradd --system --uid 10001 --gid doorman --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin doorman

WORKDIR /app
COPY --from=builder /src/target/release/doorman /usr/local/bin/doorman
COPY --from=builder /src/static /app/static
COPY --from=builder /src/settings /app/settings
# The embedded database lives here; mount a volume on /app/data to keep it.
RUN mkdir -p /app/data && chown doorman:doorman /app/data

USER doorman
EXPOSE 8080
ENV DOORMAN__SERVER__BIND=0.0.0.0:8080 \
    DOORMAN__STORAGE__PATH=/app/data/doorman.redb

# No HEALTHCHECK here: the image has no curl. docker-compose.yml runs `doorman healthcheck`.
ENTRYPOINT ["doorman"]
CMD ["serve"]
