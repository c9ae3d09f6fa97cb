import { headers, type MsgHdrs } from '@nats-io/transport-node';
import type { RegistryLink } from '../droplet.js';
import { AUTH_HEADER } from '../messaging.js';

/**
 * A registry link that only hands out a token: enough for a droplet under test to send
 * authenticated messages (every NATS message carries its sender's JWT) without a registry.
 */
export function tokenOnlyRegistry(token: () => string): RegistryLink {
  return {
    start() {},
    async stop() {},
    status: () => ({ reachable: true, registered: true }),
    upsertRecord: async (record) => ({ ...record, status: 'active' }) as never,
    removeRecord: async () => {},
    list: async () => [],
    get: async () => undefined,
    token: async () => token(),
  };
}

/** NATS headers carrying a sender's JWT, as a droplet's sendMessage sets them. */
export function natsAuthHeaders(token: string): MsgHdrs {
  const h = headers();
  h.set(AUTH_HEADER, `Bearer ${token}`);
  return h;
}
