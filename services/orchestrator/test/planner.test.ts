import { describe, expect, it } from '@jest/globals';
import { liveRevision, plan, type PriceBook, PLACEMENT_DROPPED } from '../src/domain/planner.js';
import { desiredResources, type LiveState, type Managed, type Resource } from '../src/domain/resources.js';
import { parseStackSource } from '../src/domain/stack-parse.js';

const FILE = {
  servers: { edge: { provider: 'hetzner', region: 'fsn1', size: 'cx22', image: 'ubuntu', count: 2 } },
  projects: {
    shop: {
      environments: {
        prod: {
          env: { LOG_LEVEL: 'info' },
          services: {
            web: { image: 'shop/web:1', domain: 'shop.example.com', https: true, replicas: 2 },
            jobs: { type: 'worker', image: 'shop/jobs:1' },
          },
        },
      },
    },
  },
  routes: { docs: { domain: 'docs.example.com', upstreams: [{ host: '10.0.0.5', port: 80 }] } },
};
const PRICES: PriceBook = {
  'hetzner/cx22': { price_monthly: 4.5, currency: 'EUR' },
  'hetzner/cx32': { price_monthly: 8, currency: 'EUR' },
};

const desired = (f: unknown = FILE) => desiredResources('st', parseStackSource(f));

/** Live state equal to a desired list (as if applied), servers with instance refs. */
function liveOf(resources: Resource[]): LiveState {
  const live: LiveState = {};
  for (const r of resources)
    live[r.id] = {
      kind: r.kind,
      attrs: r.kind === 'release' ? { ...r.attrs, deployment_id: `d-${r.id}` } : r.attrs,
      ...(r.kind === 'server' ? { ref: { provider: String(r.attrs.provider), provider_id: `id-${r.id}`, price_monthly: 4.5 } } : {}),
    };
  return live;
}
const managedOf = (resources: Resource[]): Managed =>
  Object.fromEntries(resources.map((r) => [r.id, { kind: r.kind, created: true, attrs: r.attrs }]));

