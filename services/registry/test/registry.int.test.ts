import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import jwt from 'jsonwebtoken';
import { createPublicKey } from 'node:crypto';
import request from 'supertest';
import { expectEnvelope, startNatsServer, udcConformanceSuite, waitFor, type NatsServerHandle } from '@droplet-mesh/udc-kit/testing';
import { ADMIN_KEY, startRegistry, subscribeEvents } from './support.js';

let nats: NatsServerHandle;
let reg: Awaited<ReturnType<typeof startRegistry>>;

async function tokenFor(id: string, key = ADMIN_KEY): Promise<string> {
  const res = await request(reg.droplet.app).post(`/auth/token?droplet_id=${id}`).set('X-Registry-Key', key);
  expect(res.status).toBe(200);
  return res.body.token;
}

beforeAll(async () => {
  nats = await startNatsServer();
  reg = await startRegistry(nats.url, { LIVENESS_TICK_MS: '50' });
}, 60_000);

afterAll(async () => {
  await reg?.droplet.stop();
  await nats?.stop({ removeStore: true });
});

udcConformanceSuite('registry', async () => {
  // Tokens with exactly the scopes asked for, signed by the registry's own current key.
  const sign = (scopes: string[]) =>
    reg.keyring().sign({ sub: 'conformance', droplet_id: 'conformance', scopes }, 'droplet-mesh-registry', 'droplet-mesh').token;
  return { app: reg.droplet.app, routes: reg.droplet.api.routes, dropletName: 'registry', token: sign };
});

