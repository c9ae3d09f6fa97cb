# A NATS image from the host's nats-server, for a machine without an image registry
# (the official nats:2.10-alpine is the default in docker-compose.yml otherwise).
# Build context: root/ from collect-host-binaries.sh, and an empty data/ directory.
# BASE_IMAGE needs wget for the healthcheck (busybox).
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
COPY root/ /
COPY --chown=65534:65534 data/ /data/
USER 65534:65534
EXPOSE 4222
CMD ["nats-server", "--config", "/etc/nats/mesh.conf"]
