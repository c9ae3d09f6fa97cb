import { Unprocessable } from '@droplet-mesh/udc-kit';
import type { PriceBook } from '../domain/planner.js';
import {
  type Attrs,
  INDEX_LABEL,
  ids,
  type Kind,
  kindOf,
  type LiveState,
  type Managed,
  type Resource,
  SERVER_LABEL,
  STACK_LABEL,
} from '../domain/resources.js';
import type { Json, MeshClient } from './mesh-client.js';

export interface Observation {
  live: LiveState;
  prices: PriceBook;
  /** Secret names the file needs that are not set in the deployer. */
  warnings: string[];
  /** Providers whose size catalog was read (an unknown size there is the file's mistake). */
  catalogs: string[];
}

interface Instance {
  id: string;
  provider: string;
  provider_id: string;
  name: string;
  status: string;
  region: string | null;
  size: string | null;
  image: string | null;
  tags: string[];
  labels: Record<string, string>;
  price_monthly: number | null;
}

/** Run `fn` over `items`, at most `n` at a time. */
async function pool<T>(items: T[], n: number, fn: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]);
    }),
  );
}

const enc = encodeURIComponent;

/** Everything the stack's instances carry: labels say which stack, server and copy each one is. */
export async function stackInstances(mesh: MeshClient, stack: string, providers: Set<string>): Promise<Instance[]> {
  const out: Instance[] = [];
  for (let page = 1; page < 1000; page++) {
    const { body } = await mesh.get('multi-cloud-manager', `/instances?per_page=200&page=${page}`, { timeoutMs: 60_000 });
    for (const p of body.providers ?? [])
      if (providers.has(p.provider) && p.status !== 'ok')
        throw new Unprocessable(
          `multi-cloud-manager cannot list ${p.provider} (${p.status}${p.error?.message ? `: ${p.error.message}` : ''}): the stack's servers there are unknown`,
          { provider: p.provider, status: p.status },
          p.status === 'not_configured' ? 'INVALID_REQUEST' : 'DEPENDENCY_UNAVAILABLE',
        );
    out.push(...(body.items as Instance[]).filter((i) => i.labels?.[STACK_LABEL] === stack && i.status !== 'deleting'));
    if (!body.pagination?.next_page) break;
  }
  return out;
}

/**
 * Reads the live state of every resource the stack wants or created, from the droplets
 * that own it: multi-cloud-manager (instances by label), the deployer (projects,
 * environments, services, releases, secret names) and proxy-manager (routes, HTTPS).
 */
