/** A registry host as image references name it: host[:port] (no scheme, no path). */
export const REGISTRY_HOST_PATTERN =
  /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*(?::\d{1,5})?$/;

/** Docker Hub, as Docker names it in authconfig lookups. */
export const DOCKER_HUB = 'docker.io';

/**
 * The registry an image reference pulls from, as Docker reads it: the first path component
 * when it holds a dot or a colon or is `localhost`, else Docker Hub.
 */
export function registryHostOf(ref: string): string {
  const slash = ref.indexOf('/');
  if (slash < 0) return DOCKER_HUB;
  const first = ref.slice(0, slash);
  if (first === 'localhost' || first.includes('.') || first.includes(':')) return first === 'index.docker.io' ? DOCKER_HUB : first;
  return DOCKER_HUB;
}

/** `repo@sha256:<64 hex>`: a reference that names content, not a tag that may move. */
export function isDigestRef(ref: string): boolean {
  return /@sha256:[a-f0-9]{64}$/.test(ref);
}

/** The repository of a reference: without its tag or digest. */
export function repositoryOf(ref: string): string {
  const at = ref.indexOf('@');
  const noDigest = at >= 0 ? ref.slice(0, at) : ref;
  const colon = noDigest.lastIndexOf(':');
  return colon > noDigest.lastIndexOf('/') ? noDigest.slice(0, colon) : noDigest;
}