describe('registration and tokens', () => {
  it('registers with the admin key, returns a droplet key once, and mints RS256 tokens from it', async () => {
    const first = await request(reg.droplet.app)
      .post('/droplets')
      .set('X-Registry-Key', ADMIN_KEY)
      .send({ id: 'alpha', name: 'Alpha', url: 'http://127.0.0.1:9999', capabilities: ['echo'], version: '1.0.0', kind: 'service' });
    expect(first.status).toBe(201);
    expect(first.body.droplet).toMatchObject({ id: 'alpha', status: 'active', steward: 'alpha', kind: 'service' });
    expect(first.body.droplet.key_hash).toBeUndefined();
    const dropletKey: string = first.body.droplet_key;
    expect(dropletKey).toMatch(/^dk_/);

    const again = await request(reg.droplet.app)
      .post('/droplets')
      .set('X-Registry-Key', dropletKey)
      .send({ id: 'alpha', url: 'http://127.0.0.1:9998', kind: 'service' });
    expect(again.status).toBe(200);
    expect(again.body.droplet_key).toBeUndefined();
    expect(again.body.droplet.url).toBe('http://127.0.0.1:9998');

    const tok = await request(reg.droplet.app).post('/auth/token?droplet_id=alpha').set('X-Registry-Key', dropletKey);
    expect(tok.status).toBe(200);
    const jwks = await request(reg.droplet.app).get('/.well-known/jwks.json');
    const decoded = jwt.decode(tok.body.token, { complete: true })!;
    const jwk = jwks.body.keys.find((k: { kid: string }) => k.kid === decoded.header.kid);
    expect(jwk).toBeDefined();
    const claims = jwt.verify(tok.body.token, createPublicKey({ key: jwk, format: 'jwk' }), {
      algorithms: ['RS256'],
      issuer: 'droplet-mesh-registry',
      audience: 'droplet-mesh',
    }) as jwt.JwtPayload;
    expect(claims).toMatchObject({ sub: 'alpha', droplet_id: 'alpha', scopes: ['read', 'write'] });
    expect(claims.exp! - claims.iat!).toBe(3600);
    expect(Date.parse(tok.body.expires_at)).toBe(claims.exp! * 1000);

    const op = jwt.decode(await tokenFor('operator')) as jwt.JwtPayload;
    expect(op.scopes).toEqual(['read', 'write', 'admin']);
    // Least privilege: a key may ask for fewer scopes, never more.
    const readOnly = await request(reg.droplet.app).post('/auth/token?droplet_id=operator&scopes=read').set('X-Registry-Key', ADMIN_KEY);
    expect((jwt.decode(readOnly.body.token) as jwt.JwtPayload).scopes).toEqual(['read']);
    expectEnvelope(
      await request(reg.droplet.app).post('/auth/token?droplet_id=alpha&scopes=read,admin').set('X-Registry-Key', dropletKey),
      403,
      'FORBIDDEN',
    );
    expectEnvelope(
      await request(reg.droplet.app).post('/auth/token?droplet_id=alpha&scopes=root').set('X-Registry-Key', dropletKey),
      400,
      'INVALID_REQUEST',
    );
  });

  it('refuses a wrong key (401), an unknown droplet (404) and an invalid body (400 with fields)', async () => {
    expectEnvelope(
      await request(reg.droplet.app).post('/auth/token?droplet_id=alpha').set('X-Registry-Key', 'dk_wrong'),
      401,
      'UNAUTHORIZED',
    );
    expectEnvelope(
      await request(reg.droplet.app)
        .post('/droplets')
        .set('X-Registry-Key', 'nope-nope-nope')
        .send({ id: 'beta', url: 'http://127.0.0.1:1', kind: 'service' }),
      401,
    );
    const op = await tokenFor('operator');
    expectEnvelope(await request(reg.droplet.app).get('/droplets/nobody').set('Authorization', `Bearer ${op}`), 404, 'NOT_FOUND');
    const bad = await request(reg.droplet.app)
      .post('/droplets')
      .set('X-Registry-Key', ADMIN_KEY)
      .send({ id: 'Bad Id!', url: 'ftp://x', kind: 'robot' });
    expectEnvelope(bad, 400, 'INVALID_REQUEST');
    const paths = bad.body.error.details.fields.map((f: { path: string }) => f.path).sort();
    expect(paths).toEqual(['id', 'kind', 'url']);
  });

  it('lists with filters and pagination', async () => {
    for (const id of ['list-a', 'list-b', 'list-c']) {
      await request(reg.droplet.app)
        .post('/droplets')
        .set('X-Registry-Key', ADMIN_KEY)
        .send({ id, url: 'http://127.0.0.1:1', kind: id === 'list-c' ? 'host' : 'service', capabilities: ['listed'] });
    }
    const op = await tokenFor('operator');
    const page1 = await request(reg.droplet.app).get('/droplets?capability=listed&per_page=2').set('Authorization', `Bearer ${op}`);
    expect(page1.status).toBe(200);
    expect(page1.body.items.map((r: { id: string }) => r.id)).toEqual(['list-a', 'list-b']);
    expect(page1.body.pagination).toMatchObject({ total: 3, next_page: 2 });
    const hosts = await request(reg.droplet.app).get('/droplets?capability=listed&kind=host').set('Authorization', `Bearer ${op}`);
    expect(hosts.body.items.map((r: { id: string }) => r.id)).toEqual(['list-c']);
    expectEnvelope(await request(reg.droplet.app).get('/droplets?status=sleepy').set('Authorization', `Bearer ${op}`), 400);
  });

  it('lets a droplet register and remove records it stewards, and no one else', async () => {
    const mcm = await tokenFor('mcm-test');
    const other = await tokenFor('other-test');
    const created = await request(reg.droplet.app)
      .post('/droplets')
      .set('Authorization', `Bearer ${mcm}`)
      .send({ id: 'host-local-1', url: 'http://127.0.0.1', kind: 'host', metadata: { provider: 'local' } });
    expect(created.status).toBe(201);
    expect(created.body.droplet.steward).toBe('mcm-test');
    expect(created.body.droplet_key).toBeUndefined();
    expectEnvelope(
      await request(reg.droplet.app)
        .post('/droplets')
        .set('Authorization', `Bearer ${other}`)
        .send({ id: 'host-local-1', url: 'http://127.0.0.1:2', kind: 'host' }),
      403,
      'FORBIDDEN',
    );
    expectEnvelope(
      await request(reg.droplet.app).delete('/droplets/host-local-1').set('Authorization', `Bearer ${other}`),
      403,
      'FORBIDDEN',
    );
    expect((await request(reg.droplet.app).delete('/droplets/host-local-1').set('Authorization', `Bearer ${mcm}`)).status).toBe(204);
  });

  it('rate-limits token requests per address with 429 and Retry-After', async () => {
    const own = await startRegistry(nats.url, { AUTH_FAILURE_LIMIT_PER_MIN: '3' });
    try {
      for (let i = 0; i < 3; i++)
        expect(
          (
            await request(own.droplet.app)
              .post('/auth/token?droplet_id=x')
              .set('X-Registry-Key', 'guess-' + i)
          ).status,
        ).toBe(401);
      const res = await request(own.droplet.app).post('/auth/token?droplet_id=x').set('X-Registry-Key', ADMIN_KEY);
      expectEnvelope(res, 429, 'RATE_LIMITED');
      expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
    } finally {
      await own.droplet.stop();
    }
  });
});

