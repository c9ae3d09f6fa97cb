import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readFile } from 'node:fs/promises';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import { AddressPolicy, MESH_SERVICE_PORTS, parseAllowList } from '@droplet-mesh/udc-kit';
import { expectEnvelope } from '@droplet-mesh/udc-kit/testing';
import { startHarness, type Harness } from './support/harness.js';
import { startUpstream, viaNginx, type Upstream } from './support/http.js';

// Finding 6 of the zero-trust review: any address was an upstream, and the probe's
// answer came back to the caller. Link-local and metadata addresses and the mesh's own
// loopback ports are refused unless UPSTREAM_ALLOW names them.

describe('the address policy (udc-kit)', () => {
  const policy = new AddressPolicy();
  it.each([
    ['169.254.169.254', 80],
    ['169.254.170.2', 80],
    ['100.100.100.200', 80],
    ['fe80::1', 80],
    ['fd00:ec2::254', 80],
    ['::ffff:169.254.169.254', 80],
    ['::ffff:a9fe:a9fe', 80],
    ['64:ff9b::a9fe:a9fe', 80],
    ['127.0.0.1', 8000],
    ['127.0.0.1', 4222],
    ['127.1.2.3', 8200],
    ['0.0.0.0', 8100],
    ['::1', 8300],
    ['::', 8500],
    ['::ffff:127.0.0.1', 8010],
  ])('refuses %s port %d', (ip, port) => {
    expect(policy.checkAddress(ip, port).ok).toBe(false);
  });

  it.each([
    ['127.0.0.1', 20001],
    ['127.0.0.1', 80],
    ['10.0.0.5', 8000],
    ['192.168.1.10', 4222],
    ['2001:db8::1', 8000],
    ['1.1.1.1', 443],
  ])('allows %s port %d', (ip, port) => {
    expect(policy.checkAddress(ip, port).ok).toBe(true);
  });

  it("this machine's own interface addresses count as this host", () => {
    const own = Object.values(networkInterfaces())
      .flat()
      .find((i) => i && !i.internal && i.family === 'IPv4');
    if (!own) return; // a machine with loopback only: nothing more to show
    expect(policy.checkAddress(own.address, 8000).ok).toBe(false);
    expect(policy.checkAddress(own.address, 30000).ok).toBe(true);
  });

  it('names every mesh port, NATS included', () => {
    expect([...MESH_SERVICE_PORTS].sort()).toEqual([4222, 8000, 8010, 8100, 8200, 8300, 8400, 8500].sort());
  });

  it('an allow-list entry lets exactly that host and port through', async () => {
    const p = new AddressPolicy({ allow: parseAllowList('127.0.0.1:8000, [fe80::1]:80, metadata.test:*') });
    expect(p.checkAddress('127.0.0.1', 8000).ok).toBe(true);
    expect(p.checkAddress('127.0.0.1', 8010).ok).toBe(false);
    expect(p.checkAddress('fe80::1', 80).ok).toBe(true);
    expect((await p.check('metadata.test', 80, async () => ['169.254.169.254'])).ok).toBe(true);
    expect((await p.check('other.test', 80, async () => ['169.254.169.254'])).ok).toBe(false);
    expect(() => parseAllowList('nonsense')).toThrow(/host:port/);
    expect(() => parseAllowList('a.test:70000')).toThrow();
  });

  it('a name is judged by what it resolves to', async () => {
    const v = await policy.check('metadata.google.internal', 80, async () => ['10.1.1.1', '169.254.169.254']);
    expect(v).toMatchObject({ ok: false });
    expect(v.reason).toMatch(/169\.254\.169\.254/);
    expect((await policy.check('localhost', 8000, async () => ['127.0.0.1'])).ok).toBe(false);
    expect((await policy.check('localhost', 30000, async () => ['127.0.0.1'])).ok).toBe(true);
  });
});

