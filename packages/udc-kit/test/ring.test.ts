import { describe, expect, it } from '@jest/globals';
import { Ring } from '../src/ring.js';

describe('Ring', () => {
  it('keeps only the newest `capacity` items, oldest first', () => {
    const r = new Ring<number>(3);
    for (let i = 1; i <= 5; i++) r.push(i);
    expect(r.size).toBe(3);
    expect(r.query(() => true, 10)).toEqual([3, 4, 5]);
  });

  it('query returns the newest matches up to limit, still oldest first', () => {
    const r = new Ring<number>(100);
    for (let i = 1; i <= 20; i++) r.push(i);
    expect(r.query((n) => n % 2 === 0, 3)).toEqual([16, 18, 20]);
    expect(r.query((n) => n > 100, 5)).toEqual([]);
    expect(r.query(() => true, 0)).toEqual([]);
  });

  it('stays bounded under many pushes', () => {
    const r = new Ring<{ i: number }>(1000);
    for (let i = 0; i < 50_000; i++) r.push({ i });
    expect(r.size).toBe(1000);
    expect(r.query(() => true, 1)[0].i).toBe(49_999);
    expect(r.query(() => true, 1000)[0].i).toBe(49_000);
  });
});
