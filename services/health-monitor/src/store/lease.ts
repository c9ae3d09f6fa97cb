import { KvLease as MeshLease } from '@droplet-mesh/udc-kit';
import type { KV } from '@nats-io/kv';
import { keyPart } from './keys.js';

/**
 * The recovery leases, one per incident: udc-kit's KvLease, which judges a lease by its KV
 * revision and this monitor's own monotonic clock. Monitors on different machines never
 * compare their wall clocks (a monitor whose clock ran ahead used to take live leases).
 * `monotonic` is for tests; it defaults to performance.now.
 */
export class KvLease extends MeshLease {
  constructor(kv: KV, holder: string, ttlMs: number, monotonic?: () => number) {
    super(kv, { holder, ttlMs, monotonic, key: keyPart });
  }
}
