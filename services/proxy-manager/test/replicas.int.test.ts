import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes, X509Certificate } from 'node:crypto';
import { readFileSync, rmSync, statSync } from 'node:fs';
import request from 'supertest';
import {
  expectEnvelope,
  freePort,
  startNatsServer,
  startTestAuthority,
  waitFor,
  type NatsServerHandle,
  type TestAuthority,
} from '@droplet-mesh/udc-kit/testing';
import type { CertificateIssuer } from '../src/acme/acme-issuer.js';
import { startHarness, type Harness } from './support/harness.js';
import { httpsViaNginx, startUpstream, viaNginx, type Upstream } from './support/http.js';
import { startPebble, type Pebble } from './support/pebble.js';
import { createTestCa } from './support/certs.js';

// Two proxy-manager replicas, each with its own nginx (own prefix, own ports), on one real
// nats-server: what one replica is told, the other's nginx serves, without being asked.
let nats: NatsServerHandle;
let authority: TestAuthority;
let pebble: Pebble;
let a: Harness;
let b: Harness;
let blue: Upstream;
let green: Upstream;
const breakOnB = new Set<string>();
/** Replica B must never ask the CA: every certificate it serves comes from A through the store. */
let issuedByB = 0;
const issuerOfB: CertificateIssuer = {
  issue: async () => {
    issuedByB++;
    throw new Error('replica B must not request certificates in this test');
  },
};

beforeAll(async () => {
  nats = await startNatsServer();
  authority = await startTestAuthority();
  [blue, green] = await Promise.all([startUpstream('blue'), startUpstream('green')]);
  const httpPortA = await freePort();
  pebble = await startPebble({ httpPort: httpPortA });
  const shared = {
    ACME_DIRECTORY_URL: pebble.directoryUrl,
    ACME_CA_BUNDLE: pebble.apiCaFile,
    ACME_EMAIL: 'ops@example.com',
    CERT_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
  };
  a = await startHarness({ nats, authority, env: { ...shared, PROXY_HTTP_PORT: String(httpPortA) } });
  b = await startHarness({
    nats,
    authority,
    env: shared,
    deps: { issuer: issuerOfB, transformRender: (name, text) => (breakOnB.has(name) ? `${text}\nthis_is_not_a_directive on;\n` : text) },
  });
}, 60_000);
afterAll(async () => {
  await a?.close();
  await b?.close();
  await pebble?.stop();
  await Promise.all([blue, green].map((u) => u?.close()));
  await authority?.close();
  await nats?.stop({ removeStore: true });
});

const put = (h: Harness, name: string, body: object) => request(h.pm.droplet.app).put(`/proxies/${name}`).set(h.auth()).send(body);
const get = (h: Harness, name: string) =>
  request(h.pm.droplet.app)
    .get(`/proxies/${name}`)
    .set(h.auth(['read']));
const serves = async (h: Harness, host: string, marker: string) => {
  const r = await viaNginx(h.httpPort, host);
  return r.status === 200 && r.body.includes(marker);
};

