# Image of proxy-manager: the droplet plus the nginx binary it runs and supervises.
# Build context: this file as Dockerfile, prune-bundle.mjs, and app/ (the bundle of
# @droplet-mesh/proxy-manager, see deploy/README.md).
#
# nginx comes from one of two places:
#  - INSTALL_NGINX=true (default): Debian's nginx package on top of BASE_IMAGE
#    (node:20-slim is Debian bookworm), with libnginx-mod-http-lua and lua-resty-core so
#    upstream changes switch without a reload (services/proxy-manager, NGINX_LUA=auto);
#    needs the Debian mirror during the build.
#  - INSTALL_NGINX=false: BASE_IMAGE already carries /usr/sbin/nginx, e.g. the offline
#    base made from the host's nginx and its libraries (deploy/local-base/; the compose e2e
#    also copies the host's lua module, its libraries and lua-resty-core there, at Debian's
#    paths, when the host has them). Without the lua module's files, proxy-manager logs
#    `nginx.lua unavailable` and reloads instead.
ARG BASE_IMAGE=node:20-slim

# Stage 1: the bundle without what nothing loads at run time, plus an empty data directory.
FROM ${BASE_IMAGE} AS bundle
# Marks this stage's leftover images: docker image prune --filter label=droplet-mesh.build-stage=bundle
LABEL droplet-mesh.build-stage=bundle
COPY prune-bundle.mjs /stage/prune-bundle.mjs
COPY app/ /stage/app/
RUN ["node", "/stage/prune-bundle.mjs", "/stage/app"]
RUN ["node", "-e", "require('node:fs').mkdirSync('/stage/data/.keep', { recursive: true })"]

# Stage 2: the runtime with nginx. nginx runs as the droplet's child with every path in
# DATA_DIR/nginx (-p/-c/-e), unprivileged, on ports above 1024 (published as 80/443).
FROM ${BASE_IMAGE}
ARG INSTALL_NGINX=true
RUN if [ "$INSTALL_NGINX" = "true" ]; then \
      apt-get update \
      && apt-get install -y --no-install-recommends nginx libnginx-mod-http-lua lua-resty-core \
      && rm -rf /var/lib/apt/lists/* /etc/nginx/sites-enabled/*; \
    fi
RUN ["/usr/sbin/nginx", "-v"]
# Whether this image switches upstreams without reloads (the droplet decides at start with nginx -t; this only reports).
RUN if [ -f /usr/lib/nginx/modules/ngx_http_lua_module.so ] && [ -f /usr/share/lua/5.1/resty/core.lua ]; then \
      echo "lua balancer: available"; else echo "lua balancer: absent (upstream changes reload nginx)"; fi
LABEL org.opencontainers.image.title="droplet-mesh proxy-manager"
ENV NODE_ENV=production HOST=0.0.0.0 PORT=8100 DATA_DIR=/data \
    NGINX_BIN=/usr/sbin/nginx PROXY_LISTEN_ADDRESS=0.0.0.0 PROXY_HTTP_PORT=8080 PROXY_HTTPS_PORT=8443
WORKDIR /app
COPY --from=bundle /stage/app/ /app/
COPY --from=bundle --chown=1000:1000 /stage/data/ /data/
USER 1000:1000
EXPOSE 8100 8080 8443
# node arguments: DROPLET_NODE_ARGS of scripts/droplet-node-args.mjs (the same list as `npm start`;
# bench/footprint checks that this line agrees with it).
CMD ["node", "--max-semi-space-size=2", "dist/main.js"]
