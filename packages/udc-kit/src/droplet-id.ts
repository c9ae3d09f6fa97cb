import { z } from 'zod';
import { DROPLET_ID_PATTERN } from '@droplet-mesh/registry-client';

export { DROPLET_ID_PATTERN, dropletIdToken, dropletIdFromToken, heartbeatSubject } from '@droplet-mesh/registry-client';

/**
 * A registry id: `web-1`, or dotted like the seeds' `drop4.fullpotential.ai`. Dots are
 * fine in HTTP paths, JWT subjects and KV keys; on NATS an id travels as one subject token
 * with its dots as `_` (heartbeatSubject). A droplet's *name* (its message subject
 * `udc.<name>.message`, its NATS user) stays one label without dots.
 */
export const dropletIdSchema = z
  .string()
  .regex(
    DROPLET_ID_PATTERN,
    'must be a droplet id: labels of 1-63 [a-z0-9-] (starting with a letter or digit) joined by dots, 253 chars at most',
  );

/** A DNS hostname (no wildcard, port or path). */
export const hostnameSchema = z
  .string()
  .regex(/^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/i, 'must be a hostname');
