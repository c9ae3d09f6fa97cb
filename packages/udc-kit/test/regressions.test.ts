// Bugs these tests found in udc-kit src/ (mostly property.int.test.ts), fixed in 25d7d6b,
// pinned here as deterministic regressions.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { deflateSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it, test } from '@jest/globals';
import jwt from 'jsonwebtoken';
import request from 'supertest';
import { expectEnvelope, startTestAuthority, type TestAuthority } from '../src/testing/index.js';
import { createTestDroplet, type TestDroplet } from './helpers.js';

let authority: TestAuthority;
let droplet: TestDroplet;
const bearer = () => `Bearer ${authority.mint({ scopes: ['read', 'write', 'admin'] })}`;

beforeAll(async () => {
  authority = await startTestAuthority();
  droplet = createTestDroplet({ env: { ...authority.env() } });
});
afterAll(async () => {
  await droplet.stop();
  await authority.close();
});

// BUG 1, fixed (error-middleware.ts): body-parser wraps a zlib failure as createError(400, err):
// status 400, expose true, but no `type`, so the middleware's `typeof bp.type === 'string'`
// test missed it and the client got 500 INTERNAL_ERROR for its own bad body.
describe('a compressed body that does not decompress', () => {
  test.each(['gzip', 'deflate', 'br'])('Content-Encoding: %s over plain JSON is a 400 envelope, not a 500', async (encoding) => {
    const res = await request(droplet.app)
      .post('/echo')
      .set('Authorization', bearer())
      .set('Content-Type', 'application/json')
      .set('Content-Encoding', encoding)
      .send('{"text":"hi"}');
    expectEnvelope(res, 400, 'INVALID_REQUEST');
  });

  it('a correctly compressed body still works (so the fix must not refuse compression)', async () => {
    // Over a real socket: superagent would JSON-encode a Buffer body.
    const server = createServer(droplet.app);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/echo`;
      for (const [enc, body] of [
        ['gzip', gzipSync('{"text":"hi"}')],
        ['deflate', deflateSync('{"text":"hi"}')],
      ] as const) {
        const res = await fetch(url, {
          method: 'POST',
          headers: { Authorization: bearer(), 'Content-Type': 'application/json', 'Content-Encoding': enc },
          body,
        });
        expect(res.status).toBe(200);
        expect(((await res.json()) as { echo: string }).echo).toBe('hi');
      }
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});

// BUG 2, fixed (error-middleware.ts): Express 5's router throws a URIError with status 400 for a
// path parameter that is not valid percent-encoding; the middleware only knows UdcError,
// ZodError and typed body-parser errors, so it answered 500.
describe('a path parameter that is not valid percent-encoding', () => {
  test.each(['/things/%E0%A4', '/things/%', '/things/%zz'])('GET %s is a 400 envelope, not a 500', async (path) => {
    const res = await request(droplet.app).get(path).set('Authorization', bearer());
    expectEnvelope(res, 400, 'INVALID_REQUEST');
  });
});

// BUG 3, fixed (auth.ts): jsonwebtoken does not require `exp`, so a correctly signed
// token without an expiry was accepted forever. DESIGN.md relies on every token
// expiring (old keys leave the JWKS once their tokens have expired).
describe('a token without exp', () => {
  it('is refused with 401', async () => {
    const token = jwt.sign({ droplet_id: 'forever', scopes: ['admin'] }, authority.privateKeyPem, {
      algorithm: 'RS256',
      keyid: authority.kid,
      subject: 'forever',
      issuer: authority.issuer,
      audience: authority.audience,
    });
    expectEnvelope(await request(droplet.app).get('/state').set('Authorization', `Bearer ${token}`), 401, 'UNAUTHORIZED');
  });
});
