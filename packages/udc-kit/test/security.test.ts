// Forged, stale and mis-addressed tokens against a droplet that trusts a test authority.
import { createHmac, generateKeyPairSync, randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it, test } from '@jest/globals';
import jwt from 'jsonwebtoken';
import request from 'supertest';
import { expectEnvelope, freePort, startTestAuthority, type TestAuthority } from '../src/testing/index.js';
import { createTestDroplet, type TestDroplet } from './helpers.js';

let authority: TestAuthority;
let droplet: TestDroplet;

const b64url = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
const now = () => Math.floor(Date.now() / 1000);
const claims = (extra: Record<string, unknown> = {}) => ({
  sub: 'mallory',
  droplet_id: 'mallory',
  scopes: ['read', 'write', 'admin'],
  iss: authority.issuer,
  aud: authority.audience,
  iat: now(),
  exp: now() + 3600,
  ...extra,
});
const otherKey = () => generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();

/** Each forged token, what the refusal must say, and how to make it (lazily: they need the authority). */
const badTokens: Array<[string, RegExp, () => string]> = [
  ['alg:none, no signature', /algorithm/, () => `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url(claims())}.`],
  ['alg:none with the real kid', /algorithm/, () => `${b64url({ alg: 'none', typ: 'JWT', kid: authority.kid })}.${b64url(claims())}.`],
  [
    'HS256 signed with the RSA public key as the secret',
    /algorithm/,
    () => {
      const head = `${b64url({ alg: 'HS256', typ: 'JWT', kid: authority.kid })}.${b64url(claims())}`;
      return `${head}.${createHmac('sha256', authority.publicKeyPem).update(head).digest('base64url')}`;
    },
  ],
  [
    'RS512 signed with the real key (algorithm not pinned)',
    /algorithm/,
    () => jwt.sign(claims(), authority.privateKeyPem, { algorithm: 'RS512', keyid: authority.kid }),
  ],
  ['expired', /expired/, () => authority.mint({ expiresInSeconds: -60 })],
  [
    'not valid yet (nbf in the future)',
    /not active/,
    () => jwt.sign(claims({ nbf: now() + 600 }), authority.privateKeyPem, { algorithm: 'RS256', keyid: authority.kid }),
  ],
  ['wrong iss', /issuer/, () => authority.mint({ issuer: 'evil-registry' })],
  ['wrong aud', /audience/, () => authority.mint({ audience: 'another-mesh' })],
  ['unknown kid, signed by another key', /unknown key/, () => authority.mint({ kid: randomUUID(), privateKeyPem: otherKey() })],
  ['the real kid, signed by another key', /signature/, () => authority.mint({ privateKeyPem: otherKey() })],
  ['no kid at all', /kid/, () => jwt.sign(claims(), authority.privateKeyPem, { algorithm: 'RS256' })],
  [
    'tampered payload (read token upgraded to admin)',
    /signature/,
    () => {
      const [h, , s] = authority.mint({ scopes: ['read'] }).split('.');
      return `${h}.${b64url(claims({ scopes: ['admin'] }))}.${s}`;
    },
  ],
  [
    'tampered header (kid swapped)',
    /unknown key/,
    () => {
      const [, p, s] = authority.mint().split('.');
      return `${b64url({ alg: 'RS256', typ: 'JWT', kid: randomUUID() })}.${p}.${s}`;
    },
  ],
  ['truncated signature', /signature/, () => authority.mint().slice(0, -10)],
  ['not a JWT', /malformed/, () => 'not.a.jwt'],
  ['random base64', /algorithm/, () => `${b64url({ a: 1 })}.${b64url({ b: 2 })}.${b64url({ c: 3 })}`],
  [
    'a token with no subject',
    /subject/,
    () =>
      jwt.sign({ scopes: ['admin'] }, authority.privateKeyPem, {
        algorithm: 'RS256',
        keyid: authority.kid,
        issuer: authority.issuer,
        audience: authority.audience,
        expiresIn: 60,
      }),
  ],
];

beforeAll(async () => {
  authority = await startTestAuthority();
  droplet = createTestDroplet({ env: { ...authority.env() } });
});
afterAll(async () => {
  await droplet.stop();
  await authority.close();
});

describe('refused with 401', () => {
  test.each(badTokens)('%s', async (_why, reason, make) => {
    const token = make();
    for (const [method, path] of [
      ['get', '/state'],
      ['post', '/reload-config'],
      ['post', '/echo'],
    ] as const) {
      const res = await request(droplet.app)[method](path).set('Authorization', `Bearer ${token}`).send({ text: 'x' });
      expectEnvelope(res, 401, 'UNAUTHORIZED');
      expect(res.headers['www-authenticate']).toBe('Bearer');
      expect(res.body.error.message).toMatch(reason);
    }
  });

  test.each([
    ['no Authorization header', undefined],
    ['an empty bearer', 'Bearer '],
    ['Basic auth', 'Basic dXNlcjpwYXNz'],
    ['a token without the Bearer scheme', 'TOKEN'],
  ])('%s', async (_why, header) => {
    const req = request(droplet.app).get('/state');
    if (header !== undefined) req.set('Authorization', header);
    expectEnvelope(await req, 401, 'UNAUTHORIZED');
  });

  it('a valid token passes, so the refusals above are about the token', async () => {
    const res = await request(droplet.app)
      .get('/state')
      .set('Authorization', `Bearer ${authority.mint({ scopes: ['read'] })}`);
    expect(res.status).toBe(200);
  });
});

