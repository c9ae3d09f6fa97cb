import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { Bus, createLogger } from '@droplet-mesh/udc-kit';
import { startNatsServer, waitFor, type NatsServerHandle } from '@droplet-mesh/udc-kit/testing';
import { ServiceLanes } from '../src/deploy/service-lanes.js';
import { LaneStore } from '../src/store/lane-store.js';
import { quiet } from './helpers.js';

// Two "replicas": separate NATS connections and owner ids on one real nats-server.
let nats: NatsServerHandle;
const buses: Bus[] = [];
let a: ServiceLanes;
let b: ServiceLanes;
let storeA: LaneStore;
const { logger } = createLogger('lanes-test', 'silent', { destination: quiet() });

async function replica(ttlMs: number): Promise<{ lanes: ServiceLanes; store: LaneStore }> {
  const bus = await Bus.connect({ url: nats.url, name: 'lanes-test' });
  buses.push(bus);
  const store = new LaneStore(await bus.kv('lanes-test', { history: 3 }));
  return { store, lanes: new ServiceLanes({ store, ownerId: randomUUID(), ttlMs, logger }) };
}

beforeAll(async () => {
  nats = await startNatsServer();
  ({ lanes: a, store: storeA } = await replica(2_000));
  ({ lanes: b } = await replica(2_000));
}, 30_000);

afterAll(async () => {
  for (const bus of buses) await bus.close();
  await nats?.stop({ removeStore: true });
});

const never = new AbortController().signal;
const noCheck = async () => undefined;

describe('service lanes in JetStream KV', () => {
  it('orders deploys from two replicas in one queue both see, and hands the lease over in order', async () => {
    const t = 'app-lanes-web-prod';
    const first = await a.enqueue(t, 'd1');
    const second = await b.enqueue(t, 'd2');
    const third = await a.enqueue(t, 'd3');
    expect([first.position, second.position, third.position]).toEqual([0, 1, 2]);
    expect(await a.position(t, 'd2')).toBe(1);
    expect(await b.position(t, 'd3')).toBe(2);
    expect((await b.enqueue('app-lanes-other-prod', 'x1')).position).toBe(0);

    const order: string[] = [];
    const turn1 = await a.waitTurn(t, 'd1', never, noCheck);
    order.push('d1');
    const waiting2 = b.waitTurn(t, 'd2', never, noCheck).then((turn) => (order.push('d2'), turn));
    const waiting3 = a.waitTurn(t, 'd3', never, noCheck).then((turn) => (order.push('d3'), turn));
    await new Promise((r) => setTimeout(r, 300));
    expect(order).toEqual(['d1']);
    expect((await a.lease(t))?.value.deployment_id).toBe('d1');

    await a.leave(t, 'd1');
    await turn1.release();
    const turn2 = await waiting2;
    expect(order).toEqual(['d1', 'd2']);
    expect(await a.position(t, 'd3')).toBe(1);
    await b.leave(t, 'd2');
    await turn2.release();
    const turn3 = await waiting3;
    expect(order).toEqual(['d1', 'd2', 'd3']);
    await a.leave(t, 'd3');
    await turn3.release();
    expect(await a.lease(t)).toBeUndefined();
    expect(await a.queue(t)).toEqual([]);
  }, 20_000);

  it('the lease is create-if-absent: a second holder is refused while it is held', async () => {
    const t = 'app-lanes-lock-prod';
    const held = await a.hold(t, 'd1');
    expect(held).toBeDefined();
    expect(await b.hold(t, 'd2')).toBeUndefined();
    await held!.release();
    const next = await b.hold(t, 'd2');
    expect(next).toBeDefined();
    await next!.release();
  });

  it('a held lease is renewed (revision-checked) and outlives its TTL', async () => {
    const t = 'app-lanes-renew-prod';
    const turn = await a.hold(t, 'd1');
    const firstExpiry = (await a.lease(t))!.value.expires_at;
    await new Promise((r) => setTimeout(r, 2_500));
    const now = (await b.lease(t))!;
    expect(Date.parse(now.value.expires_at)).toBeGreaterThan(Date.parse(firstExpiry));
    expect(await b.isStale(now, async () => true)).toBe(false);
    expect(turn!.lost.aborted).toBe(false);
    await turn!.release();
  }, 10_000);

  it('a stale lease (owner gone) is taken over by revision; the old holder learns it lost it', async () => {
    const t = 'app-lanes-takeover-prod';
    const old = (await a.hold(t, 'd1'))!;
    // Its owner does not answer: stale even before it expires. (Retried like the recovery
    // sweep would: the holder may renew between our read and our update.)
    let seen = (await b.lease(t))!;
    expect(await b.isStale(seen, async () => false)).toBe(true);
    let taken = await b.hold(t, 'd1', seen);
    for (let i = 0; i < 3 && !taken; i++) taken = await b.hold(t, 'd1', (seen = (await b.lease(t))!));
    expect(taken).toBeDefined();
    // A second taker with the same (now old) revision loses.
    expect(await a.hold(t, 'd1', seen)).toBeUndefined();
    await waitFor('the old holder to notice', () => old.lost.aborted, 5_000, 50);
    expect(String(old.lost.reason)).toMatch(/another deployer took it over/);
    await old.release(); // a lost lease is not released: the new holder keeps it
    expect((await a.lease(t))?.revision).toBeGreaterThanOrEqual(seen.revision + 1);
    await taken!.release();
    expect(await a.lease(t)).toBeUndefined();
  }, 10_000);

  it('a lease is judged by its revision standing still for the TTL as seen here, never by the expires_at another clock wrote', async () => {
    const { lanes: c } = await replica(300);
    for (const [offset, name] of [
      [-3600_000, 'behind'],
      [+3600_000, 'ahead'],
    ] as const) {
      const t = `app-lanes-skew-${name}-prod`;
      // Written by a replica whose clock is an hour off: its expires_at says "long expired" or "an hour left".
      const skewed = Date.now() + offset;
      const held = await storeA.acquire(t, {
        deployment_id: 'd1',
        owner: 'someone-else',
        acquired_at: new Date(skewed).toISOString(),
        expires_at: new Date(skewed + 300).toISOString(),
      });
      // Its owner answers: not stale until the revision has stood still for the TTL here.
      expect(await c.isStale(held!, async () => true)).toBe(false);
      await new Promise((r) => setTimeout(r, 150));
      expect(await c.isStale(held!, async () => true)).toBe(false);
      await new Promise((r) => setTimeout(r, 200));
      expect(await c.isStale(held!, async () => true)).toBe(true);
      await storeA.release(held!);
    }
  });

  it('a waiter stops waiting when its deployer stops, and when its entry is taken out', async () => {
    const t = 'app-lanes-stop-prod';
    await a.enqueue(t, 'busy');
    const busy = await a.waitTurn(t, 'busy', never, noCheck);
    await b.enqueue(t, 'w1');
    await b.enqueue(t, 'w2');
    const stop = new AbortController();
    const w1 = b.waitTurn(t, 'w1', stop.signal, noCheck);
    const w2 = b.waitTurn(t, 'w2', never, noCheck);
    stop.abort(new Error('stopping'));
    await expect(w1).rejects.toThrow('stopping');
    await a.leave(t, 'w2');
    await expect(w2).rejects.toThrow(/no longer queued/);
    await b.leave(t, 'w1');
    await a.leave(t, 'busy');
    await busy.release();
  }, 10_000);
});
