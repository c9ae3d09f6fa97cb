// KvLease against a real nats-server: one holder at a time, takeover only after the record
// stood still for its ttl as seen by the contender's own monotonic clock, and no wall clock
// (however skewed) decides anything.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { KV } from '@nats-io/kv';
import { Bus } from '../src/bus.js';
import { KvLease, RevisionAges } from '../src/lease.js';
import { startNatsServer, type NatsServerHandle } from '../src/testing/index.js';

const HOUR = 3600_000;
let nats: NatsServerHandle;
let bus: Bus;
let kv: KV;

beforeAll(async () => {
  nats = await startNatsServer();
  bus = await Bus.connect({ url: nats.url, name: 'lease-test' });
  kv = await bus.kv('lease-test', { history: 1 });
}, 30_000);

afterAll(async () => {
  await bus?.close();
  await nats?.stop({ removeStore: true });
});

/** A process: its own monotonic clock (advanced by the test) and its own wall clock offset. */
function process_(holder: string, wallOffsetMs = 0, ttlMs = 1000) {
  let t = 0;
  const lease = new KvLease(kv, { holder, ttlMs, monotonic: () => t, wallClock: () => Date.now() + wallOffsetMs });
  return { lease, advance: (ms: number) => (t += ms) };
}

let n = 0;
const fresh = () => `job-${++n}`;

describe('RevisionAges', () => {
  it('measures from the first sighting of a revision and restarts on a new one', () => {
    let t = 100;
    const ages = new RevisionAges(() => t);
    expect(ages.observe('k', 5)).toBe(0);
    t += 700;
    expect(ages.observe('k', 5)).toBe(700);
    expect(ages.observe('k', 6)).toBe(0);
    t += 50;
    expect(ages.observe('k', 6)).toBe(50);
  });
});

describe('KvLease (real JetStream KV)', () => {
  it('lets exactly one of many contenders take a free lease', async () => {
    const name = fresh();
    const contenders = ['a', 'b', 'c', 'd'].map((h) => process_(h).lease);
    const won = await Promise.all(contenders.map((l) => l.acquire(name)));
    expect(won.filter(Boolean)).toHaveLength(1);
    const winner = contenders[won.indexOf(true)];
    expect(winner.holds(name)).toBe(true);
    expect(await contenders.find((l) => l !== winner)?.holderOf(name)).toBe(winner.holder);
  });

  it('hands over only after the record stood still for its ttl, and the old holder lets go first', async () => {
    const name = fresh();
    const a = process_('a');
    const b = process_('b');
    expect(await a.lease.acquire(name)).toBe(true);
    expect(await b.lease.acquire(name)).toBe(false); // b sees revision R now (its t=0)
    a.advance(600);
    b.advance(600);
    expect(await a.lease.renew(name)).toBe(true); // a new revision: b's wait starts over
    expect(await b.lease.acquire(name)).toBe(false);
    a.advance(999);
    b.advance(999);
    expect(a.lease.holds(name)).toBe(true);
    expect(await b.lease.acquire(name)).toBe(false); // b: 999 ms since it saw the renewal
    a.advance(1);
    b.advance(1);
    expect(a.lease.holds(name)).toBe(false); // a's deadline: ttl after it *sent* the renewal, never later than b's
    expect(await b.lease.acquire(name)).toBe(true);
    expect(await a.lease.renew(name)).toBe(false);
  });

  it('a contender whose wall clock is an hour ahead does not steal a live lease', async () => {
    const name = fresh();
    const holder = process_('holder');
    const ahead = process_('ahead', +HOUR);
    expect(await holder.lease.acquire(name)).toBe(true);
    for (let i = 0; i < 5; i++) {
      expect(await ahead.lease.acquire(name)).toBe(false);
      holder.advance(400);
      ahead.advance(400);
      expect(await holder.lease.renew(name)).toBe(true);
    }
    expect(await ahead.lease.holderOf(name)).toBe('holder');
  });

  it('a dead holder whose wall clock was an hour ahead or behind loses the lease after one ttl', async () => {
    for (const offset of [+HOUR, -HOUR]) {
      const name = fresh();
      const skewed = process_('skewed', offset);
      const other = process_('other');
      expect(await skewed.lease.acquire(name)).toBe(true);
      // `skewed` dies: no more renewals.
      expect(await other.lease.acquire(name)).toBe(false);
      other.advance(999);
      expect(await other.lease.acquire(name)).toBe(false);
      other.advance(1);
      expect(await other.lease.acquire(name)).toBe(true);
    }
  });

  it('a record in the old format (an expiry timestamp an hour ahead) holds for one ttl, not an hour', async () => {
    const name = fresh();
    const legacy = { holder: 'old-monitor', expires_at: Date.now() + HOUR, acquired_at: Date.now() };
    await kv.put(name, JSON.stringify(legacy));
    const b = process_('b');
    expect(await b.lease.acquire(name)).toBe(false);
    b.advance(1000);
    expect(await b.lease.acquire(name)).toBe(true);
  });

  it('a holder whose wall clock is an hour behind keeps its lease while it renews', async () => {
    const name = fresh();
    const behind = process_('behind', -HOUR);
    const other = process_('other');
    expect(await behind.lease.acquire(name)).toBe(true);
    for (let i = 0; i < 5; i++) {
      behind.advance(300);
      other.advance(300);
      expect(await behind.lease.acquire(name)).toBe(true); // acquire while held renews
      expect(await other.lease.acquire(name)).toBe(false);
    }
    expect(behind.lease.holds(name)).toBe(true);
  });

  it('release frees it at once; a stale release does not delete a newer holder', async () => {
    const name = fresh();
    const a = process_('a');
    const b = process_('b');
    expect(await a.lease.acquire(name)).toBe(true);
    await a.lease.release(name);
    expect(await b.lease.acquire(name)).toBe(true);
    await a.lease.release(name); // not held: a no-op
    expect(await a.lease.holderOf(name)).toBe('b');
  });

  it('a restarted holder (same id) takes its own record back at once', async () => {
    const name = fresh();
    expect(await process_('m1').lease.acquire(name)).toBe(true);
    const restarted = process_('m1');
    expect(await restarted.lease.acquire(name)).toBe(true);
  });
});
