// Where a service's replicas run when it has no explicit placement: spread over the servers
// assigned to its environment, at most one replica per server while there are enough
// servers, evenly beyond that. The starting server rotates with the target, so many
// single-replica services do not all land on the first server.
import { createHash } from 'node:crypto';
import { z } from 'zod';

/** `<environment>` (that environment in every project) or `<project>/<environment>`. */
export const environmentRefs = z
  .array(z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}(\/[a-z0-9][a-z0-9-]{0,62})?$/, 'must be <environment> or <project>/<environment>'))
  .max(50);

export interface PlaceableServer {
  id: string;
  environments?: string[];
  draining?: boolean;
}

/** The servers assigned to project/environment that take replicas (not drained), sorted by id. */
export function environmentServers<S extends PlaceableServer>(servers: S[], project: string, environment: string): S[] {
  return servers
    .filter((s) => !s.draining && s.environments?.some((e) => e === environment || e === `${project}/${environment}`))
    .sort((a, b) => a.id.localeCompare(b.id));
}

/**
 * `replicas` spread over `serverIds` (in that order, starting at a point picked by `key`):
 * every server gets floor(replicas/n) and the first replicas%n one more. Servers with none are left out.
 */
export function spreadReplicas(replicas: number, serverIds: string[], key: string): Array<{ server_id: string; replicas: number }> {
  const n = serverIds.length;
  if (n === 0) throw new Error('no servers to place on');
  const start = createHash('sha256').update(key).digest().readUInt32BE(0) % n;
  const out: Array<{ server_id: string; replicas: number }> = [];
  for (let i = 0; i < n; i++) {
    const id = serverIds[(start + i) % n];
    const count = Math.floor(replicas / n) + (i < replicas % n ? 1 : 0);
    if (count > 0) out.push({ server_id: id, replicas: count });
  }
  return out;
}

/**
 * The servers whose engine answers `ping` within `timeoutMs`, with the ones left out. A lost
 * server is left out of an environment's spread while another still answers; when none does,
 * every one is kept (the deploy then fails naming the server rather than placing nowhere).
 */
export async function answering<S extends { id: string }>(
  servers: S[],
  ping: (s: S) => Promise<unknown>,
  timeoutMs: number,
): Promise<{ up: S[]; down: Array<{ id: string; reason: string }> }> {
  if (servers.length <= 1) return { up: servers, down: [] };
  const results = await Promise.all(
    servers.map(async (s) => {
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          Promise.resolve().then(() => ping(s)),
          new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
          }),
        ]);
        return { s, reason: undefined };
      } catch (err) {
        return { s, reason: (err as Error).message || 'no answer' };
      } finally {
        clearTimeout(timer);
      }
    }),
  );
  const up = results.filter((r) => r.reason === undefined).map((r) => r.s);
  if (up.length === 0) return { up: servers, down: [] };
  return { up, down: results.filter((r) => r.reason !== undefined).map((r) => ({ id: r.s.id, reason: r.reason! })) };
}
