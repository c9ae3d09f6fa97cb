/**
 * A droplet id: one DNS-style label (`registry`, `web-1`) or several joined by dots
 * (`drop4.fullpotential.ai`, as the seeds named droplets); each label 1-63 of [a-z0-9-]
 * starting with a letter or digit, 253 characters at most.
 */
export const DROPLET_ID_PATTERN = /^(?=.{1,253}$)[a-z0-9][a-z0-9-]{0,62}(?:\.[a-z0-9][a-z0-9-]{0,62})*$/;

/**
 * An id as one NATS subject token. A dot would split it into several tokens (and let
 * `drop4.fullpotential.ai` match subscriptions meant for `drop4`), so dots travel as `_`,
 * which no id contains: the mapping is one-to-one. Ids without dots are unchanged.
 */
export function dropletIdToken(id: string): string {
  if (!DROPLET_ID_PATTERN.test(id)) throw new Error(`'${id}' is not a droplet id`);
  return id.replaceAll('.', '_');
}

/** The id a subject token stands for; undefined when the token is no encoded id. */
export function dropletIdFromToken(token: string): string | undefined {
  const id = token.replaceAll('_', '.');
  return DROPLET_ID_PATTERN.test(id) ? id : undefined;
}

/** The subject a droplet's heartbeats travel on over NATS: `registry.heartbeat.<id, dots as _>`. */
export function heartbeatSubject(id: string): string {
  return `registry.heartbeat.${dropletIdToken(id)}`;
}
