// Issue 12, the registry's findings: each test is an attack that worked before its fix.
//   4 — stewardship: squatting an absent droplet's id, read-only tokens mutating, unlimited key guesses
//   8 — bounds: unlimited records, an unknown kid reading KV on every request
//   9 — revocation: POST /auth/revoke, refused by every droplet within 2 s
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import jwt from 'jsonwebtoken';
import request from 'supertest';
import { z } from 'zod';
import { baseConfigShape, Bus, createDroplet } from '@droplet-mesh/udc-kit';
import { expectEnvelope, startNatsServer, waitFor, type NatsServerHandle } from '@droplet-mesh/udc-kit/testing';
import { ADMIN_KEY, quiet, startRegistry } from './support.js';

let nats: NatsServerHandle;
let reg: Awaited<ReturnType<typeof startRegistry>>;

const app = () => reg.droplet.app;

async function tokenFor(id: string, opts: { key?: string; scopes?: string } = {}): Promise<string> {
  const q = opts.scopes ? `&scopes=${opts.scopes}` : '';
  const res = await request(app())
    .post(`/auth/token?droplet_id=${id}${q}`)
    .set('X-Registry-Key', opts.key ?? ADMIN_KEY);
  expect(res.status).toBe(200);
  return res.body.token;
}

function register(body: Record<string, unknown>, auth: { key?: string; token?: string }) {
  const r = request(app()).post('/droplets');
  if (auth.key) r.set('X-Registry-Key', auth.key);
  if (auth.token) r.set('Authorization', `Bearer ${auth.token}`);
  return r.send({ kind: 'service', ...body });
}

beforeAll(async () => {
  nats = await startNatsServer();
  reg = await startRegistry(nats.url);
}, 60_000);

afterAll(async () => {
  await reg?.droplet.stop();
  await nats?.stop({ removeStore: true });
});

