import type { Command } from 'commander';
import type { Context } from '../context.js';
import { age } from '../table.js';
import type { CommandEnv } from './command-env.js';

interface DropletRecord {
  id: string;
  name?: string;
  url: string;
  kind?: 'service' | 'host';
  status?: string;
  version?: string;
  health_path?: string;
  last_heartbeat_at?: string;
}

export interface LiveHealth {
  /** `active|inactive|error` from the droplet, or `unreachable`, or `http <code>`. */
  status: string;
  http_status?: number;
  degraded?: string[];
  error?: string;
}

const HEALTH_TIMEOUT_MS = 3000;

/** GET <url><health_path>: a 503 still carries the droplet's own status word. */
async function liveHealth(ctx: Context, r: DropletRecord): Promise<LiveHealth | null> {
  if (r.kind === 'host' && !r.health_path) return null;
  const client = ctx.client(r.id, r.url);
  try {
    const res = await client.fetch('GET', r.health_path ?? '/health', { auth: false, timeoutMs: HEALTH_TIMEOUT_MS });
    const body = (await res.json().catch(() => undefined)) as { status?: unknown; degraded?: unknown } | undefined;
    const word = typeof body?.status === 'string' ? body.status : `http ${res.status}`;
    return {
      status: word,
      http_status: res.status,
      ...(Array.isArray(body?.degraded) && body.degraded.length ? { degraded: body.degraded as string[] } : {}),
    };
  } catch (err) {
    return { status: 'unreachable', error: (err as Error).message };
  }
}

export function registerStatusCommand(program: Command, { context }: CommandEnv): void {
  program
    .command('status')
    .description('Every droplet the registry knows: liveness, version, last heartbeat and live /health')
    .option('--url <url>', 'registry URL (env MESHCTL_REGISTRY_URL)')
    .action(async (o: { url?: string }, cmd: Command) => {
      const ctx = context(cmd);
      const registry = await ctx.registry(o.url);
      const { items } = await registry.all<DropletRecord>('/droplets');
      const rows = await Promise.all(items.map(async (r) => ({ record: r, health: await liveHealth(ctx, r) })));
      ctx.out.result({ droplets: rows.map(({ record, health }) => ({ ...record, health })) }, () => {
        const now = Date.now();
        ctx.out.table(
          [
            { header: 'ID', value: (x) => x.record.id },
            { header: 'KIND', value: (x) => x.record.kind },
            { header: 'STATUS', value: (x) => x.record.status },
            {
              header: 'HEALTH',
              value: (x) => (x.health ? x.health.status + (x.health.degraded ? ` (degraded: ${x.health.degraded.join(',')})` : '') : null),
            },
            { header: 'VERSION', value: (x) => x.record.version },
            { header: 'LAST HEARTBEAT', value: (x) => age(x.record.last_heartbeat_at, now) },
            { header: 'URL', value: (x) => x.record.url },
          ],
          rows,
        );
      });
    });
}