describe('heartbeats and liveness', () => {
  it('accepts a heartbeat only from the droplet itself', async () => {
    await request(reg.droplet.app)
      .post('/droplets')
      .set('X-Registry-Key', ADMIN_KEY)
      .send({ id: 'hb-self', url: 'http://127.0.0.1:1', kind: 'service' });
    const own = await tokenFor('hb-self');
    const other = await tokenFor('hb-other');
    const ok = await request(reg.droplet.app)
      .post('/droplets/hb-self/heartbeat')
      .set('Authorization', `Bearer ${own}`)
      .send({ status: 'active', metrics: { rpm: 3 } });
    expect(ok.status).toBe(200);
    const seen = await request(reg.droplet.app).get('/droplets/hb-self').set('Authorization', `Bearer ${own}`);
    expect(seen.body.droplet.last_report).toEqual({ status: 'active', metrics: { rpm: 3 } });
    expectEnvelope(
      await request(reg.droplet.app)
        .post('/droplets/hb-self/heartbeat')
        .set('Authorization', `Bearer ${own}`)
        .send({ metrics: { blob: 'x'.repeat(5000) } }),
      400,
    );
    expectEnvelope(
      await request(reg.droplet.app).post('/droplets/hb-self/heartbeat').set('Authorization', `Bearer ${other}`).send({}),
      403,
      'FORBIDDEN',
    );
    expectEnvelope(await request(reg.droplet.app).post('/droplets/hb-self/heartbeat').send({}), 401);
  });

  it('goes stale after 3 missed intervals, down after 10, and recovers on a NATS heartbeat, with events', async () => {
    const events = await subscribeEvents(nats.url, 'registry.droplet.>');
    try {
      await request(reg.droplet.app)
        .post('/droplets')
        .set('X-Registry-Key', ADMIN_KEY)
        .send({ id: 'flaky', url: 'http://127.0.0.1:1', kind: 'service', heartbeat_interval_s: 0.2 });
      const started = Date.now();
      await waitFor('flaky to be stale', () => reg.store().get('flaky')?.status === 'stale', 5000);
      const staleAt = Date.now() - started;
      await waitFor('flaky to be down', () => reg.store().get('flaky')?.status === 'down', 5000);
      const downAt = Date.now() - started;
      expect(staleAt).toBeGreaterThanOrEqual(550);
      expect(downAt).toBeGreaterThanOrEqual(1950);
      expect(downAt).toBeLessThan(3500);
      const { Bus } = await import('@droplet-mesh/udc-kit');
      const bus = await Bus.connect({ url: nats.url, name: 'flaky' });
      bus.publishJson('registry.heartbeat.flaky', { status: 'active', metrics: { queue: 7 } });
      await bus.close();
      await waitFor('flaky to recover', () => reg.store().get('flaky')?.status === 'active', 5000);
      expect(reg.liveness().lastReportOf('flaky')).toEqual({ status: 'active', metrics: { queue: 7 } });
      await waitFor(
        'events',
        () => events.seen.some((e) => e.subject === 'registry.droplet.recovered' && e.data.droplet.id === 'flaky'),
        5000,
      );
      const mine = events.seen.filter((e) => e.data.droplet?.id === 'flaky').map((e) => e.subject);
      expect(mine).toEqual([
        'registry.droplet.registered',
        'registry.droplet.stale',
        'registry.droplet.down',
        'registry.droplet.recovered',
      ]);
      const ev = await request(reg.droplet.app)
        .get('/events?type=droplet.')
        .set('Authorization', `Bearer ${await tokenFor('operator')}`);
      expect(ev.body.events.map((e: { type: string }) => e.type)).toEqual(
        expect.arrayContaining(['droplet.stale', 'droplet.down', 'droplet.recovered']),
      );
    } finally {
      await events.close();
    }
  });
});