describe('/admin/restore reads its large body only for an admin', () => {
  // The restore body limit is far above BODY_LIMIT: nobody else may make the droplet read one.
  it('without a token: 401 before the body is parsed (malformed JSON is not even looked at)', async () => {
    const res = await request(droplet.app).post('/admin/restore').set('Content-Type', 'application/json').send('{"not json');
    expectEnvelope(res, 401, 'UNAUTHORIZED');
  });

  it('with a write token: 403 before the body is parsed', async () => {
    const res = await request(droplet.app)
      .post('/admin/restore')
      .set('Authorization', `Bearer ${authority.mint({ scopes: ['read', 'write'] })}`)
      .set('Content-Type', 'application/json')
      .send('{"not json');
    expectEnvelope(res, 403, 'FORBIDDEN');
  });
});

describe('refused with 403: a valid token missing the scope', () => {
  test.each<[string, ('read' | 'write' | 'admin')[], 'get' | 'post', string, object]>([
    ['read token on a write route', ['read'], 'post', '/echo', { text: 'x' }],
    ['read token on /send', ['read'], 'post', '/send', { target: 'x', message_type: 'query' }],
    ['read token on /reload-config', ['read'], 'post', '/reload-config', {}],
    ['write token on /reload-config', ['write'], 'post', '/reload-config', {}],
    ['write token on /shutdown', ['write'], 'post', '/shutdown', {}],
    ['write token on /emergency-stop', ['write'], 'post', '/emergency-stop', {}],
    ['write token on /admin/backup', ['write'], 'get', '/admin/backup', {}],
    ['write token on /admin/restore', ['write'], 'post', '/admin/restore', {}],
    [
      'read token sending a command over /message',
      ['read'],
      'post',
      '/message',
      { source: 'a', target: 'testdrop', message_type: 'command', payload: { action: 'echo', text: 'x' } },
    ],
    ['a token with no scopes on a read route', [], 'get', '/state', {}],
  ])('%s', async (_why, scopes, method, path, body) => {
    const res = await request(droplet.app)
      [method](path)
      .set('Authorization', `Bearer ${authority.mint({ scopes })}`)
      .send(body);
    expectEnvelope(res, 403, 'FORBIDDEN');
  });

  it('the 403 names the scope needed', async () => {
    const res = await request(droplet.app)
      .post('/reload-config')
      .set('Authorization', `Bearer ${authority.mint({ scopes: ['write'] })}`);
    expect(res.body.error.details).toEqual({ required_scope: 'admin', granted: ['write'] });
  });
});

describe('JWKS fetching', () => {
  let server: Server;
  let hits = 0;
  let keys: object[] = [];
  let jwksUrl: string;
  let second: { kid: string; privateKeyPem: string; jwk: object };

  beforeAll(async () => {
    const res = await fetch(authority.jwksUrl);
    keys = ((await res.json()) as { keys: object[] }).keys;
    const kp = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const kid = randomUUID();
    second = {
      kid,
      privateKeyPem: kp.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      jwk: { ...kp.publicKey.export({ format: 'jwk' }), kid, use: 'sig', alg: 'RS256' },
    };
    const port = await freePort();
    server = createServer((_req, res) => {
      hits++;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ keys }));
    });
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
    jwksUrl = `http://127.0.0.1:${port}/.well-known/jwks.json`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('caches keys, picks up a rotated key on an unknown kid, and rate-limits refetches', async () => {
    const d = createTestDroplet({ env: { ...authority.env(), JWKS_URL: jwksUrl } });
    try {
      const bearer = (t: string) => ({ Authorization: `Bearer ${t}` });
      for (let i = 0; i < 10; i++)
        expect(
          (
            await request(d.app)
              .get('/state')
              .set(bearer(authority.mint({ scopes: ['read'] })))
          ).status,
        ).toBe(200);
      expect(hits).toBe(1);

      // Rotation: the registry publishes a new key; the first token signed with it triggers one refetch.
      keys = [...keys, second.jwk];
      const rotated = authority.mint({ scopes: ['read'], kid: second.kid, privateKeyPem: second.privateKeyPem });
      expect((await request(d.app).get('/state').set(bearer(rotated))).status).toBe(200);
      expect(hits).toBe(2);
      expect((await request(d.app).get('/state').set(bearer(rotated))).status).toBe(200);
      expect(hits).toBe(2);

      // A flood of unknown kids must not turn into a flood of JWKS requests.
      for (let i = 0; i < 30; i++) {
        const forged = authority.mint({ kid: randomUUID(), privateKeyPem: second.privateKeyPem });
        expectEnvelope(await request(d.app).get('/state').set(bearer(forged)), 401, 'UNAUTHORIZED');
      }
      expect(hits).toBeLessThanOrEqual(2 + 10); // jwks-rsa: at most 10 requests a minute
    } finally {
      await d.stop();
    }
  });
});