describe('finding 4: stewardship', () => {
  it('a droplet that registers again with the admin key is its own steward again; the squatter loses the record', async () => {
    const squatter = await tokenFor('squatter');
    // The real droplet is away (never registered yet, or its record is gone); a write token takes its id.
    const taken = await register({ id: 'victim-a', url: 'http://evil.example:1' }, { token: squatter });
    expect(taken.status).toBe(201);
    expect(taken.body.droplet.steward).toBe('squatter');
    // The real droplet comes up and registers as every droplet does (REGISTRY_KEY = the admin key).
    const back = await register({ id: 'victim-a', url: 'http://127.0.0.1:7001' }, { key: ADMIN_KEY });
    expect(back.status).toBe(200);
    expect(back.body.droplet.steward).toBe('victim-a');
    expect(back.body.droplet_key).toMatch(/^dk_/);
    // The squatter can no longer point the record elsewhere, nor remove it.
    expectEnvelope(await register({ id: 'victim-a', url: 'http://evil.example:2' }, { token: squatter }), 403, 'FORBIDDEN');
    expectEnvelope(await request(app()).delete('/droplets/victim-a').set('Authorization', `Bearer ${squatter}`), 403, 'FORBIDDEN');
    expect(reg.store().get('victim-a')?.url).toBe('http://127.0.0.1:7001');
  });

  it('the droplet key also makes the droplet its own steward again', async () => {
    const first = await register({ id: 'victim-k', url: 'http://127.0.0.1:7002' }, { key: ADMIN_KEY });
    const dropletKey: string = first.body.droplet_key;
    // An admin hands the record to another steward; the droplet's own key takes it back.
    await register({ id: 'victim-k', url: 'http://127.0.0.1:7002', steward: 'squatter' }, { key: ADMIN_KEY });
    const back = await register({ id: 'victim-k', url: 'http://127.0.0.1:7003' }, { key: dropletKey });
    expect(back.status).toBe(200);
    expect(back.body.droplet.steward).toBe('victim-k');
  });

  it('while a self-registered droplet is away, no other droplet may register its id', async () => {
    const first = await register({ id: 'victim-b', url: 'http://127.0.0.1:7010' }, { key: ADMIN_KEY });
    expect(first.status).toBe(201);
    const dropletKey: string = first.body.droplet_key;
    // It stops and deregisters itself, as RegistryClient.stop() does.
    expect((await request(app()).delete('/droplets/victim-b').set('X-Registry-Key', dropletKey)).status).toBe(204);
    const squatter = await tokenFor('squatter');
    expectEnvelope(await register({ id: 'victim-b', url: 'http://evil.example:1' }, { token: squatter }), 403, 'FORBIDDEN');
    expect(reg.store().get('victim-b')).toBeUndefined();
    // Its own key still brings it back, as its own steward (no new key: the one it holds stays valid).
    const back = await register({ id: 'victim-b', url: 'http://127.0.0.1:7011' }, { key: dropletKey });
    expect(back.status).toBe(201);
    expect(back.body.droplet.steward).toBe('victim-b');
    // Its own token may re-register it too.
    const own = await tokenFor('victim-b', { key: dropletKey });
    expect((await register({ id: 'victim-b', url: 'http://127.0.0.1:7012' }, { token: own })).status).toBe(200);
  });

  it('an admin removal keeps the id protected but ends the droplet key; ?forget=true releases the id', async () => {
    const first = await register({ id: 'victim-c', url: 'http://127.0.0.1:7020' }, { key: ADMIN_KEY });
    const dropletKey: string = first.body.droplet_key;
    expect((await request(app()).delete('/droplets/victim-c').set('X-Registry-Key', ADMIN_KEY)).status).toBe(204);
    const squatter = await tokenFor('squatter');
    expectEnvelope(await register({ id: 'victim-c', url: 'http://evil.example:1' }, { token: squatter }), 403, 'FORBIDDEN');
    expectEnvelope(await register({ id: 'victim-c', url: 'http://127.0.0.1:7021' }, { key: dropletKey }), 401, 'UNAUTHORIZED');
    expect((await request(app()).delete('/droplets/victim-c?forget=true').set('X-Registry-Key', ADMIN_KEY)).status).toBe(204);
    expect((await register({ id: 'victim-c', url: 'http://127.0.0.1:7022', kind: 'host' }, { token: squatter })).status).toBe(201);
    // Only an admin may forget.
    expectEnvelope(await request(app()).delete('/droplets/victim-c?forget=true').set('Authorization', `Bearer ${squatter}`), 403);
  });

  it('deleting a record and heartbeating need the write scope', async () => {
    const steward = await tokenFor('steward-ro');
    expect((await register({ id: 'ro-host', url: 'http://127.0.0.1:1', kind: 'host' }, { token: steward })).status).toBe(201);
    const readOnly = await tokenFor('steward-ro', { scopes: 'read' });
    expectEnvelope(await request(app()).delete('/droplets/ro-host').set('Authorization', `Bearer ${readOnly}`), 403, 'FORBIDDEN');
    expect(reg.store().get('ro-host')).toBeDefined();

    await register({ id: 'ro-self', url: 'http://127.0.0.1:1' }, { key: ADMIN_KEY });
    const selfRead = await tokenFor('ro-self', { scopes: 'read' });
    expectEnvelope(
      await request(app()).post('/droplets/ro-self/heartbeat').set('Authorization', `Bearer ${selfRead}`).send({}),
      403,
      'FORBIDDEN',
    );
    expectEnvelope(await request(app()).delete('/droplets/ro-self').set('Authorization', `Bearer ${selfRead}`), 403, 'FORBIDDEN');
    const selfWrite = await tokenFor('ro-self');
    expect((await request(app()).post('/droplets/ro-self/heartbeat').set('Authorization', `Bearer ${selfWrite}`).send({})).status).toBe(
      200,
    );
    expect((await request(app()).delete('/droplets/ro-self').set('Authorization', `Bearer ${selfWrite}`)).status).toBe(204);
  });

  it.each([
    [
      'POST /droplets',
      (k: string) => request(app()).post('/droplets').set('X-Registry-Key', k).send({ id: 'lim', url: 'http://127.0.0.1:1' }),
    ],
    ['DELETE /droplets/:id', (k: string) => request(app()).delete('/droplets/lim').set('X-Registry-Key', k)],
    ['POST /keys/rotate', (k: string) => request(app()).post('/keys/rotate').set('X-Registry-Key', k)],
    ['POST /auth/revoke', (k: string) => request(app()).post('/auth/revoke').set('X-Registry-Key', k).send({ droplet_id: 'lim' })],
  ])('%s counts wrong keys in the failure limiter (429 once spent, even for the right key)', async (_name, call) => {
    const own = await startRegistry(nats.url, { AUTH_FAILURE_LIMIT_PER_MIN: '3' });
    const saved = reg;
    reg = own;
    try {
      for (let i = 0; i < 3; i++) expectEnvelope(await call(`guess-${i}-0123456789abcdef`), 401, 'UNAUTHORIZED');
      const res = await call(ADMIN_KEY);
      expectEnvelope(res, 429, 'RATE_LIMITED');
      expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
      // Shared with /auth/token.
      expectEnvelope(await request(app()).post('/auth/token?droplet_id=x').set('X-Registry-Key', ADMIN_KEY), 429, 'RATE_LIMITED');
    } finally {
      reg = saved;
      await own.droplet.stop();
    }
  });
});

