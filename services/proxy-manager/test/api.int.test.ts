import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readdir } from 'node:fs/promises';
import request from 'supertest';
import { Bus, type RegistryLink, type RegistryRecord } from '@droplet-mesh/udc-kit';
import {
  natsAuthHeaders,
  expectEnvelope,
  startNatsServer,
  startTestAuthority,
  udcConformanceSuite,
  type NatsServerHandle,
  type TestAuthority,
} from '@droplet-mesh/udc-kit/testing';
import { createProxyManager } from '../src/app.js';
import { startHarness, type Harness } from './support/harness.js';
import { quiet, startUpstream, viaNginx, type Upstream } from './support/http.js';

let nats: NatsServerHandle;
let authority: TestAuthority;
let h: Harness;
let up: Upstream;
let registryRecords: RegistryRecord[] = [];

// Unit-level stand-in for the registry port; the mapping itself is tested in domain.test.ts.
const registry: RegistryLink = {
  start: () => undefined,
  stop: async () => undefined,
  status: () => ({ reachable: true, registered: true }),
  upsertRecord: async () => {
    throw new Error('not used');
  },
  removeRecord: async () => undefined,
  list: async () => registryRecords,
  get: async () => undefined,
  token: async () => 'unused',
};

beforeAll(async () => {
  nats = await startNatsServer();
  authority = await startTestAuthority();
  up = await startUpstream('svc');
  h = await startHarness({ nats, authority, deps: { registry } });
});
afterAll(async () => {
  await h?.close();
  await up?.close();
  await authority?.close();
  await nats?.stop({ removeStore: true });
});

udcConformanceSuite('proxy-manager', async () => ({
  app: h.pm.droplet.app,
  routes: h.pm.droplet.api.routes,
  dropletName: 'proxy-manager',
  token: (scopes) => authority.mint({ scopes }),
}));

describe('hostile input through the API', () => {
  const hostile: Array<[string, unknown]> = [
    ['domain with ;', { domain: 'a.test; return 200 x', upstreams: [{ host: '127.0.0.1', port: 80 }] }],
    ['domain with newline', { domain: 'a.test\nserver {', upstreams: [{ host: '127.0.0.1', port: 80 }] }],
    ['domain with $', { domain: '$host', upstreams: [{ host: '127.0.0.1', port: 80 }] }],
    ['host with {', { domain: 'a.test', upstreams: [{ host: 'x{', port: 80 }] }],
    ['host with quote', { domain: 'a.test', upstream_host: '"x"', upstream_port: 80 }],
    ['port as text', { domain: 'a.test', upstreams: [{ host: '127.0.0.1', port: '80; deny all' }] }],
    ['unknown field', { domain: 'a.test', upstreams: [{ host: '127.0.0.1', port: 80 }], raw: 'return 200;' }],
    [
      'both upstream forms',
      { domain: 'a.test', upstreams: [{ host: '127.0.0.1', port: 80 }], upstream_host: '127.0.0.1', upstream_port: 80 },
    ],
    ['no upstream', { domain: 'a.test' }],
    ['array body', []],
  ];
  it.each(hostile)('%s: 400 INVALID_REQUEST with the field, nothing written', async (_label, body) => {
    const before = await readdir(h.pm.paths.sitesAvailable);
    const res = await request(h.pm.droplet.app)
      .put('/proxies/hostile')
      .set(h.auth())
      .send(body as object);
    expectEnvelope(res, 400, 'INVALID_REQUEST');
    expect(Array.isArray(res.body.error.details.fields)).toBe(true);
    expect(await readdir(h.pm.paths.sitesAvailable)).toEqual(before);
  });

  it.each(['Bad', 'a;b', 'x'.repeat(64), 'a%0Ab'])('route name %j in the path is a 400', async (name) => {
    const res = await request(h.pm.droplet.app)
      .put(`/proxies/${name}`)
      .set(h.auth())
      .send({ domain: 'a.test', upstreams: [{ host: '127.0.0.1', port: 80 }] });
    expectEnvelope(res, 400, 'INVALID_REQUEST');
  });
});

