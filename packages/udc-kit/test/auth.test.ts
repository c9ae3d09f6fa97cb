import { afterAll, beforeAll, describe, expect, it, test } from '@jest/globals';
import request from 'supertest';
import { assertScope, bearerToken, createTokenVerifier, hasScope, type Principal, type Scope } from '../src/auth.js';
import { Forbidden, Unauthorized } from '../src/errors.js';
import { expectEnvelope, startTestAuthority, type TestAuthority } from '../src/testing/index.js';
import { createTestDroplet } from './helpers.js';

const principal = (scopes: Scope[]): Principal => ({ sub: 's', droplet_id: 's', scopes, via: 'jwt' });
const API_TOKEN = 'simple-token-0123456789abcdef';

describe('scope rules', () => {
  test.each<[Scope[], Scope, boolean]>([
    [['read'], 'read', true],
    [['read'], 'write', false],
    [['read'], 'admin', false],
    [['write'], 'read', true],
    [['write'], 'write', true],
    [['write'], 'admin', false],
    [['admin'], 'read', true],
    [['admin'], 'write', true],
    [['admin'], 'admin', true],
    [[], 'read', false],
  ])('scopes %j satisfy %s: %p', (have, need, ok) => {
    expect(hasScope(principal(have), need)).toBe(ok);
    if (ok) expect(assertScope(principal(have), need)).toEqual(principal(have));
    else expect(() => assertScope(principal(have), need)).toThrow(Forbidden);
  });

  it('no principal is 401, not 403', () => {
    expect(() => assertScope(undefined, 'read')).toThrow(Unauthorized);
  });

  it('Forbidden names the scope needed and the scopes granted', () => {
    try {
      assertScope(principal(['read']), 'admin');
      throw new Error('unreachable');
    } catch (err) {
      expect((err as Forbidden).details).toEqual({ required_scope: 'admin', granted: ['read'] });
    }
  });
});

describe('bearerToken', () => {
  test.each([
    ['Bearer abc.def.ghi', 'abc.def.ghi'],
    ['bearer abc', 'abc'],
    ['  Bearer   abc  ', 'abc'],
    ['Basic abc', undefined],
    ['Bearer', undefined],
    ['Bearer a b', undefined],
    ['Bearer  abc', 'abc'],
    ['Bearer abc\t', 'abc'],
    ['Bearer a\tb', undefined],
    ['Bearer \u00a0abc', 'abc'],
    ['Bearer abc\u00a0x', undefined],
    ['Bearer ', undefined],
    ['', undefined],
    [undefined, undefined],
  ])('%p → %p', (h, want) => expect(bearerToken(h)).toBe(want));
});

describe('token verifier', () => {
  let authority: TestAuthority;
  beforeAll(async () => {
    authority = await startTestAuthority();
  });
  afterAll(() => authority.close());

  const verifierFor = (o: { allowSimpleToken?: boolean; apiToken?: string } = {}) =>
    createTokenVerifier({ issuer: authority.issuer, audience: authority.audience, jwksUri: authority.jwksUrl, ...o });

  it('accepts a valid RS256 token and returns its principal, dropping unknown scopes', async () => {
    const token = authority.mint({ sub: 'deployer', scopes: ['read', 'write'], extra: { scopes: ['read', 'write', 'root'] } });
    const p = await verifierFor().verify(token);
    expect(p).toMatchObject({ sub: 'deployer', droplet_id: 'deployer', scopes: ['read', 'write'], via: 'jwt' });
    expect(typeof p.exp).toBe('number');
  });

  it('accepts API_TOKEN only when ALLOW_SIMPLE_TOKEN is set', async () => {
    const on = await verifierFor({ allowSimpleToken: true, apiToken: API_TOKEN }).verify(API_TOKEN);
    expect(on).toMatchObject({ via: 'api_token', scopes: ['read', 'write', 'admin'] });
    await expect(verifierFor({ allowSimpleToken: false, apiToken: API_TOKEN }).verify(API_TOKEN)).rejects.toThrow(Unauthorized);
  });

  it('answers from its cache only the very token it verified, not one that merely ends the same', async () => {
    const v = verifierFor();
    const token = authority.mint({ sub: 'cached', scopes: ['read'] });
    expect(v.verifyCached?.(token)).toBeUndefined();
    await v.verify(token);
    expect(v.verifyCached?.(token)).toMatchObject({ sub: 'cached' });
    // Another payload, the same signature: the same last characters, not the same token.
    const [header, payload, signature] = token.split('.');
    const forged = [
      header,
      Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(payload, 'base64url').toString()), scopes: ['admin'] })).toString('base64url'),
      signature,
    ].join('.');
    expect(forged.slice(-32)).toBe(token.slice(-32));
    expect(v.verifyCached?.(forged)).toBeUndefined();
    await expect(v.verify(forged)).rejects.toThrow(Unauthorized);
    // The real one is still cached; a copy of it (another string) is found too.
    expect(v.verifyCached?.(`${token} `.trim())).toMatchObject({ sub: 'cached', scopes: ['read'] });
  });

  it('a cached token is refused once past its expiry', async () => {
    const v = verifierFor();
    const token = authority.mint({ scopes: ['read'], expiresInSeconds: 1 });
    await v.verify(token);
    expect(v.verifyCached?.(token)).toBeDefined();
    const exp = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString()).exp as number;
    await new Promise((r) => setTimeout(r, Math.max(0, exp * 1000 - Date.now()) + 20));
    expect(v.verifyCached?.(token)).toBeUndefined();
    await expect(v.verify(token)).rejects.toThrow(/expired/);
  });

  test.each([
    ['a wrong token of the same length', API_TOKEN.replace(/f$/, 'e')],
    ['a prefix', API_TOKEN.slice(0, -1)],
    ['a longer token', `${API_TOKEN}x`],
    ['an empty token', ''],
  ])('refuses %s even with ALLOW_SIMPLE_TOKEN', async (_what, token) => {
    await expect(verifierFor({ allowSimpleToken: true, apiToken: API_TOKEN }).verify(token)).rejects.toThrow(Unauthorized);
  });
});

describe('API_TOKEN through a droplet', () => {
  let authority: TestAuthority;
  beforeAll(async () => {
    authority = await startTestAuthority();
  });
  afterAll(() => authority.close());

  it('is refused without ALLOW_SIMPLE_TOKEN, accepted with it, and compared exactly', async () => {
    const off = createTestDroplet({ env: { ...authority.env(), API_TOKEN } });
    expectEnvelope(await request(off.app).get('/state').set('Authorization', `Bearer ${API_TOKEN}`), 401, 'UNAUTHORIZED');
    const on = createTestDroplet({ env: { ...authority.env(), API_TOKEN, ALLOW_SIMPLE_TOKEN: 'true' } });
    const ok = await request(on.app).get('/state').set('Authorization', `Bearer ${API_TOKEN}`);
    expect(ok.status).toBe(200);
    expectEnvelope(await request(on.app).get('/state').set('Authorization', `Bearer ${API_TOKEN.toUpperCase()}`), 401, 'UNAUTHORIZED');
    await Promise.all([off.stop(), on.stop()]);
  });
});