describe('finding 8: bounds', () => {
  it('REGISTRY_MAX_RECORDS: new ids beyond the bound are refused with 409; existing ones still update', async () => {
    // A registry of its own on a NATS of its own: an empty bucket to fill.
    const ownNats = await startNatsServer();
    const own = await startRegistry(ownNats.url, { REGISTRY_MAX_RECORDS: '5', REGISTRY_MAX_RECORDS_PER_STEWARD: '2' });
    const saved = reg;
    reg = own;
    try {
      const existing = reg.store().all().length;
      const spammer = await tokenFor('spammer');
      // One steward: at most 2 records.
      for (let i = 0; i < 2; i++)
        expect((await register({ id: `spam-${i}`, url: 'http://127.0.0.1:1', kind: 'host' }, { token: spammer })).status).toBe(201);
      const third = await register({ id: 'spam-2', url: 'http://127.0.0.1:1', kind: 'host' }, { token: spammer });
      expectEnvelope(third, 409, 'CONFLICT');
      expect(third.body.error.details).toMatchObject({ limit: 2, setting: 'REGISTRY_MAX_RECORDS_PER_STEWARD' });
      // The whole registry: at most 5.
      let n = 0;
      while (reg.store().all().length < 5)
        expect((await register({ id: `fill-${n++}`, url: 'http://127.0.0.1:1' }, { key: ADMIN_KEY })).status).toBe(201);
      const over = await register({ id: 'one-too-many', url: 'http://127.0.0.1:1' }, { key: ADMIN_KEY });
      expectEnvelope(over, 409, 'CONFLICT');
      expect(over.body.error.details).toMatchObject({ limit: 5, setting: 'REGISTRY_MAX_RECORDS' });
      expect(reg.store().get('one-too-many')).toBeUndefined();
      expect(reg.store().all().length).toBe(5);
      expect(existing).toBeLessThan(5);
      // Updating a record that exists is not growth.
      expect((await register({ id: 'spam-0', url: 'http://127.0.0.1:2', kind: 'host' }, { token: spammer })).status).toBe(200);
    } finally {
      reg = saved;
      await own.droplet.stop();
      await ownNats.stop({ removeStore: true });
    }
  });

  it('tokens with unknown kids do not read the key bucket on every request', async () => {
    const keyring = reg.keyring() as unknown as { kv: { get: (k: string) => Promise<unknown> } };
    const kv = keyring.kv;
    const realGet = kv.get.bind(kv);
    let reads = 0;
    kv.get = (k: string) => {
      reads++;
      return realGet(k);
    };
    try {
      const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      const forged = () =>
        jwt.sign({ droplet_id: 'x', scopes: ['read'] }, privateKey, {
          algorithm: 'RS256',
          keyid: randomUUID(),
          subject: 'x',
          issuer: 'droplet-mesh-registry',
          audience: 'droplet-mesh',
          expiresIn: 600,
        });
      for (let i = 0; i < 60; i++) expectEnvelope(await request(app()).get('/droplets').set('Authorization', `Bearer ${forged()}`), 401);
      // A reload at most once a second (KEY_RELOAD_MIN_INTERVAL_MS), not one per request.
      expect(reads).toBeLessThanOrEqual(10);
      // A real token still verifies.
      expect(
        (
          await request(app())
            .get('/droplets')
            .set('Authorization', `Bearer ${await tokenFor('operator')}`)
        ).status,
      ).toBe(200);
    } finally {
      kv.get = realGet;
    }
  });
});

