import { describe, expect, it } from '@jest/globals';
import { nextLivenessState, transitionEvent } from '../src/liveness.js';
import { hashKey, keyMatchesHash, newDropletKey, sameSecret } from '../src/credentials.js';

const rules = { staleAfterMissed: 3, downAfterMissed: 10 };

describe('nextLivenessState', () => {
  it.each([
    [0, 'active'],
    [2.9, 'active'],
    [3, 'stale'],
    [9.9, 'stale'],
    [10, 'down'],
    [500, 'down'],
  ])('after %s missed intervals it is %s', (missed, expected) => {
    expect(nextLivenessState(0, 30, missed * 30_000, rules)).toBe(expected);
  });
});

describe('transitionEvent', () => {
  it.each([
    ['active', 'stale', 'droplet.stale'],
    ['stale', 'down', 'droplet.down'],
    ['active', 'down', 'droplet.down'],
    ['down', 'active', 'droplet.recovered'],
    ['stale', 'active', 'droplet.recovered'],
    ['active', 'active', undefined],
  ] as const)('%s → %s emits %s', (from, to, ev) => {
    expect(transitionEvent(from, to)).toBe(ev);
  });
});

describe('credentials', () => {
  it('droplet keys are random and match only their own hash', () => {
    const a = newDropletKey();
    const b = newDropletKey();
    expect(a).not.toBe(b);
    expect(keyMatchesHash(a, hashKey(a))).toBe(true);
    expect(keyMatchesHash(b, hashKey(a))).toBe(false);
    expect(keyMatchesHash(undefined, hashKey(a))).toBe(false);
  });
  it('compares secrets of different lengths without throwing', () => {
    expect(sameSecret('short', 'a-much-longer-secret')).toBe(false);
    expect(sameSecret('same-secret-value', 'same-secret-value')).toBe(true);
  });
});