describe('replicas converge on the routes bucket', () => {
  it('a PUT on A serves through B within two seconds; B applies it without writing the store', async () => {
    const res = await put(a, 'shop', { domain: 'shop.test', upstreams: [{ host: '127.0.0.1', port: blue.port }] });
    expect(res.status).toBe(201);
    // From the moment A has answered (the change is in the store) to B's nginx serving it.
    const t0 = Date.now();
    await waitFor('shop.test through B', () => serves(b, 'shop.test', 'upstream blue'), 2000, 20);
    expect(Date.now() - t0).toBeLessThan(2000);

    // nginx may serve the new config a moment before B has recorded the round.
    await waitFor('B reports shop', async () => (await get(b, 'shop')).status === 200, 2000, 20);
    const onB = await get(b, 'shop');
    expect(onB.body).toMatchObject({
      name: 'shop',
      domain: 'shop.test',
      applied_revision: res.body.applied_revision,
      desired_revision: res.body.applied_revision,
      status: { state: 'serving' },
    });
    // B only followed: the stored entry is still A's write.
    const kv = await a.pm.droplet.ctx.bus.kv(a.pm.config.ROUTES_BUCKET);
    expect((await kv.get('shop'))?.revision).toBe(res.body.applied_revision);

    const updated = await put(a, 'shop', { domain: 'shop.test', upstreams: [{ host: '127.0.0.1', port: green.port }] });
    expect(updated.status).toBe(200);
    await waitFor('the update through B', () => serves(b, 'shop.test', 'upstream green'), 2000, 20);
    await waitFor(
      'B reports the update',
      async () => (await get(b, 'shop')).body.applied_revision === updated.body.applied_revision,
      2000,
      20,
    );
  });

  it('a DELETE on A stops the route on B', async () => {
    expect((await request(a.pm.droplet.app).delete('/proxies/shop').set(a.auth())).status).toBe(200);
    await waitFor('shop.test gone from B', async () => (await viaNginx(b.httpPort, 'shop.test')).status === 404, 2000, 20);
    await waitFor('B forgets shop', async () => (await get(b, 'shop')).status === 404, 2000, 20);
    expectEnvelope(await get(b, 'shop'), 404, 'NOT_FOUND');
    expect(() => statSync(`${b.pm.paths.sitesAvailable}/mesh-shop.conf`)).toThrow();
  });

  it('works both ways: a PUT on B serves through A', async () => {
    expect((await put(b, 'blog', { domain: 'blog.test', upstreams: [{ host: '127.0.0.1', port: blue.port }] })).status).toBe(201);
    await waitFor('blog.test through A', () => serves(a, 'blog.test', 'upstream blue'), 2000, 20);
  });

  it('fifty PUTs on A cost B at most three reloads', async () => {
    await b.pm.replicaSync.idle();
    const reloads = b.pm.nginx.reloads;
    const names = Array.from({ length: 50 }, (_, i) => `burst-${i}`);
    const results = await Promise.all(
      names.map((n) => put(a, n, { domain: `${n}.test`, require_healthy: false, upstreams: [{ host: '127.0.0.1', port: green.port }] })),
    );
    expect(results.map((r) => r.status)).toEqual(names.map(() => 201));
    await waitFor('all fifty on B', () => names.every((n) => b.pm.reconciler.statuses.get(n)?.state === 'serving'), 5000, 20);
    await b.pm.replicaSync.idle();
    for (const n of names) expect(await serves(b, `${n}.test`, 'upstream green')).toBe(true);
    const used = b.pm.nginx.reloads - reloads;
    expect(used).toBeGreaterThanOrEqual(1);
    expect(used).toBeLessThanOrEqual(3);
  });

  it('fifty changes written one at a time (a writer that does not coalesce) still cost B at most three reloads', async () => {
    await b.pm.replicaSync.idle();
    const reloads = b.pm.nginx.reloads;
    const kv = await a.pm.droplet.ctx.bus.kv(a.pm.config.ROUTES_BUCKET);
    const at = new Date().toISOString();
    const t0 = Date.now();
    for (let i = 0; i < 50; i++) {
      const name = `slow-${i}`;
      await kv.put(
        name,
        JSON.stringify({
          name,
          domain: `${name}.test`,
          upstreams: [{ host: '127.0.0.1', port: blue.port, weight: 1 }],
          require_healthy: false,
          enable_ssl: false,
          health_path: '/health',
          websocket: false,
          lb: 'round_robin',
          created_at: at,
          updated_at: at,
        }),
      );
      await new Promise((r) => setTimeout(r, 8));
    }
    // Spread over several quiet windows: only the debounce, not one event-loop tick, can merge them.
    expect(Date.now() - t0).toBeGreaterThanOrEqual(400);
    await waitFor(
      'all fifty on B',
      () => Array.from({ length: 50 }, (_, i) => `slow-${i}`).every((n) => b.pm.reconciler.statuses.get(n)?.state === 'serving'),
      5000,
      20,
    );
    await b.pm.replicaSync.idle();
    expect(await serves(b, 'slow-49.test', 'upstream blue')).toBe(true);
    const used = b.pm.nginx.reloads - reloads;
    expect(used).toBeLessThanOrEqual(3);
  });

  it('a stored route that fails nginx -t on B is marked failed there only; B keeps serving the rest', async () => {
    breakOnB.add('picky');
    const reloads = b.pm.nginx.reloads;
    const res = await put(a, 'picky', { domain: 'picky.test', upstreams: [{ host: '127.0.0.1', port: blue.port }] });
    expect(res.status).toBe(201);
    expect(await serves(a, 'picky.test', 'upstream blue')).toBe(true);
    await waitFor('picky marked failed on B', async () => (await get(b, 'picky')).body.status?.state === 'failed', 2000, 20);
    const onB = (await get(b, 'picky')).body;
    expect(onB).toMatchObject({ applied_revision: null, desired_revision: res.body.applied_revision });
    expect(onB.status.last_error.nginx_output).toContain('unknown directive "this_is_not_a_directive"');
    expect(b.pm.nginx.reloads).toBe(reloads);
    expect((await viaNginx(b.httpPort, 'picky.test')).status).toBe(404);
    expect(await serves(b, 'blog.test', 'upstream blue')).toBe(true);
    expect(await serves(b, 'burst-7.test', 'upstream green')).toBe(true);
    // B never rewrote the entry to "fix" it.
    const kv = await a.pm.droplet.ctx.bus.kv(a.pm.config.ROUTES_BUCKET);
    expect((await kv.get('picky'))?.revision).toBe(res.body.applied_revision);
    const health = await request(b.pm.droplet.app)
      .get('/proxy-manager/health')
      .set(b.auth(['read']));
    expect(health.body).toMatchObject({ status: 'degraded', checks: { failed_routes: ['picky'] } });

    // A later revision that B can render is applied there as usual.
    breakOnB.delete('picky');
    const fixed = await put(a, 'picky', { domain: 'picky.test', upstreams: [{ host: '127.0.0.1', port: green.port }] });
    await waitFor('picky through B once it renders', () => serves(b, 'picky.test', 'upstream green'), 2000, 20);
    await waitFor('B reports picky serving', async () => (await get(b, 'picky')).body.status?.state === 'serving', 2000, 20);
    expect((await get(b, 'picky')).body).toMatchObject({ applied_revision: fixed.body.applied_revision, status: { state: 'serving' } });
  });
});