describe('planner', () => {
  it('an empty mesh: every resource is created, in dependency order, with the cost of the servers', () => {
    const p = plan(desired(), {}, {}, PRICES);
    expect(p.steps.map((s) => `${s.action} ${s.id}`)).toEqual([
      'create server/edge/0',
      'create server/edge/1',
      'create project/shop',
      'create environment/shop/prod',
      'create service/shop/prod/web',
      'create service/shop/prod/jobs',
      'deploy release/shop/prod/web',
      'deploy release/shop/prod/jobs',
      'create https/shop/prod/web',
      'create route/docs',
    ]);
    expect(p.steps.map((s) => s.n)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(p.steps.every((s) => !s.destructive && s.before === null)).toBe(true);
    expect(p.cost.monthly_delta).toEqual({ EUR: 9 });
    expect(p.summary).toMatchObject({ create: 8, deploy: 2, delete: 0 });
    const web = p.steps.find((s) => s.id === 'service/shop/prod/web')!;
    expect(web.after).toMatchObject({
      deployer_service: 'web-prod',
      target: 'app-shop-web-prod-prod',
      domain: 'shop.example.com',
      replicas: 2,
    });
  });

  it('applying again is a no-op plan', () => {
    const d = desired();
    const p = plan(d, liveOf(d), managedOf(d), PRICES);
    expect(p.steps).toEqual([]);
    expect(p.cost.monthly_delta).toEqual({});
  });

  it('a changed image and replicas give exactly an update and a deploy, with before and after', () => {
    const d0 = desired();
    const next = structuredClone(FILE);
    next.projects.shop.environments.prod.services.web.image = 'shop/web:2';
    next.projects.shop.environments.prod.services.web.replicas = 3;
    const p = plan(desired(next), liveOf(d0), managedOf(d0), PRICES);
    expect(p.steps.map((s) => `${s.action} ${s.id}`)).toEqual(['update service/shop/prod/web', 'deploy release/shop/prod/web']);
    expect(p.steps[0].changes).toEqual([{ field: 'replicas', before: 2, after: 3 }]);
    expect(p.steps[1].changes).toEqual([{ field: 'image', before: 'shop/web:1', after: 'shop/web:2' }]);
    expect(p.steps[1].reasons).toEqual(['source shop/web:1 → shop/web:2', 'the service changed (a deploy applies it)']);
  });

  it('an environment change redeploys every service in it', () => {
    const d0 = desired();
    const next = structuredClone(FILE);
    next.projects.shop.environments.prod.env.LOG_LEVEL = 'debug';
    const p = plan(desired(next), liveOf(d0), managedOf(d0), PRICES);
    expect(p.steps.map((s) => `${s.action} ${s.id}`)).toEqual([
      'update environment/shop/prod',
      'deploy release/shop/prod/web',
      'deploy release/shop/prod/jobs',
    ]);
  });

  it('fewer servers and a resized one: deletes and a replace, flagged destructive, with the cost delta', () => {
    const d0 = desired();
    const next = structuredClone(FILE);
    next.servers.edge.count = 1;
    next.servers.edge.size = 'cx32';
    const p = plan(desired(next), liveOf(d0), managedOf(d0), PRICES);
    expect(p.steps.map((s) => `${s.action} ${s.id}`)).toEqual(['replace server/edge/0', 'delete server/edge/1']);
    expect(p.steps.every((s) => s.destructive)).toBe(true);
    expect(p.steps[0].changes).toEqual([{ field: 'size', before: 'cx22', after: 'cx32' }]);
    expect(p.steps[1].ref).toEqual({ provider: 'hetzner', provider_id: 'id-server/edge/1', price_monthly: 4.5 });
    expect(p.cost.monthly_delta).toEqual({ EUR: -1 }); // +3.5 for the bigger one, -4.5 for the one gone
  });

  it('removing a route deletes it first (freeing its domain); a removed deployed service is undeployed, then deleted', () => {
    const d0 = desired();
    const next: {
      routes: Partial<typeof FILE.routes>;
      projects: { shop: { environments: { prod: { services: Partial<typeof FILE.projects.shop.environments.prod.services> } } } };
    } = structuredClone(FILE);
    delete next.routes.docs;
    delete next.projects.shop.environments.prod.services.jobs;
    const p = plan(desired(next), liveOf(d0), managedOf(d0), PRICES);
    expect(p.steps.map((s) => `${s.action} ${s.id}`)).toEqual([
      'delete route/docs',
      'delete release/shop/prod/jobs',
      'delete service/shop/prod/jobs',
    ]);
    expect(p.steps.some((s) => s.unsupported)).toBe(false);
    expect(p.summary.unsupported).toBe(0);
  });

  it('destroy (an empty file) deletes in reverse dependency order, only what the stack created', () => {
    const d0 = desired();
    const managed = managedOf(d0);
    managed['project/shop'].created = false; // existed before the stack: never deleted
    const live = liveOf(d0);
    delete live['release/shop/prod/web'];
    delete live['release/shop/prod/jobs'];
    delete managed['release/shop/prod/web'];
    delete managed['release/shop/prod/jobs'];
    const p = plan([], live, managed, PRICES);
    expect(p.steps.map((s) => `${s.action} ${s.id}`)).toEqual([
      'delete route/docs',
      'delete https/shop/prod/web',
      'delete service/shop/prod/jobs',
      'delete service/shop/prod/web',
      'delete environment/shop/prod',
      'delete server/edge/0',
      'delete server/edge/1',
    ]);
    expect(p.steps.some((s) => s.unsupported)).toBe(false);
    expect(p.cost.monthly_delta).toEqual({ EUR: -9 });
  });

  it('an instance carrying the stack label that the file no longer has is deleted even if not in the inventory', () => {
    const live: LiveState = {
      'server/old/0': {
        kind: 'server',
        attrs: { name: 'st-old-0', provider: 'hetzner', region: 'fsn1', size: 'cx22', image: 'ubuntu', tags: [] },
        ref: { provider: 'hetzner', provider_id: '42', price_monthly: null },
      },
    };
    const p = plan([], live, {}, PRICES);
    expect(p.steps.map((s) => `${s.action} ${s.id}`)).toEqual(['delete server/old/0']);
    expect(p.cost.monthly_delta).toEqual({ EUR: -4.5 });
  });

  it('unknown prices are listed rather than guessed', () => {
    const p = plan(desired(), {}, {}, {});
    expect(p.cost.unknown_prices).toEqual(['hetzner/cx22']);
    expect(p.cost.monthly_delta).toEqual({});
  });

  it('the live revision changes with live state and with the stack revision', () => {
    const live = liveOf(desired());
    const a = liveRevision(live, 1);
    expect(liveRevision(structuredClone(live), 1)).toBe(a);
    expect(liveRevision(live, 2)).not.toBe(a);
    const moved = structuredClone(live);
    moved['release/shop/prod/web'].attrs.deployment_id = 'other';
    expect(liveRevision(moved, 1)).not.toBe(a);
  });

  it('a placed service: its servers serve the environment before it deploys, replicas spread over every copy', () => {
    const placed = structuredClone(FILE) as typeof FILE & Record<string, unknown>;
    (placed.projects.shop.environments.prod.services.web as Record<string, unknown>).placement = ['edge'];
    (placed.projects.shop.environments.prod.services.web as Record<string, unknown>).replicas = 3;
    const p = plan(desired(placed), {}, {}, PRICES);
    const at = (id: string) => p.steps.findIndex((s) => s.id === id);
    expect(at('placement/shop/prod/web')).toBeGreaterThan(at('service/shop/prod/jobs'));
    expect(at('release/shop/prod/web')).toBeGreaterThan(at('placement/shop/prod/web'));
    expect(p.steps[at('placement/shop/prod/web')].after).toMatchObject({
      servers: [
        { server_id: 'st-edge-0', replicas: 2 },
        { server_id: 'st-edge-1', replicas: 1 },
      ],
      assigned: ['st-edge-0', 'st-edge-1'],
    });
    // Applied; then the placement moves to one named engine: an update and a deploy that says why.
    const live = liveOf(desired(placed));
    const moved = structuredClone(placed);
    moved.servers = {
      ...moved.servers,
      big: { provider: 'hetzner', region: 'fsn1', size: 'cx32', image: 'ubuntu', engine: 'local' },
    } as typeof FILE.servers;
    (moved.projects.shop.environments.prod.services.web as Record<string, unknown>).placement = ['big'];
    const q = plan(desired(moved), live, managedOf(desired(placed)), PRICES);
    expect(q.steps.map((s) => `${s.action} ${s.id}`)).toEqual([
      'create server/big/0',
      'update placement/shop/prod/web',
      'deploy release/shop/prod/web',
    ]);
    expect(q.steps[2].reasons).toEqual(['its placement changed (a deploy moves it)']);
    expect(q.steps[1].after).toMatchObject({ servers: [{ server_id: 'local', replicas: 3 }] });
    // Destroy: the servers stop serving the environment after the undeploy, before the service goes.
    const d = plan([], live, managedOf(desired(placed)), PRICES);
    const ids = d.steps.map((s) => s.id);
    expect(ids.indexOf('placement/shop/prod/web')).toBe(ids.indexOf('release/shop/prod/web') + 1);
    expect(ids.indexOf('service/shop/prod/web')).toBeGreaterThan(ids.indexOf('placement/shop/prod/web'));
    expect(d.steps.find((s) => s.id === 'placement/shop/prod/web')?.unsupported).toBeUndefined();
  });

  it('a placement dropped from a service that stays: removed before the deploy that moves it, no step left undone', () => {
    const placed = structuredClone(FILE) as typeof FILE & Record<string, unknown>;
    (placed.projects.shop.environments.prod.services.web as Record<string, unknown>).placement = ['edge'];
    (placed.projects.shop.environments.prod.services.jobs as Record<string, unknown>).placement = ['edge'];
    const live = liveOf(desired(placed));
    const dropped = structuredClone(placed);
    delete (dropped.projects.shop.environments.prod.services.web as Record<string, unknown>).placement;
    const q = plan(desired(dropped), live, managedOf(desired(placed)), PRICES);
    expect(q.steps.map((s) => `${s.action} ${s.id}`)).toEqual(['delete placement/shop/prod/web', 'deploy release/shop/prod/web']);
    expect(q.steps[0].unsupported).toBeUndefined();
    expect(q.steps[0].reasons).toEqual([PLACEMENT_DROPPED]);
    // jobs (1 replica) still runs on st-edge-0 in prod: that server keeps serving the environment.
    expect(q.steps[0].keep_assigned).toEqual(['st-edge-0']);
    expect(q.steps[1].reasons).toEqual(['its placement changed (a deploy moves it)']);
    expect(q.summary.unsupported).toBe(0);
  });

  it('plans 100 services on 50 servers (its speed is measured in bench/orchestrator)', () => {
    const services = Object.fromEntries(
      Array.from({ length: 100 }, (_, i) => [`s${i}`, { image: `img/s${i}:1`, domain: `s${i}.example.com` }]),
    );
    const f = {
      servers: { n: { provider: 'hetzner', region: 'fsn1', size: 'cx22', image: 'ubuntu', count: 50 } },
      projects: { p: { environments: { prod: { services } } } },
    };
    const p = plan(desired(f), {}, {}, PRICES);
    expect(p.steps).toHaveLength(50 + 1 + 1 + 200);
  });
});