describe('upstreams through the API and messages', () => {
  let h: Harness;
  let up: Upstream;
  /** The DNS the droplet sees (its injected lookup): tests re-point names. */
  const dns = new Map<string, string[]>();

  beforeAll(async () => {
    up = await startUpstream('app');
    h = await startHarness({
      deps: {
        lookup: async (host) => {
          const a = dns.get(host);
          if (!a) throw Object.assign(new Error(`cannot resolve ${host}`), { code: 'ENOTFOUND' });
          return a;
        },
      },
    });
  });
  afterAll(async () => {
    await h?.close();
    await up?.close();
  });

  const put = (name: string, body: object) => request(h.pm.droplet.app).put(`/proxies/${name}`).set(h.auth()).send(body);

  it.each([
    ['the cloud metadata address', '169.254.169.254', 80],
    ['an IPv4-mapped metadata address', '::ffff:169.254.169.254', 80],
    ['a link-local IPv6 address', 'fe80::1', 80],
    ["Alibaba's metadata address", '100.100.100.200', 80],
    ["AWS's IPv6 metadata address", 'fd00:ec2::254', 80],
    ["the registry's loopback port", '127.0.0.1', 8000],
    ["NATS's loopback port", '127.0.0.1', 4222],
    ["the deployer's port on 0.0.0.0", '0.0.0.0', 8200],
  ])('refuses %s as an upstream with a 400 envelope, probing nothing', async (_what, host, port) => {
    for (const require_healthy of [true, false]) {
      const res = await put('meta', { domain: 'meta.test', upstreams: [{ host, port }], require_healthy });
      expectEnvelope(res, 400, 'INVALID_REQUEST');
      expect(res.body.error.details).toMatchObject({ reason: 'address_refused', port });
      // No probe result comes back to the caller.
      expect(JSON.stringify(res.body)).not.toMatch(/status_code|duration_ms|ECONNREFUSED/);
    }
    expect((await request(h.pm.droplet.app).get('/proxies/meta').set(h.auth())).status).toBe(404);
  });

  it('refuses a name that resolves to a metadata address, and the single-upstream form too', async () => {
    dns.set('metadata.evil.test', ['169.254.169.254']);
    const res = await put('evil', { domain: 'evil.test', upstreams: [{ host: 'metadata.evil.test', port: 80 }], require_healthy: false });
    expectEnvelope(res, 400, 'INVALID_REQUEST');
    const single = await put('evil', { domain: 'evil.test', upstream_host: '127.0.0.1', upstream_port: 8100, require_healthy: false });
    expect(single.status).toBe(400);
  });

  it('route.upsert (the deployer path) is refused the same way', async () => {
    const res = await request(h.pm.droplet.app)
      .post('/message')
      .set(h.auth())
      .send({
        source: 'deployer',
        target: 'proxy-manager',
        message_type: 'command',
        payload: { action: 'route.upsert', name: 'msg', domain: 'msg.test', upstreams: [{ host: '169.254.169.254', port: 80 }] },
      });
    expect(res.body).toMatchObject({ result: 'error', error: { code: 'INVALID_REQUEST', details: { reason: 'address_refused' } } });
  });

  it('an app published on another loopback port is still a fine upstream', async () => {
    const res = await put('app', { domain: 'app.test', upstreams: [{ host: '127.0.0.1', port: up.port }] });
    expect(res.status).toBe(201);
    expect((await viaNginx(h.httpPort, 'app.test')).body).toContain('upstream app');
  });

  it('a name re-pointed at a metadata address after it was accepted never reaches the rendered file', async () => {
    dns.set('flip.internal', ['127.0.0.1']);
    const res = await put('flip', { domain: 'flip.test', upstreams: [{ host: 'flip.internal', port: up.port }], require_healthy: false });
    expect(res.status).toBe(201);
    dns.set('flip.internal', ['169.254.169.254']);
    const outcome = await h.pm.reconciler.submit({ kind: 'refresh', name: 'flip' });
    expect(outcome.ok).toBe(true);
    const text = await readFile(join(h.pm.paths.sitesAvailable, 'mesh-flip.conf'), 'utf8');
    expect(text).not.toContain('169.254');
    const view = (await request(h.pm.droplet.app).get('/proxies/flip').set(h.auth())).body;
    expect(view.status.state).toBe('no_upstream');
    expect(JSON.stringify(view.status.unresolved)).toMatch(/not allowed/);
  });

  it('UPSTREAM_ALLOW lets an operator allow exactly one refused address', async () => {
    h.env.UPSTREAM_ALLOW = `127.0.0.1:${8000}`;
    try {
      await h.restartDroplet();
      const ok = await put('allowed', { domain: 'allowed.test', upstreams: [{ host: '127.0.0.1', port: 8000 }], require_healthy: false });
      expect(ok.status).toBe(201);
      const still = await put('nats', { domain: 'nats.test', upstreams: [{ host: '127.0.0.1', port: 4222 }], require_healthy: false });
      expect(still.status).toBe(400);
    } finally {
      delete h.env.UPSTREAM_ALLOW;
    }
  });

  it('a bad UPSTREAM_ALLOW stops start-up with the variable named', async () => {
    const { proxyManagerConfigSchema } = await import('../src/config.js');
    const r = proxyManagerConfigSchema.safeParse({ ...h.env, UPSTREAM_ALLOW: 'not-a-host-port' });
    expect(r.success).toBe(false);
    expect(JSON.stringify(r.error?.issues)).toContain('UPSTREAM_ALLOW');
  });
});