describe("UDC message commands (the deployer's path)", () => {
  const msg = (payload: Record<string, unknown>) =>
    request(h.pm.droplet.app)
      .post('/message')
      .set(h.auth())
      .send({ source: 'deployer', target: 'proxy-manager', message_type: 'command', payload });

  it('route.upsert applies a route and returns it as applied; route.delete removes it', async () => {
    const events: string[] = [];
    const sub = h.pm.droplet.ctx.bus.nc.subscribe('proxy-manager.route.>', {
      callback: (_e, m) => {
        events.push(m.subject);
      },
    });
    const res = await msg({
      action: 'route.upsert',
      name: 'from-deployer',
      domain: 'deploy.test',
      upstreams: [{ host: '127.0.0.1', port: up.port }],
    });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      result: 'success',
      data: { created: true, route: { name: 'from-deployer', domain: 'deploy.test', status: { state: 'serving' } } },
    });
    expect((await viaNginx(h.httpPort, 'deploy.test')).body).toContain('upstream svc');

    // Over NATS too, as another droplet would send it.
    const bus = await Bus.connect({ url: nats.url, name: 'deployer-test' });
    try {
      const reply = await bus.nc.request(
        'udc.proxy-manager.message',
        JSON.stringify({
          source: 'deployer',
          target: 'proxy-manager',
          message_type: 'command',
          payload: { action: 'route.delete', name: 'from-deployer' },
        }),
        { timeout: 5000, headers: natsAuthHeaders(authority.mint({ sub: 'deployer', scopes: ['read', 'write'] })) },
      );
      expect(reply.json()).toMatchObject({ result: 'success', data: { deleted: true } });
      const bad = await bus.nc.request(
        'udc.proxy-manager.message',
        JSON.stringify({
          source: 'deployer',
          target: 'proxy-manager',
          message_type: 'command',
          payload: { action: 'route.upsert', name: 'x', domain: 'x.test;', upstreams: [] },
        }),
        { timeout: 5000, headers: natsAuthHeaders(authority.mint({ sub: 'deployer', scopes: ['read', 'write'] })) },
      );
      expect(bad.json()).toMatchObject({ result: 'error', error: { code: 'INVALID_REQUEST' } });
    } finally {
      await bus.close();
    }
    expect((await viaNginx(h.httpPort, 'deploy.test')).status).toBe(404);
    await h.pm.droplet.ctx.bus.nc.flush();
    sub.unsubscribe();
    expect(events).toEqual(expect.arrayContaining(['proxy-manager.route.applied', 'proxy-manager.route.deleted']));
  });

  it('route.upsert reports refusals as UDC errors', async () => {
    const res = await msg({ action: 'route.upsert', name: 'Bad Name', domain: 'a.test', upstreams: [{ host: '127.0.0.1', port: 80 }] });
    expect(res.body).toMatchObject({ result: 'error', error: { code: 'INVALID_REQUEST' } });
    const del = await msg({ action: 'route.delete', name: 'never-existed' });
    expect(del.body).toMatchObject({ result: 'error', error: { code: 'NOT_FOUND' } });
  });
});

describe('POST /proxy-manager/sync-from-registry', () => {
  it('creates routes for registered droplets that advertise a domain, in one reload', async () => {
    registryRecords = [
      {
        id: 'shop',
        name: 'shop',
        url: `http://127.0.0.1:${up.port}`,
        domain: 'shop.test',
        kind: 'service',
        capabilities: [],
        steward: 'registry',
        status: 'active',
        registered_at: '',
        updated_at: '',
      },
      {
        id: 'blog',
        name: 'blog',
        url: `http://localhost:${up.port}/`,
        domain: 'blog.test',
        kind: 'service',
        capabilities: [],
        steward: 'registry',
        status: 'active',
        registered_at: '',
        updated_at: '',
      },
      {
        id: 'worker',
        name: 'worker',
        url: 'http://127.0.0.1:1',
        kind: 'service',
        capabilities: [],
        steward: 'registry',
        status: 'active',
        registered_at: '',
        updated_at: '',
      },
      {
        id: 'evil',
        name: 'evil',
        url: 'http://127.0.0.1:1',
        domain: 'evil.test;',
        kind: 'service',
        capabilities: [],
        steward: 'registry',
        status: 'active',
        registered_at: '',
        updated_at: '',
      },
    ];
    const reloads = h.pm.nginx.reloads;
    const res = await request(h.pm.droplet.app).post('/proxy-manager/sync-from-registry').set(h.auth());
    expect(res.status).toBe(200);
    expect(res.body.routes).toEqual([
      { name: 'shop', record_id: 'shop', result: 'created' },
      { name: 'blog', record_id: 'blog', result: 'created' },
    ]);
    expect(res.body.skipped).toEqual([{ id: 'evil', reason: expect.stringContaining('domain') }]);
    expect(h.pm.nginx.reloads - reloads).toBe(1);
    expect((await viaNginx(h.httpPort, 'shop.test')).body).toContain('upstream svc');
    const again = await request(h.pm.droplet.app).post('/proxy-manager/sync-from-registry').set(h.auth());
    expect(again.body.routes.map((r: { result: string }) => r.result)).toEqual(['updated', 'updated']);
  });

  it('answers 503 DEPENDENCY_UNAVAILABLE without a registry link', async () => {
    const bus = await Bus.connect({ url: nats.url, name: 'no-registry' });
    try {
      const bare = createProxyManager({ env: { ...h.env, DATA_DIR: `${h.dataDir}/other` }, bus, logDestination: quiet });
      const res = await request(bare.droplet.app).post('/proxy-manager/sync-from-registry').set(h.auth());
      expectEnvelope(res, 503, 'DEPENDENCY_UNAVAILABLE');
    } finally {
      await bus.close();
    }
  });
});

