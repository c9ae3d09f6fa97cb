import { afterAll, beforeAll, expect, it } from '@jest/globals';
import type { KV } from '@nats-io/kv';
import { Bus, KeyView } from '../src/index.js';
import { startNatsServer, type NatsServerHandle } from '../src/testing/index.js';

let nats: NatsServerHandle;
let writer: Bus;
let reader: Bus;

beforeAll(async () => {
  nats = await startNatsServer();
  writer = await Bus.connect({ url: nats.url, name: 'key-view-writer' });
  reader = await Bus.connect({ url: nats.url, name: 'key-view-reader' });
}, 30_000);

afterAll(async () => {
  await writer?.close();
  await reader?.close();
  await nats?.stop({ removeStore: true });
});

async function buckets(name: string): Promise<{ w: KV; r: KV }> {
  return { w: await writer.kv(name, { history: 3 }), r: await reader.kv(name, { history: 3 }) };
}

it('lists what another connection wrote and deleted, in revision order', async () => {
  const { w, r } = await buckets('kv-order');
  const view = KeyView.of(r);
  for (const k of ['a.1', 'a.2', 'a.3', 'b.1']) await w.put(k, 'v');
  await w.delete('a.2');
  expect((await view.keys('a.')).map((e) => e.key)).toEqual(['a.1', 'a.3']);
  await view.stop();
});

// nats-server 2.9 + @nats-io/kv 3.4: a watch never delivers the purge markers of keys purged
// while their puts were still undelivered. The view kept such keys as live for good (59 of
// 60 per burst here; the deployer's listing-race test read 1,800 stale keys per listing).
it('a burst of purges of keys the watch has not delivered yet leaves no stale key', async () => {
  const { w, r } = await buckets('kv-purge-burst');
  const view = KeyView.of(r);
  expect(await view.keys('x.')).toEqual([]); // the watch runs before the burst
  for (let round = 0; round < 3; round++) {
    const ids = Array.from({ length: 60 }, (_, i) => `x.r${round}-${i}`);
    await Promise.all(ids.map((k) => w.put(k, 'v')));
    await Promise.all(ids.map((k) => w.purge(k)));
    await w.put(`x.kept-${round}`, 'v');
    const kept = Array.from({ length: round + 1 }, (_, i) => `x.kept-${i}`);
    expect((await view.entries('x.')).map((e) => e.key)).toEqual(kept);
    // entries() found the purged keys gone, so the view itself holds none of them any more.
    expect((await view.keys('x.')).map((e) => e.key)).toEqual(kept);
  }
  await view.stop();
}, 30_000);
