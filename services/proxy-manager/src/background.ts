import type { AddressPolicy, Logger } from '@droplet-mesh/udc-kit';
import type { Reconciler } from './reconciler.js';
import { probeRoute, type HealthProbe } from './upstreams/health.js';
import { resolveRoute, type Lookup } from './upstreams/resolve.js';

/** A periodic task that never overlaps itself and never keeps the process alive. */
export function every(ms: number, task: () => Promise<unknown>, logger: Logger, what: string): () => void {
  let running = false;
  const t = setInterval(() => {
    if (running) return;
    running = true;
    task()
      .catch((err) => logger.error({ err }, `${what} failed`))
      .finally(() => (running = false));
  }, ms);
  t.unref();
  return () => clearInterval(t);
}

/** Re-check upstream health (for GET /proxies/{name}) and DNS (re-render when addresses moved). */
export async function recheckUpstreams(d: {
  reconciler: Reconciler;
  probe: HealthProbe;
  lookup: Lookup;
  policy?: AddressPolicy;
}): Promise<void> {
  for (const [name, stored] of d.reconciler.routes) {
    const r = stored.record;
    const [health, resolution] = await Promise.all([probeRoute(d.probe, r), resolveRoute(r, d.lookup, d.policy)]);
    d.reconciler.setHealth(name, health);
    const status = d.reconciler.statuses.get(name);
    const key = (xs: { address: string; port: number; weight: number }[]) => JSON.stringify(xs.map((x) => [x.address, x.port, x.weight]));
    if (status && status.state !== 'failed' && key(status.servers) !== key(resolution.all))
      await d.reconciler.submit({ kind: 'refresh', name });
  }
}