describe('finding 9: revocation', () => {
  const secondDroplet = async () => {
    const schema = z.object({ ...baseConfigShape, PORT: baseConfigShape.PORT.default(0) });
    const d = createDroplet({
      name: 'second',
      version: '0.0.1',
      capabilities: [],
      configSchema: schema,
      env: { NATS_URL: nats.url, REGISTRY_URL: reg.url, PORT: '0' },
      logDestination: quiet(),
      routes(api) {
        api.get('/whoami', { summary: 'who' }, ({ principal }) => ({ droplet_id: principal?.droplet_id }));
      },
    });
    await d.start({ host: '127.0.0.1' });
    return d;
  };
  const answers = async (d: { app: Parameters<typeof request>[0] }, token: string) =>
    (await request(d.app).get('/whoami').set('Authorization', `Bearer ${token}`)).status;

  it('tokens carry a jti; only an admin may revoke; bad input is a 400', async () => {
    const t = await tokenFor('rev-input');
    const claims = jwt.decode(t) as jwt.JwtPayload;
    expect(claims.jti).toMatch(/^[0-9a-f-]{36}$/);
    expectEnvelope(
      await request(app()).post('/auth/revoke').set('Authorization', `Bearer ${t}`).send({ jti: claims.jti }),
      403,
      'FORBIDDEN',
    );
    expectEnvelope(await request(app()).post('/auth/revoke').send({ jti: claims.jti }), 401, 'UNAUTHORIZED');
    const admin = await tokenFor('operator');
    for (const body of [
      {},
      { jti: 'has spaces' },
      { droplet_id: 'Bad!' },
      { jti: claims.jti, droplet_id: 'rev-input' },
      { token: 'not-a-jwt' },
    ])
      expectEnvelope(await request(app()).post('/auth/revoke').set('Authorization', `Bearer ${admin}`).send(body), 400, 'INVALID_REQUEST');
    // Still valid: nothing was revoked.
    expect((await request(app()).get('/droplets').set('Authorization', `Bearer ${t}`)).status).toBe(200);
  });

  it('revoking a token id: a second droplet and the registry answer 401 within 2 s (cached tokens included)', async () => {
    const d = await secondDroplet();
    try {
      const victim = await tokenFor('rev-jti');
      const bystander = await tokenFor('rev-jti');
      // Used once, so both sit in the verified-token caches.
      expect(await answers(d, victim)).toBe(200);
      expect((await request(app()).get('/droplets').set('Authorization', `Bearer ${victim}`)).status).toBe(200);
      const res = await request(app())
        .post('/auth/revoke')
        .set('X-Registry-Key', ADMIN_KEY)
        .send({ jti: (jwt.decode(victim) as jwt.JwtPayload).jti });
      expect(res.status).toBe(200);
      expect(res.body.revoked).toMatchObject({ kind: 'token' });
      const at = Date.now();
      await waitFor('the second droplet to refuse the revoked token', async () => (await answers(d, victim)) === 401, 2000, 25);
      expect(Date.now() - at).toBeLessThan(2000);
      expectEnvelope(await request(d.app).get('/whoami').set('Authorization', `Bearer ${victim}`), 401, 'UNAUTHORIZED');
      expectEnvelope(await request(app()).get('/droplets').set('Authorization', `Bearer ${victim}`), 401, 'UNAUTHORIZED');
      expect(await answers(d, bystander)).toBe(200);
      // The full token is accepted too.
      expect((await request(app()).post('/auth/revoke').set('X-Registry-Key', ADMIN_KEY).send({ token: bystander })).status).toBe(200);
      await waitFor('the second token refused', async () => (await answers(d, bystander)) === 401, 2000, 25);
    } finally {
      await d.stop({ deregister: false });
    }
  });

  it('revoking a droplet: every token issued to it before now is refused within 2 s; later ones work', async () => {
    const d = await secondDroplet();
    try {
      const a = await tokenFor('rev-all');
      const b = await tokenFor('rev-all', { scopes: 'read' });
      const other = await tokenFor('rev-other');
      for (const t of [a, b, other]) expect(await answers(d, t)).toBe(200);
      const admin = await tokenFor('operator');
      const res = await request(app()).post('/auth/revoke').set('Authorization', `Bearer ${admin}`).send({ droplet_id: 'rev-all' });
      expect(res.status).toBe(200);
      expect(res.body.revoked).toMatchObject({ kind: 'droplet', droplet_id: 'rev-all' });
      await waitFor(
        'the second droplet to refuse both tokens',
        async () => (await answers(d, a)) === 401 && (await answers(d, b)) === 401,
        2000,
        25,
      );
      expectEnvelope(await request(app()).post('/auth/revoke').set('Authorization', `Bearer ${a}`).send({ droplet_id: 'x' }), 401);
      expect(await answers(d, other)).toBe(200);
      // Tokens issued in the second of the revocation are revoked too; later ones work.
      await new Promise((r) => setTimeout(r, 1100));
      const fresh = await tokenFor('rev-all');
      expect(await answers(d, fresh)).toBe(200);
    } finally {
      await d.stop({ deregister: false });
    }
  });

  it('a droplet started after a revocation refuses the token from its first request', async () => {
    const t = await tokenFor('rev-late');
    expect((await request(app()).post('/auth/revoke').set('X-Registry-Key', ADMIN_KEY).send({ droplet_id: 'rev-late' })).status).toBe(200);
    const d = await secondDroplet();
    try {
      expect(await answers(d, t)).toBe(401);
    } finally {
      await d.stop({ deregister: false });
    }
  });

  it('revocations live in a bucket that expires them after the longest token lifetime', async () => {
    const bus = await Bus.connect({ url: nats.url, name: 'inspect' });
    try {
      const jsm = await bus.jetstreamManager();
      const info = await jsm.streams.info('KV_registry-revocations');
      const ttlS = 3600; // TOKEN_TTL_S default
      expect(info.config.max_age / 1e9).toBeGreaterThanOrEqual(ttlS);
      expect(info.config.max_age / 1e9).toBeLessThanOrEqual(ttlS + 120);
    } finally {
      await bus.close();
    }
    // A registry with a longer token lifetime lengthens the bucket's.
    const own = await startRegistry(nats.url, { TOKEN_TTL_S: '7200' });
    const bus2 = await Bus.connect({ url: nats.url, name: 'inspect' });
    try {
      const info = await (await bus2.jetstreamManager()).streams.info('KV_registry-revocations');
      expect(info.config.max_age / 1e9).toBeGreaterThanOrEqual(7200);
    } finally {
      await bus2.close();
      await own.droplet.stop();
    }
  });
});
