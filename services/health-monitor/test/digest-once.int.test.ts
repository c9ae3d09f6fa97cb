import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pino from 'pino';
import { Bus } from '@droplet-mesh/udc-kit';
import { startNatsServer, waitFor, type NatsServerHandle } from '@droplet-mesh/udc-kit/testing';
import { DigestScheduler } from '../src/engine/digest.js';
import type { Notification } from '../src/notify/notification.js';
import { Notifier } from '../src/notify/notifier.js';
import { quiet } from './helpers/quiet.js';

// Two monitors, each with its own wall clock, one far behind the other: each digest period
// is sent once between them, never again by the monitor that reaches it late. The bucket
// forgets keys after 2 s (the real one after a day), well within the lagging clock's delay.
const INTERVAL_MS = 400;
const LAG_MS = 3_000;
let nats: NatsServerHandle;
const buses: Bus[] = [];
const log = pino(quiet());

beforeAll(async () => {
  nats = await startNatsServer();
  for (const i of [1, 2]) buses.push(await Bus.connect({ url: nats.url, name: `digest-once-${i}` }));
}, 30_000);

afterAll(async () => {
  for (const b of buses) await b.close();
  await nats?.stop({ removeStore: true });
});

describe('the digest with two monitors', () => {
  it('goes out once per period even when one clock is seconds behind the other', async () => {
    const sent: Array<{ by: string; at: number }> = [];
    const schedulers = await Promise.all(
      buses.map(async (b, i) => {
        const by = `m${i + 1}`;
        const notifier = new Notifier([{ name: 'record', send: async (_n: Notification) => void sent.push({ by, at: Date.now() }) }], log);
        const skew = i === 0 ? 0 : -LAG_MS;
        return new DigestScheduler(
          await b.kv('digest-once-test', { history: 1, ttlMs: 2000 }),
          INTERVAL_MS,
          () => ({ at: new Date().toISOString(), targets: 0, up: 0, down: 0, unknown: 0, open_incidents: [], monitors: ['m1', 'm2'] }),
          notifier,
          log,
          () => Date.now() + skew,
        );
      }),
    );
    const started = Date.now();
    for (const s of schedulers) s.start();
    try {
      // Past the lag: the late monitor now reaches periods the other sent LAG_MS ago.
      await new Promise((r) => setTimeout(r, LAG_MS + 6 * INTERVAL_MS));
      await waitFor('a digest', () => sent.length > 0, 5000);
    } finally {
      for (const s of schedulers) s.stop();
    }
    await new Promise((r) => setTimeout(r, 100));
    const periods = Math.ceil((Date.now() - started) / INTERVAL_MS);
    // Some go out (a loaded machine may fire a boundary late and skip one) ...
    expect(sent.length).toBeGreaterThanOrEqual(Math.floor(periods / 2));
    // ... but never more than one per period: without the claim the late clock doubled them.
    expect(sent.length).toBeLessThanOrEqual(periods);
  }, 30_000);
});
