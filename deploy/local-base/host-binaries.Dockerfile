# BASE_IMAGE plus binaries copied from this host with the libraries they link, for a
# machine without an image registry (root/ is made by collect-host-binaries.sh).
# Used for the offline proxy-manager base: node base + the host's nginx.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
COPY root/ /
