// Constant-time comparison cannot be observed reliably through timing on a shared
// 2-core machine, so this file checks the mechanism instead: the API_TOKEN check goes
// through crypto.timingSafeEqual on equal-length digests, whatever the candidate's length.
import * as realCrypto from 'node:crypto';
import { describe, expect, it, jest } from '@jest/globals';

const calls: Array<[number, number]> = [];
jest.unstable_mockModule('node:crypto', () => {
  const real = realCrypto;
  return {
    ...real,
    default: real,
    timingSafeEqual: (a: NodeJS.ArrayBufferView, b: NodeJS.ArrayBufferView) => {
      calls.push([a.byteLength, b.byteLength]);
      return real.timingSafeEqual(a, b);
    },
  };
});
const { createTokenVerifier } = await import('../src/auth.js');

const API_TOKEN = 'simple-token-0123456789abcdef';

describe('API_TOKEN comparison', () => {
  it('uses timingSafeEqual on fixed-length digests for every candidate', async () => {
    const v = createTokenVerifier({
      issuer: 'i',
      audience: 'a',
      allowSimpleToken: true,
      apiToken: API_TOKEN,
      keyResolver: async () => 'unused',
    });
    await expect(v.verify(API_TOKEN)).resolves.toMatchObject({ via: 'api_token' });
    for (const candidate of ['x', `${API_TOKEN}-and-more`, API_TOKEN.slice(0, 10)]) await expect(v.verify(candidate)).rejects.toThrow();
    expect(calls).toHaveLength(4);
    for (const [a, b] of calls) {
      expect(a).toBe(32);
      expect(b).toBe(32);
    }
  });

  it('never compares when ALLOW_SIMPLE_TOKEN is off', async () => {
    calls.length = 0;
    const v = createTokenVerifier({
      issuer: 'i',
      audience: 'a',
      allowSimpleToken: false,
      apiToken: API_TOKEN,
      keyResolver: async () => 'unused',
    });
    await expect(v.verify(API_TOKEN)).rejects.toThrow();
    expect(calls).toHaveLength(0);
  });
});