describe('certificates are obtained once and shared', () => {
  it('a certificate A obtains serves HTTPS through B, which never asks the CA; the key is sealed in the bucket', async () => {
    expect((await put(a, 'secure', { domain: 'secure.test', upstreams: [{ host: '127.0.0.1', port: blue.port }] })).status).toBe(201);
    await waitFor('secure.test over HTTP through B', () => serves(b, 'secure.test', 'upstream blue'), 2000, 20);
    const ssl = await request(a.pm.droplet.app).post('/proxies/secure/ssl').set(a.auth()).send({});
    expect(ssl.status).toBe(200);
    expect(ssl.body.action).toBe('issued');

    const root = await pebble.issuanceRoot();
    await waitFor(
      'HTTPS through B',
      async () => (await httpsViaNginx(b.httpsPort, 'secure.test', root)).body.includes('upstream blue'),
      3000,
      50,
    );
    expect((await viaNginx(b.httpPort, 'secure.test')).status).toBe(301);
    expect(issuedByB).toBe(0);
    expect(readFileSync(`${b.dataDir}/certs/secure.test/fullchain.pem`, 'utf8')).toBe(
      readFileSync(`${a.dataDir}/certs/secure.test/fullchain.pem`, 'utf8'),
    );
    expect(statSync(`${b.dataDir}/certs/secure.test/privkey.pem`).mode & 0o777).toBe(0o600);

    const certs = await a.pm.droplet.ctx.bus.kv(a.pm.config.CERT_BUCKET);
    const stored = (await certs.get('cert.secure.test'))?.string() ?? '';
    expect(JSON.parse(stored).key.enc).toBe('aes-256-gcm');
    expect(stored).not.toContain('PRIVATE KEY');
    const lease = await certs.get('lease.secure.test');
    expect(!lease || lease.operation !== 'PUT').toBe(true);
  });

  it('a replica that starts without the files installs them from the store instead of asking the CA', async () => {
    await b.stopDroplet();
    rmSync(`${b.dataDir}/certs/secure.test`, { recursive: true, force: true });
    await b.restartDroplet();
    const root = await pebble.issuanceRoot();
    await waitFor(
      'HTTPS through the restarted B',
      async () => (await httpsViaNginx(b.httpsPort, 'secure.test', root)).status === 200,
      5000,
      50,
    );
    expect(issuedByB).toBe(0);
    // Asked directly for a certificate it lacks, B takes it from the store too.
    rmSync(`${b.dataDir}/certs/secure.test`, { recursive: true, force: true });
    const again = await request(b.pm.droplet.app).post('/proxies/secure/ssl').set(b.auth()).send({});
    expect(again.status).toBe(200);
    expect(again.body.action).toBe('fetched');
    expect(again.body.route.certificate.issuer).toMatch(/Pebble/i);
    expect(issuedByB).toBe(0);
  });

  it('a replica offers at start a certificate it holds that the store lacks', async () => {
    await (await a.pm.droplet.ctx.bus.kv(a.pm.config.CERT_BUCKET)).delete('cert.secure.test');
    await a.restartDroplet();
    // The restart closed the old bus with the old droplet.
    const e = await (await a.pm.droplet.ctx.bus.kv(a.pm.config.CERT_BUCKET)).get('cert.secure.test');
    expect(e?.operation).toBe('PUT');
    expect(new X509Certificate(JSON.parse(e?.string() ?? '{}').chain_pem).serialNumber).toBe(
      new X509Certificate(readFileSync(`${a.dataDir}/certs/secure.test/fullchain.pem`)).serialNumber,
    );
  });
});

