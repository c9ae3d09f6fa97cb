import { describe, expect, it } from '@jest/globals';
import { LogRing } from '../src/logger.js';

const line = (msg: string, level = 30, extra: Record<string, unknown> = {}) =>
  `${JSON.stringify({ level, time: Date.UTC(2026, 0, 1), pid: 1, hostname: 'h', msg, ...extra })}\n`;
const msgs = (r: LogRing, limit = 1000) => r.query(() => true, limit).map((e) => e.msg);

describe('LogRing', () => {
  it('keeps the newest `capacity` lines, oldest first, as entries', () => {
    const r = new LogRing(3);
    expect(r.size).toBe(0);
    expect(msgs(r)).toEqual([]);
    for (let i = 1; i <= 7; i++) r.push(line(`m${i}`));
    expect(r.size).toBe(3);
    expect(msgs(r)).toEqual(['m5', 'm6', 'm7']);
    expect(r.query(() => true, 1)[0]).toEqual({ level: 'info', time: '2026-01-01T00:00:00.000Z', msg: 'm7' });
  });

  it('returns the newest `limit` matches of the filter, oldest first', () => {
    const r = new LogRing(100);
    for (let i = 1; i <= 20; i++) r.push(line(`m${i}`, i % 2 ? 30 : 40));
    expect(r.query((e) => e.level === 'warn', 3).map((e) => e.msg)).toEqual(['m16', 'm18', 'm20']);
    expect(r.query(() => false, 5)).toEqual([]);
    expect(r.query(() => true, 0)).toEqual([]);
  });

  it('keeps a line longer than a slot whole, and a short one that later takes its slot', () => {
    const r = new LogRing(2, 64);
    const long = 'x'.repeat(500);
    r.push(line(long, 50, { stack: 'at y\n'.repeat(40) }));
    r.push(line('short'));
    expect(msgs(r)).toEqual([long, 'short']);
    expect(r.query(() => true, 2)[0].stack).toBe('at y\n'.repeat(40));
    r.push(line('takes the long line’s slot'));
    expect(msgs(r)).toEqual(['short', 'takes the long line’s slot']);
  });

  it('keeps multi-byte characters whole, at and across the end of a slot', () => {
    for (let pad = 0; pad < 12; pad++) {
      const r = new LogRing(2, 80);
      // The line around msg is 66 bytes and msg 9 + pad: the first line ends at 75 to 86 bytes, around the slot's 80.
      const msg = `${'a'.repeat(pad)}é😀漢`;
      r.push(line(msg));
      r.push(line(`${msg}${msg}`));
      expect(msgs(r)).toEqual([msg, `${msg}${msg}`]);
    }
  });

  it('skips a line that is not JSON', () => {
    const r = new LogRing(3);
    r.push('not json\n');
    r.push(line('ok'));
    expect(msgs(r)).toEqual(['ok']);
  });

  it('stays bounded under many pushes', () => {
    const r = new LogRing(1000);
    for (let i = 0; i < 20_000; i++) r.push(line(`m${i}`));
    expect(r.size).toBe(1000);
    const all = msgs(r);
    expect(all).toHaveLength(1000);
    expect(all[0]).toBe('m19000');
    expect(all[999]).toBe('m19999');
  });
});
