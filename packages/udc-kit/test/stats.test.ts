import { afterEach, describe, expect, it } from '@jest/globals';
import { RuntimeStats } from '../src/stats.js';

describe('RuntimeStats', () => {
  const made: RuntimeStats[] = [];
  const statsAt = (clock: { t: number }) => {
    const s = new RuntimeStats(() => clock.t, 60_000);
    made.push(s);
    return s;
  };
  afterEach(() => {
    for (const s of made.splice(0)) s.stop();
  });

  it('counts requests in total and over the last minute (a sliding window)', () => {
    const clock = { t: Date.parse('2026-01-01T00:00:00Z') };
    const s = statsAt(clock);
    for (let i = 0; i < 10; i++) s.recordRequest(200);
    clock.t += 30_000;
    for (let i = 0; i < 5; i++) s.recordRequest(404);
    expect(s.requestsTotal).toBe(15);
    expect(s.requestsPerMinute()).toBe(15);
    clock.t += 31_000; // the first 10 are now more than a minute old
    expect(s.requestsPerMinute()).toBe(5);
    clock.t += 60_000;
    expect(s.requestsPerMinute()).toBe(0);
    expect(s.requestsTotal).toBe(15);
  });

  it('counts only 5xx as errors, over the last hour', () => {
    const clock = { t: Date.parse('2026-01-01T00:00:00Z') };
    const s = statsAt(clock);
    s.recordRequest(500);
    s.recordRequest(503);
    s.recordRequest(404);
    s.recordRequest(200);
    expect(s.errorsLastHour()).toBe(2);
    clock.t += 30 * 60_000;
    s.recordRequest(502);
    expect(s.errorsLastHour()).toBe(3);
    clock.t += 31 * 60_000; // the first two are older than an hour
    expect(s.errorsLastHour()).toBe(1);
  });

  it('stays bounded: old buckets are pruned under steady traffic', () => {
    const clock = { t: Date.parse('2026-01-01T00:00:00Z') };
    const s = statsAt(clock);
    for (let i = 0; i < 5000; i++) {
      clock.t += 1000;
      s.recordRequest(500);
    }
    const buckets = s as unknown as { minuteBuckets: Map<number, number>; errorBuckets: Map<number, number> };
    expect(buckets.minuteBuckets.size).toBeLessThanOrEqual(121);
    expect(buckets.errorBuckets.size).toBeLessThanOrEqual(61);
    expect(s.requestsPerMinute()).toBe(60); // one request in each of the last 60 seconds
  });

  it('samples real CPU use and memory, and reports uptime from its clock', () => {
    const clock = { t: Date.now() };
    const s = statsAt(clock);
    const until = Date.now() + 120;
    let x = 0;
    while (Date.now() < until) x += Math.sqrt(x + 1); // burn CPU so the sample sees it
    expect(x).toBeGreaterThan(0);
    s.sample();
    const snap = s.snapshot();
    expect(snap.cpu_percent).toBeGreaterThan(10);
    expect(snap.memory_mb).toBeGreaterThan(10);
    clock.t += 90_000;
    expect(s.snapshot().uptime_seconds).toBe(90);
    expect(snap.last_restart).toBe(s.startedAt.toISOString());
    expect(Object.keys(snap).sort()).toEqual([
      'cpu_percent',
      'errors_last_hour',
      'last_restart',
      'memory_mb',
      'requests_per_minute',
      'requests_total',
      'uptime_seconds',
    ]);
  });
});
