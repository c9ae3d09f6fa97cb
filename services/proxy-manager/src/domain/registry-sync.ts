import type { RegistryRecord } from '@droplet-mesh/udc-kit';
import { ROUTE_NAME, routeBodySchema, type RouteSpec } from './route-spec.js';

export interface SyncPlan {
  routes: Array<{ name: string; spec: RouteSpec; record_id: string }>;
  skipped: Array<{ id: string; reason: string }>;
}

function routeNameFor(r: Pick<RegistryRecord, 'id' | 'name'>): string | undefined {
  const raw = (r.name || r.id || '').toLowerCase();
  const name = raw
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 63)
    .replace(/-+$/, '');
  return ROUTE_NAME.test(name) ? name : undefined;
}

/** Registered droplets that advertise a domain become routes to their URL. Pure. */
export function routesFromRegistry(records: RegistryRecord[]): SyncPlan {
  const plan: SyncPlan = { routes: [], skipped: [] };
  const byName = new Map<string, string>();
  const byDomain = new Map<string, string>();
  for (const r of records) {
    const id = String(r.id);
    if (!r.domain) continue; // nothing to route: not an error
    if (r.status === 'down') {
      plan.skipped.push({ id, reason: 'record is down' });
      continue;
    }
    let url: URL;
    try {
      url = new URL(r.url);
    } catch {
      plan.skipped.push({ id, reason: 'url is not a valid URL' });
      continue;
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      plan.skipped.push({ id, reason: `url scheme ${url.protocol} is not http(s)` });
      continue;
    }
    const name = routeNameFor(r);
    if (!name) {
      plan.skipped.push({ id, reason: 'no usable route name in the record name or id' });
      continue;
    }
    const port = url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80;
    const parsed = routeBodySchema.safeParse({
      domain: r.domain,
      upstreams: [{ host: url.hostname, port }],
      health_path: r.health_path ?? '/health',
      require_healthy: false,
    });
    if (!parsed.success) {
      plan.skipped.push({ id, reason: parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ') });
      continue;
    }
    if (byName.has(name)) {
      plan.skipped.push({ id, reason: `route name '${name}' already taken by record ${byName.get(name)}` });
      continue;
    }
    if (byDomain.has(parsed.data.domain)) {
      plan.skipped.push({ id, reason: `domain ${parsed.data.domain} already claimed by record ${byDomain.get(parsed.data.domain)}` });
      continue;
    }
    byName.set(name, id);
    byDomain.set(parsed.data.domain, id);
    plan.routes.push({ name, spec: parsed.data, record_id: id });
  }
  return plan;
}