export async function observe(mesh: MeshClient, stack: string, desired: Resource[], managed: Managed): Promise<Observation> {
  const live: LiveState = {};
  const warnings: string[] = [];
  const targets = new Map<string, { kind: Kind; attrs: Attrs }>();
  for (const [id, m] of Object.entries(managed)) targets.set(id, { kind: m.kind, attrs: m.attrs });
  for (const r of desired) targets.set(r.id, { kind: r.kind, attrs: r.attrs });

  // Servers: one listing, matched by the stack's labels (never by name alone).
  const serverTargets = [...targets.values()].filter((t) => t.kind === 'server');
  const providers = new Set(serverTargets.map((t) => String(t.attrs.provider)));
  const prices: PriceBook = {};
  const catalogs: string[] = [];
  if (serverTargets.length > 0) {
    for (const i of await stackInstances(mesh, stack, providers)) {
      const server = i.labels[SERVER_LABEL];
      const index = Number(i.labels[INDEX_LABEL]);
      if (!server || !Number.isInteger(index)) continue;
      const id = ids.server(server, index);
      const applied = managed[id]?.attrs ?? targets.get(id)?.attrs ?? {};
      if (live[id]) {
        warnings.push(`two instances carry ${id}: ${String(live[id].ref?.provider_id)} and ${i.provider_id} (the second is not managed)`);
        continue;
      }
      providers.add(i.provider);
      live[id] = {
        kind: 'server',
        attrs: {
          name: i.name,
          provider: i.provider,
          region: i.region ?? applied.region ?? null,
          size: i.size ?? applied.size ?? null,
          // Providers report images and tags in their own words; what was applied is the comparable value.
          image: applied.image ?? i.image,
          tags: applied.tags ?? [],
        },
        ref: { provider: i.provider, provider_id: i.provider_id, price_monthly: i.price_monthly },
      };
    }
    await pool([...providers], 4, async (p) => {
      const { body } = await mesh.get('multi-cloud-manager', `/catalog/sizes?provider=${enc(p)}`, { timeoutMs: 60_000 });
      for (const s of body.items ?? [])
        prices[`${p}/${s.slug}`] = { price_monthly: s.price_monthly ?? null, currency: s.currency ?? 'USD' };
      if ((body.items ?? []).length > 0) catalogs.push(p);
    });
  }

  const accept = { accept: [404] };
  // Servers provisioned through the deployer: its server record (or its provisioning record) is the live state.
  await pool(
    [...targets.entries()].filter(([id, t]) => t.kind === 'server' && t.attrs.provision && !live[id]),
    8,
    async ([id, t]) => {
      const name = String(t.attrs.name);
      const r = await mesh.get('deployer', `/servers/${enc(name)}`, accept);
      if (r.status !== 200) return;
      const b = r.body;
      // A provisioning that failed or expired left no server: the stack has to provision it again.
      if (b.provisioning && (b.status === 'failed' || b.status === 'expired')) {
        warnings.push(`provisioning ${name} ${b.status}${b.reason ? `: ${b.reason}` : ''}`);
        return;
      }
      const applied = managed[id]?.attrs ?? t.attrs;
      let [provider, providerId] = b.provisioning ? [b.provider, b.instance_id] : String(b.instance_id ?? '').split(/:(.*)/s);
      if (!providerId) {
        // A report that overtook the instance's creation leaves it only on the provisioning record.
        const rec = await mesh.get('deployer', `/servers/provision/${enc(name)}`, accept);
        if (rec.status === 200) [provider, providerId] = [rec.body.provider, rec.body.instance_id];
      }
      live[id] = {
        kind: 'server',
        attrs: {
          name,
          provider: provider || applied.provider,
          region: b.region ?? applied.region,
          size: b.size ?? applied.size,
          image: applied.image,
          tags: applied.tags ?? [],
          provision: true,
          ...(b.provisioning ? { provisioning: b.status } : {}),
        },
        ...(providerId ? { ref: { provider: provider || String(applied.provider), provider_id: providerId, price_monthly: null } } : {}),
      };
    },
  );
  // The deployer's servers (which environments each serves), read once for every placement.
  let serverList: Promise<Map<string, string[]>> | undefined;
  const deployerServers = () => {
    serverList ??= (async () => {
      const out = new Map<string, string[]>();
      for (let page = 1; page < 100; page++) {
        const { body } = await mesh.get('deployer', `/servers?per_page=200&page=${page}`);
        for (const x of body.items ?? []) out.set(x.id, x.environments ?? []);
        if (!body.pagination?.next_page) break;
      }
      return out;
    })();
    return serverList;
  };
  // Each project's services, listed once (a plan of 100 services makes a few calls, not 100).
  const services = new Map<string, Promise<Map<string, Json>>>();
  const projectServices = (project: string) => {
    let p = services.get(project);
    if (!p) {
      p = (async () => {
        const out = new Map<string, Json>();
        for (let page = 1; page < 100; page++) {
          const r = await mesh.get('deployer', `/projects/${enc(project)}/services?per_page=200&page=${page}`, accept);
          if (r.status !== 200) break;
          for (const x of r.body.items ?? []) out.set(x.name, x);
          if (!r.body.pagination?.next_page) break;
        }
        return out;
      })();
      services.set(project, p);
    }
    return p;
  };
  await pool(
    [...targets.entries()].filter(([, t]) => t.kind !== 'server'),
    16,
    async ([id, t]) => {
      const a = t.attrs;
      const where = {
        project: a.project,
        environment: a.environment,
        service: a.service,
        deployer_service: a.deployer_service,
        target: a.target,
      };
      switch (kindOf(id)) {
        case 'project': {
          const r = await mesh.get('deployer', `/projects/${enc(String(a.name))}`, accept);
          if (r.status === 200) live[id] = { kind: 'project', attrs: { name: a.name, description: r.body.description ?? null } };
          return;
        }
        case 'environment': {
          const r = await mesh.get('deployer', `/projects/${enc(String(a.project))}/environments/${enc(String(a.name))}`, accept);
          if (r.status !== 200) return;
          live[id] = { kind: 'environment', attrs: { project: a.project, name: a.name, env: r.body.env ?? {} } };
          return;
        }
        case 'service': {
          const s = (await projectServices(String(a.project))).get(String(a.deployer_service));
          if (!s) return;
          live[id] = {
            kind: 'service',
            attrs: {
              ...where,
              type: s.type,
              domain: s.domain ?? null,
              health_path: s.health_path,
              env: s.env ?? {},
              replicas: s.replicas,
              secrets: a.secrets,
            },
          };
          const need = (a.secrets as string[] | undefined) ?? [];
          if (need.length > 0) {
            const sr = await mesh.get(
              'deployer',
              `/projects/${enc(String(a.project))}/environments/${enc(String(a.environment))}/secrets`,
              accept,
            );
            const have = new Set<string>(sr.status === 200 ? sr.body.items.map((x: { name: string }) => x.name) : []);
            for (const n of need)
              if (!have.has(n))
                warnings.push(
                  `secret ${n} is not set for ${String(a.project)}/${String(a.environment)} (needed by ${String(a.service)}): PUT /projects/${String(a.project)}/environments/${String(a.environment)}/secrets/${n} on the deployer`,
                );
          }
          return;
        }
        case 'placement': {
          const r = await mesh.get(
            'deployer',
            `/projects/${enc(String(a.project))}/services/${enc(String(a.deployer_service))}/placements/${enc(String(a.environment))}`,
            accept,
          );
          if (r.status !== 200) return;
          const servers = (r.body.servers as Array<{ server_id: string; replicas: number }>)
            .map((x) => ({ server_id: x.server_id, replicas: x.replicas }))
            .sort((x, y) => x.server_id.localeCompare(y.server_id));
          // Which of its servers serve the environment (PATCH /servers/{id} environments).
          const known = await deployerServers();
          const ref = `${String(a.project)}/${String(a.environment)}`;
          const assigned = servers.filter((x) => known.get(x.server_id)?.includes(ref)).map((x) => x.server_id);
          live[id] = { kind: 'placement', attrs: { ...where, servers, assigned } };
          return;
        }
        case 'release': {
          const r = await mesh.get('deployer', `/services/${enc(String(a.target))}`, accept);
          if (r.status !== 200) return;
          const d = await mesh.get('deployer', `/deployments/${enc(r.body.deployment_id)}`, accept);
          const source = d.status === 200 ? d.body.source : undefined;
          const image = source?.kind === 'image' ? source.image : source?.kind ? null : r.body.image;
          const git = source?.kind === 'git' ? { url: source.url, ref: source.ref, path: source.path ?? null } : null;
          live[id] = {
            kind: 'release',
            attrs: {
              ...where,
              image,
              git,
              ...(source?.kind === 'upload' ? { upload: true } : {}),
              running_image: r.body.image,
              deployment_id: r.body.deployment_id,
              replicas: r.body.containers?.length ?? 0,
            },
          };
          return;
        }
        case 'https': {
          const r = await mesh.get('proxy-manager', `/proxies/${enc(String(a.target))}`, accept);
          if (r.status === 200 && r.body.enable_ssl) live[id] = { kind: 'https', attrs: { ...where, domain: r.body.domain } };
          return;
        }
        case 'alerts': {
          const r = await mesh.get('health-monitor', `/notifications/recipients/${enc(String(a.owner))}`, accept);
          if (r.status === 200)
            live[id] = { kind: 'alerts', attrs: { owner: a.owner, emails: r.body.emails ?? [], webhooks: r.body.webhooks ?? [] } };
          return;
        }
        case 'route': {
          const r = await mesh.get('proxy-manager', `/proxies/${enc(String(a.name))}`, accept);
          if (r.status !== 200) return;
          const b = r.body;
          live[id] = {
            kind: 'route',
            attrs: {
              name: a.name,
              domain: b.domain,
              upstreams: (b.upstreams ?? []).map((u: { host: string; port: number }) => ({ host: u.host, port: u.port })),
              health_path: b.health_path,
              https: !!b.enable_ssl,
              require_healthy: a.require_healthy,
              websocket: !!b.websocket,
            },
          };
          return;
        }
      }
    },
  );
  return { live, prices, catalogs, warnings: [...new Set(warnings)].sort() };
}
