import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Bus } from '@droplet-mesh/udc-kit';
import { startNatsServer, type NatsServerHandle } from '@droplet-mesh/udc-kit/testing';
import { createStores, type Stores } from '../src/store/stores.js';

/**
 * Issue 16, item 3: `kv.keys()` in @nats-io/kv 3.4 can wait for its idle heartbeat when a
 * key it is about to deliver is purged meanwhile. Every listing the deployer does on a
 * request path (a lane's queue, the lane targets, a collection's records) is raced here
 * against purges of matching keys on a real nats-server. A call that takes longer than
 * SLOW_MS (far below the 30 s heartbeat, far above any honest listing) is a stall.
 */
const SLOW_MS = 5_000;
const ROUNDS = 40;
const KEYS = 60;

let nats: NatsServerHandle;
const buses: Bus[] = [];
let a: Stores;
let b: Stores;

beforeAll(async () => {
  nats = await startNatsServer();
  for (const name of ['listing-a', 'listing-b']) {
    const bus = await Bus.connect({ url: nats.url, name });
    buses.push(bus);
  }
  a = createStores(await buses[0].kv('listing-race', { history: 3 }));
  b = createStores(await buses[1].kv('listing-race', { history: 3 }));
}, 30_000);

afterAll(async () => {
  for (const s of [a, b]) await (s as { close?: () => Promise<void> } | undefined)?.close?.();
  for (const bus of buses) await bus.close();
  await nats?.stop({ removeStore: true });
});

/** The call's duration, or SLOW_MS when it did not finish within it (the call is left behind). */
async function timed(call: () => Promise<unknown>): Promise<number> {
  const started = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const settled = call().then(
    () => Date.now() - started,
    () => Date.now() - started,
  );
  const slow = new Promise<number>((resolve) => {
    timer = setTimeout(() => resolve(SLOW_MS), SLOW_MS);
  });
  try {
    return await Promise.race([settled, slow]);
  } finally {
    clearTimeout(timer);
  }
}

describe('listings raced against purges of matching keys', () => {
  it('a lane queue, the lane targets and a collection listing never stall', async () => {
    const slowest: Record<string, number> = { queue: 0, targets: 0, list: 0 };
    const stalled: string[] = [];
    for (let round = 0; round < ROUNDS && stalled.length === 0; round++) {
      const target = `app-race${round % 4}-web-prod`;
      const ids = Array.from({ length: KEYS }, (_, i) => `r${round}-${i}`);
      const created_at = new Date().toISOString();
      await Promise.all(ids.map((id) => a.lanes.enqueue(target, id, 'owner-a')));
      await Promise.all(ids.map((id) => a.openDeployments.put([id], { id, target_id: target, owner: 'owner-a', created_at })));
      // Purge every matching key (a little later, so it lands inside the listings) while the other replica lists.
      const purges = (async () => {
        await new Promise((r) => setTimeout(r, Math.random() * 20));
        await Promise.all(ids.flatMap((id) => [a.lanes.dequeue(target, id), a.openDeployments.purge(id)]));
      })();
      const calls: Promise<void>[] = [];
      for (let i = 0; i < 3; i++) {
        for (const [what, call] of [
          ['queue', () => b.lanes.queue(target)],
          ['targets', () => b.lanes.targets()],
          ['list', () => b.openDeployments.list()],
        ] as const) {
          calls.push(
            timed(call).then((ms) => {
              slowest[what] = Math.max(slowest[what], ms);
              if (ms >= SLOW_MS) stalled.push(`${what} in round ${round}`);
            }),
          );
        }
      }
      await Promise.all([purges, ...calls]);
    }
    console.log(`listing race: slowest call per listing over ${ROUNDS} rounds (ms)`, slowest);
    expect(stalled).toEqual([]);

    // And the listings still answer what is there, in order, for a replica that did not write it.
    const t = 'app-race-order-web-prod';
    for (const id of ['o1', 'o2', 'o3']) await a.lanes.enqueue(t, id, 'owner-a');
    await a.lanes.dequeue(t, 'o2');
    expect((await b.lanes.queue(t)).map((e) => e.deployment_id)).toEqual(['o1', 'o3']);
    expect(await b.lanes.targets()).toContain(t);
    await a.openDeployments.put(['k1'], { id: 'k1', target_id: t, owner: 'owner-a', created_at: new Date().toISOString() });
    expect((await b.openDeployments.list()).map((e) => e.id)).toEqual(['k1']);
    await a.openDeployments.purge('k1');
    expect(await b.openDeployments.list()).toEqual([]);
  }, 240_000);
});
