// Issue 12, finding 9 (the verifier's part): every droplet watches the registry's
// revocation bucket and refuses a revoked token within 2 s, cached or not.
// Finding 8 (the verifier's part): unknown kids do not refetch the JWKS on every request.
import { createServer, type Server } from 'node:http';
import { createPublicKey, generateKeyPairSync, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import jwt from 'jsonwebtoken';
import request from 'supertest';
import { Kvm } from '@nats-io/kv';
import { Bus } from '../src/bus.js';
import { createTokenVerifier } from '../src/auth.js';
import { meshNatsUsers, renderNatsAuthorization } from '../src/nats-auth.js';
import { Unauthorized } from '../src/errors.js';
import {
  expectEnvelope,
  freePort,
  startNatsServer,
  startTestAuthority,
  waitFor,
  type NatsServerHandle,
  type TestAuthority,
} from '../src/testing/index.js';
import { createTestDroplet, type TestDroplet } from './helpers.js';

const BUCKET = 'registry-revocations';
let nats: NatsServerHandle;
let authority: TestAuthority;
let bus: Bus;

const hour = () => new Date(Date.now() + 3600_000).toISOString();
const revokeToken = async (jti: string) =>
  (await new Kvm(bus.nc).create(BUCKET, { history: 1, ttl: 3600_000 })).put(
    `token.${jti}`,
    JSON.stringify({ kind: 'token', jti, revoked_at: new Date().toISOString(), expires_at: hour() }),
  );
const revokeDroplet = async (id: string, issuedBefore: number) =>
  (await new Kvm(bus.nc).create(BUCKET, { history: 1, ttl: 3600_000 })).put(
    `droplet.${id}`,
    JSON.stringify({
      kind: 'droplet',
      droplet_id: id,
      issued_before: issuedBefore,
      revoked_at: new Date().toISOString(),
      expires_at: hour(),
    }),
  );

async function startDroplet(): Promise<TestDroplet> {
  const d = createTestDroplet({ env: { ...authority.env(), NATS_URL: nats.url } });
  await d.start({ port: 0, host: '127.0.0.1' });
  return d;
}
const status = async (d: TestDroplet, token: string) =>
  (await request(d.app).get('/things/abc').set('Authorization', `Bearer ${token}`)).status;

beforeAll(async () => {
  nats = await startNatsServer();
  authority = await startTestAuthority();
  bus = await Bus.connect({ url: nats.url, name: 'the-registry' });
}, 60_000);

afterAll(async () => {
  await bus?.close();
  await authority?.close();
  await nats?.stop({ removeStore: true });
});

describe('revocation in the verifier', () => {
  it('a droplet started before the bucket exists picks it up and refuses a revoked, cached token within 2 s', async () => {
    const d = await startDroplet();
    try {
      const jti = randomUUID();
      const victim = authority.mint({ sub: 'victim', extra: { jti } });
      const other = authority.mint({ sub: 'victim', extra: { jti: randomUUID() } });
      // Verified once: the token sits in the verified-token cache.
      expect(await status(d, victim)).toBe(200);
      await revokeToken(jti);
      const at = Date.now();
      await waitFor('the revoked token refused', async () => (await status(d, victim)) === 401, 2500, 25);
      expect(Date.now() - at).toBeLessThan(2500);
      const res = await request(d.app).get('/things/abc').set('Authorization', `Bearer ${victim}`);
      expectEnvelope(res, 401, 'UNAUTHORIZED');
      expect(res.body.error.message).toMatch(/revoked/);
      expect(await status(d, other)).toBe(200);
    } finally {
      await d.stop();
    }
  });

  it('revoking a droplet refuses every token issued to it up to the revocation, and no later one', async () => {
    const d = await startDroplet();
    try {
      const now = Math.floor(Date.now() / 1000);
      const old = authority.mint({ sub: 'revoked-droplet', extra: { iat: now - 100 } });
      const noIat = jwt.sign({ droplet_id: 'revoked-droplet', scopes: ['read'], exp: now + 600 }, authority.privateKeyPem, {
        algorithm: 'RS256',
        keyid: authority.kid,
        subject: 'revoked-droplet',
        issuer: authority.issuer,
        audience: authority.audience,
        noTimestamp: true,
      });
      const later = authority.mint({ sub: 'revoked-droplet', extra: { iat: now - 10 } });
      const bystander = authority.mint({ sub: 'someone-else', extra: { iat: now - 100 } });
      for (const t of [old, noIat, later, bystander]) expect(await status(d, t)).toBe(200);
      await revokeDroplet('revoked-droplet', now - 50);
      await waitFor('old tokens refused', async () => (await status(d, old)) === 401 && (await status(d, noIat)) === 401, 2000, 25);
      expect(await status(d, later)).toBe(200);
      expect(await status(d, bystander)).toBe(200);
    } finally {
      await d.stop();
    }
  });

  it('a droplet started after a revocation refuses the token at once; an expired entry no longer counts', async () => {
    const jti = randomUUID();
    await revokeToken(jti);
    const stale = randomUUID();
    const kv = await new Kvm(bus.nc).create(BUCKET, { history: 1, ttl: 3600_000 });
    await kv.put(
      `token.${stale}`,
      JSON.stringify({
        kind: 'token',
        jti: stale,
        revoked_at: new Date(Date.now() - 7200_000).toISOString(),
        expires_at: new Date(Date.now() - 1000).toISOString(),
      }),
    );
    // Garbage in the bucket is ignored, not a crash.
    await kv.put('token.garbage', 'not json');
    const d = await startDroplet();
    try {
      expect(await status(d, authority.mint({ sub: 'late', extra: { jti } }))).toBe(401);
      expect(await status(d, authority.mint({ sub: 'late', extra: { jti: stale } }))).toBe(200);
      // A deleted entry (an operator undoing a mistake) is honoured too.
      await kv.delete(`token.${jti}`);
      await waitFor(
        'the un-revoked token accepted',
        async () => (await status(d, authority.mint({ sub: 'late', extra: { jti } }))) === 200,
        2000,
        25,
      );
    } finally {
      await d.stop();
    }
  });

  it('the verifier interface is unchanged: verify(token) → principal, revoked → Unauthorized', async () => {
    const checked: string[] = [];
    const v = createTokenVerifier({
      issuer: authority.issuer,
      audience: authority.audience,
      jwksUri: authority.jwksUrl,
      revocations: {
        revokedReason: (c) => {
          checked.push(c.jti ?? '');
          return c.jti === 'bad' ? 'token revoked' : undefined;
        },
      },
    });
    const good = authority.mint({ sub: 's', extra: { jti: 'good' } });
    expect(await v.verify(good)).toMatchObject({ sub: 's', via: 'jwt' });
    expect(await v.verify(good)).toMatchObject({ sub: 's' });
    expect(checked).toEqual(['good', 'good']); // the cache hit is checked too
    await expect(v.verify(authority.mint({ sub: 's', extra: { jti: 'bad' } }))).rejects.toThrow(Unauthorized);
  });
});

describe('revocation under the mesh NATS authorization', () => {
  it('a droplet with its own NATS user watches the bucket only the registry writes, and refuses the revoked token', async () => {
    const password = (name: string) => `pw-${name}-0123456789abcdef`;
    const secured = await startNatsServer({ config: renderNatsAuthorization(meshNatsUsers(password)) });
    const registry = await Bus.connect({ url: secured.url, name: 'registry', user: 'registry', pass: password('registry') });
    const d = createTestDroplet({
      name: 'deployer',
      env: { ...authority.env(), NATS_URL: secured.url, NATS_USER: 'deployer', NATS_PASSWORD: password('deployer') },
    });
    try {
      const kv = await registry.kv(BUCKET, { history: 1, ttlMs: 3600_000 });
      await d.start({ port: 0, host: '127.0.0.1' });
      const jti = randomUUID();
      const victim = authority.mint({ sub: 'victim', extra: { jti } });
      expect(await status(d, victim)).toBe(200);
      await kv.put(`token.${jti}`, JSON.stringify({ kind: 'token', jti, revoked_at: new Date().toISOString(), expires_at: hour() }));
      await waitFor('the revoked token refused', async () => (await status(d, victim)) === 401, 2000, 25);
      // The droplet's NATS user cannot undo it.
      const mine = await new Kvm(d.ctx.bus.nc).open(BUCKET);
      await expect(mine.delete(`token.${jti}`)).rejects.toThrow();
      expect(await status(d, victim)).toBe(401);
    } finally {
      await d.stop();
      await registry.close();
      await secured.stop({ removeStore: true });
    }
  });
});

describe('unknown kids and the JWKS', () => {
  let server: Server;
  let fetches = 0;
  let url: string;
  beforeAll(async () => {
    const port = await freePort();
    server = createServer((_req, res) => {
      fetches++;
      res.setHeader('content-type', 'application/json');
      res.end(
        JSON.stringify({
          keys: [{ ...createPublicKey(authority.publicKeyPem).export({ format: 'jwk' }), kid: authority.kid, use: 'sig', alg: 'RS256' }],
        }),
      );
    });
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
    url = `http://127.0.0.1:${port}/.well-known/jwks.json`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('a flood of tokens with unknown kids refetches the JWKS a bounded number of times', async () => {
    const v = createTokenVerifier({ issuer: authority.issuer, audience: authority.audience, jwksUri: url });
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    for (let i = 0; i < 50; i++) {
      const t = jwt.sign({ scopes: ['read'] }, privateKey, {
        algorithm: 'RS256',
        keyid: randomUUID(),
        subject: 'x',
        issuer: authority.issuer,
        audience: authority.audience,
        expiresIn: 60,
      });
      await expect(v.verify(t)).rejects.toThrow(Unauthorized);
    }
    expect(fetches).toBeLessThanOrEqual(10);
    // The real key still verifies.
    expect(await v.verify(authority.mint({ sub: 'ok' }))).toMatchObject({ sub: 'ok' });
  });
});