describe('the Proxy Manager seed routes', () => {
  it('POST /proxies with the seed fields answers 201 with the route, which serves through nginx', async () => {
    const res = await request(h.pm.droplet.app).post('/proxies').set(h.auth()).send({
      droplet_name: 'seed-shop',
      domain: 'seed-shop.test',
      upstream_host: '127.0.0.1',
      upstream_port: up.port,
      enable_ssl: false,
      require_healthy: false,
      health_path: '/health',
    });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ name: 'seed-shop', domain: 'seed-shop.test', upstreams: [{ host: '127.0.0.1', port: up.port }] });
    expect((await viaNginx(h.httpPort, 'seed-shop.test')).body).toContain('upstream svc');
    expect((await request(h.pm.droplet.app).get('/proxies/seed-shop').set(h.auth())).status).toBe(200);
    const again = await request(h.pm.droplet.app).post('/proxies').set(h.auth()).send({
      droplet_name: 'seed-shop',
      domain: 'seed-shop.test',
      upstream_host: '127.0.0.1',
      upstream_port: up.port,
      require_healthy: false,
    });
    expect(again.status).toBe(200);
  });

  it.each([
    ['no droplet_name', { domain: 'a.test', upstream_host: '127.0.0.1', upstream_port: 80 }],
    ['bad droplet_name', { droplet_name: 'A;b', domain: 'a.test', upstream_host: '127.0.0.1', upstream_port: 80 }],
    ['no upstream_port', { droplet_name: 'x', domain: 'a.test', upstream_host: '127.0.0.1' }],
    ['hostile domain', { droplet_name: 'x', domain: 'a.test; return 200', upstream_host: '127.0.0.1', upstream_port: 80 }],
    ['unknown field', { droplet_name: 'x', domain: 'a.test', upstream_host: '127.0.0.1', upstream_port: 80, raw: 'x' }],
  ])('POST /proxies with %s: 400 INVALID_REQUEST', async (_label, body) => {
    const res = await request(h.pm.droplet.app).post('/proxies').set(h.auth()).send(body);
    expectEnvelope(res, 400, 'INVALID_REQUEST');
  });

  it('GET /proxy-manager/sync-from-registry syncs like POST (write scope)', async () => {
    registryRecords = [
      {
        id: 'seedsync',
        name: 'seedsync',
        url: `http://127.0.0.1:${up.port}`,
        domain: 'seedsync.test',
        kind: 'service',
        capabilities: [],
        steward: 'registry',
        status: 'active',
        registered_at: '',
        updated_at: '',
      },
    ];
    const readOnly = await request(h.pm.droplet.app)
      .get('/proxy-manager/sync-from-registry')
      .set(h.auth(['read']));
    expectEnvelope(readOnly, 403, 'FORBIDDEN');
    const res = await request(h.pm.droplet.app).get('/proxy-manager/sync-from-registry').set(h.auth());
    expect(res.status).toBe(200);
    expect(res.body.routes).toEqual([{ name: 'seedsync', record_id: 'seedsync', result: 'created' }]);
    expect((await viaNginx(h.httpPort, 'seedsync.test')).body).toContain('upstream svc');
  });

  it('the OpenAPI names the unified twin of each alias', async () => {
    const spec = (await request(h.pm.droplet.app).get('/openapi.json')).body;
    expect(spec.paths['/proxies'].post.summary).toMatch(/Alias of PUT \/proxies\/\{droplet_name\}/);
    expect(spec.paths['/proxy-manager/sync-from-registry'].get.summary).toMatch(/Alias of POST \/proxy-manager\/sync-from-registry/);
  });
});

describe('observability', () => {
  it('exposes route and nginx gauges on /metrics and proxy-manager events on /events', async () => {
    const m = await request(h.pm.droplet.app).get('/metrics');
    expect(m.text).toContain('proxy_manager_nginx_reloads_total');
    expect(m.text).toMatch(/proxy_manager_routes\{state="serving",droplet="proxy-manager"\} \d+/);
    const ev = await request(h.pm.droplet.app)
      .get('/events?type=route.')
      .set(h.auth(['read']));
    expect(ev.body.events.map((e: { subject: string }) => e.subject)).toEqual(
      expect.arrayContaining(['proxy-manager.route.applied', 'proxy-manager.route.deleted']),
    );
  });
});
