import { describe, expect, it } from '@jest/globals';
import { backoffMs, isIdempotent, rateLimitWaitMs } from '../src/providers/http/retry-policy.js';

describe('retry policy', () => {
  it('retries only idempotent methods', () => {
    expect(['GET', 'DELETE', 'PUT'].map(isIdempotent)).toEqual([true, true, true]);
    expect(isIdempotent('POST')).toBe(false);
  });
  it('backs off exponentially with full jitter, capped', () => {
    expect(backoffMs(0, 200, 5000, () => 1)).toBe(200);
    expect(backoffMs(3, 200, 5000, () => 1)).toBe(1600);
    expect(backoffMs(10, 200, 5000, () => 1)).toBe(5000);
    expect(backoffMs(3, 200, 5000, () => 0.5)).toBe(800);
    expect(backoffMs(3, 200, 5000, () => 0)).toBe(0);
  });
  it('reads retry-after as seconds or a date, and ratelimit-reset as epoch or delta', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(rateLimitWaitMs({ 'retry-after': '2' }, now)).toBe(2000);
    expect(rateLimitWaitMs({ 'retry-after': 'Thu, 01 Jan 2026 00:00:03 GMT' }, now)).toBe(3000);
    expect(rateLimitWaitMs({ 'ratelimit-reset': String(now / 1000 + 4) }, now)).toBe(4000);
    expect(rateLimitWaitMs({ 'ratelimit-reset': '5' }, now)).toBe(5000);
    expect(rateLimitWaitMs({}, now)).toBeUndefined();
  });
});