describe('uploaded certificates across replicas', () => {
  it('a certificate uploaded on A is installed and served by B; deleting it on A takes it off B', async () => {
    const ca = createTestCa();
    try {
      expect(
        (await put(a, 'upl', { domain: 'x.upload.test', https: true, upstreams: [{ host: '127.0.0.1', port: blue.port }] })).status,
      ).toBe(201);
      await waitFor('B knows the route', async () => (await get(b, 'upl')).status === 200, 5000, 20);
      const cert = ca.issue({ names: ['*.upload.test'] });
      const up = await request(a.pm.droplet.app).post('/certificates').set(a.auth()).send({ certificate: cert.chainPem, key: cert.keyPem });
      expect(up.status).toBe(201);
      const id = up.body.certificate.id as string;
      await waitFor(
        'B serves the uploaded certificate',
        async () => (await httpsViaNginx(b.httpsPort, 'x.upload.test', ca.rootPem).catch(() => ({ status: 0 }))).status === 200,
        10_000,
        50,
      );
      const onB = await request(b.pm.droplet.app)
        .get(`/certificates/${id}`)
        .set(b.auth(['read']));
      expect(onB.body.names).toEqual(['*.upload.test']);
      expect((await request(a.pm.droplet.app).delete(`/certificates/${id}`).set(a.auth())).status).toBe(200);
      await waitFor(
        'B drops it',
        async () =>
          (
            await request(b.pm.droplet.app)
              .get(`/certificates/${id}`)
              .set(b.auth(['read']))
          ).status === 404,
        10_000,
        50,
      );
      expect(issuedByB).toBe(0);
    } finally {
      ca.close();
    }
  }, 60_000);
});
