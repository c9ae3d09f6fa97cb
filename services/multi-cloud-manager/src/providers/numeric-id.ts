import { InvalidRequest } from '@droplet-mesh/udc-kit';
import type { ProviderName } from './cloud-provider.js';

/** DigitalOcean and Hetzner ids are positive integers; anything else is a client mistake. */
export function numericId(provider: ProviderName, id: string): string {
  if (!/^[1-9]\d{0,15}$/.test(id))
    throw new InvalidRequest(`${provider} instance ids are positive integers, got '${id.slice(0, 40)}'`, {
      fields: [{ path: 'id', message: 'must be a positive integer' }],
    });
  return id;
}