describe('keys, restarts and replicas', () => {
  it('rotates keys: old tokens still verify, new tokens carry the new kid', async () => {
    const before = await tokenFor('rot');
    const oldKid = jwt.decode(before, { complete: true })!.header.kid!;
    expectEnvelope(
      await request(reg.droplet.app)
        .post('/keys/rotate')
        .set('Authorization', `Bearer ${await tokenFor('rot')}`),
      403,
      'FORBIDDEN',
    );
    const rot = await request(reg.droplet.app).post('/keys/rotate').set('X-Registry-Key', ADMIN_KEY);
    expect(rot.status).toBe(200);
    expect(rot.body.previous).toBe(oldKid);
    const after = await tokenFor('rot');
    expect(jwt.decode(after, { complete: true })!.header.kid).toBe(rot.body.kid);
    const jwks = await request(reg.droplet.app).get('/.well-known/jwks.json');
    expect(jwks.body.keys.map((k: { kid: string }) => k.kid)).toEqual(expect.arrayContaining([oldKid, rot.body.kid]));
    for (const t of [before, after])
      expect((await request(reg.droplet.app).get('/state').set('Authorization', `Bearer ${t}`)).status).toBe(200);
  });

  it('a second replica and a restarted registry give the same answers; tokens stay valid', async () => {
    const op = await tokenFor('operator');
    const replica = await startRegistry(nats.url);
    try {
      const a = await request(reg.droplet.app).get('/droplets/alpha').set('Authorization', `Bearer ${op}`);
      const b = await request(replica.droplet.app).get('/droplets/alpha').set('Authorization', `Bearer ${op}`);
      expect(b.status).toBe(200);
      expect(b.body.droplet.url).toBe(a.body.droplet.url);
      const jwksA = await request(reg.droplet.app).get('/.well-known/jwks.json');
      const jwksB = await request(replica.droplet.app).get('/.well-known/jwks.json');
      expect(jwksB.body).toEqual(jwksA.body);
      // A record written through one replica is visible on the other.
      await request(replica.droplet.app)
        .post('/droplets')
        .set('X-Registry-Key', ADMIN_KEY)
        .send({ id: 'via-replica', url: 'http://127.0.0.1:3', kind: 'service' });
      await waitFor(
        'replication',
        async () => (await request(reg.droplet.app).get('/droplets/via-replica').set('Authorization', `Bearer ${op}`)).status === 200,
        5000,
      );
    } finally {
      await replica.droplet.stop();
    }
    await reg.droplet.stop();
    reg = await startRegistry(nats.url, { LIVENESS_TICK_MS: '50' });
    const after = await request(reg.droplet.app).get('/droplets/alpha').set('Authorization', `Bearer ${op}`);
    expect(after.status).toBe(200);
    expect(after.body.droplet.url).toBe('http://127.0.0.1:9998');
  });
});
