# A slim image of the wraith binary:
#   docker build -t wraith .
#   docker run --rm --network host wraith --host=replica.db --database=app --table=orders \
#       --alter="ADD COLUMN note VARCHAR(64)" --execute
# Not built here (no Docker engine on the project's machines).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin wraith

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/wraith /usr/local/bin/wraith
ENTRYPOINT ["wraith"]
