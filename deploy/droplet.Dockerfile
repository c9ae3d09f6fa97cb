# Image of one droplet (registry, multi-cloud-manager, deployer, health-monitor) from its
# production bundle. No network and no package registry are needed during the build:
# the bundle is prepared on the host (`pnpm deploy --prod`, see deploy/README.md).
# Build context: this file as Dockerfile, prune-bundle.mjs, and app/ (the bundle).
ARG BASE_IMAGE=node:20-slim

# Stage 1: the bundle without what nothing loads at run time (maps, types, sources),
# plus an empty data directory. Only the result reaches the final image.
FROM ${BASE_IMAGE} AS bundle
# Marks this stage's leftover images: docker image prune --filter label=droplet-mesh.build-stage=bundle
LABEL droplet-mesh.build-stage=bundle
COPY prune-bundle.mjs /stage/prune-bundle.mjs
COPY app/ /stage/app/
RUN ["node", "/stage/prune-bundle.mjs", "/stage/app"]
RUN ["node", "-e", "require('node:fs').mkdirSync('/stage/data/.keep', { recursive: true })"]

# Stage 2: the runtime. Code belongs to root and is read-only for the process, which
# runs as uid 1000 (`node` in the official image and in the local base).
FROM ${BASE_IMAGE}
ARG SERVICE
ARG PORT
LABEL org.opencontainers.image.title="droplet-mesh ${SERVICE}"
ENV NODE_ENV=production HOST=0.0.0.0 PORT=${PORT} DATA_DIR=/data
WORKDIR /app
COPY --from=bundle /stage/app/ /app/
COPY --from=bundle --chown=1000:1000 /stage/data/ /data/
USER 1000:1000
EXPOSE ${PORT}
# node arguments: DROPLET_NODE_ARGS of scripts/droplet-node-args.mjs (the same list as `npm start`;
# bench/footprint checks that this line agrees with it).
CMD ["node", "--max-semi-space-size=2", "dist/main.js"]
