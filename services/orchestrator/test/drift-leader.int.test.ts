import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Writable } from 'node:stream';
import { Bus, createLogger } from '@droplet-mesh/udc-kit';
import { startNatsServer, waitFor, type NatsServerHandle } from '@droplet-mesh/udc-kit/testing';
import type { MeshClient } from '../src/live/mesh-client.js';
import { Orchestrator } from '../src/orchestrator.js';
import { Store } from '../src/store.js';

// Two orchestrator replicas on one NATS bucket, one stack that has drifted (its project is
// gone from the deployer): the periodic check runs on the lease holder only, so each check
// is one `stack.drifted`, not one per replica. When the holder stops, the other takes over.
const INTERVAL_MS = 400;
let nats: NatsServerHandle;
let bus: Bus;
let store: Store;
const { logger } = createLogger('orchestrator', 'warn', { destination: new Writable({ write: (_c, _e, cb) => cb() }) });
const events: Array<{ by: string; type: string; at: number }> = [];

// The deployer as the observation sees it: nothing there (every read 404), so the stack's project is missing.
const emptyMesh = { get: async () => ({ status: 404, body: {} }) } as unknown as MeshClient;

function replica(name: string): Orchestrator {
  return new Orchestrator({
    store,
    mesh: emptyMesh,
    logger,
    emit: (type) => void events.push({ by: name, type, at: Date.now() }),
    leaseStaleMs: 10_000,
    deployTimeoutMs: 10_000,
    serverTimeoutMs: 10_000,
    pollMs: 100,
    retryMs: 1000,
  });
}

beforeAll(async () => {
  nats = await startNatsServer();
  bus = await Bus.connect({ url: nats.url, name: 'drift-leader-test' });
  store = new Store(await bus.kv('orchestrator-drift-test', { history: 5 }));
  const at = new Date().toISOString();
  const desired = replica('parser').parse('shop', { projects: { shop: { description: 'the shop' } } });
  await store.putStack({ name: 'shop', revision: 1, status: 'applied', desired, source: '', managed: {}, created_at: at, updated_at: at });
}, 30_000);

afterAll(async () => {
  await store?.close();
  await bus?.close();
  await nats?.stop({ removeStore: true });
});

describe('periodic drift checks across replicas', () => {
  it('run on one replica: one stack.drifted per check, and the other takes over when it stops', async () => {
    const a = replica('a');
    const b = replica('b');
    a.startDriftChecks(INTERVAL_MS);
    b.startDriftChecks(INTERVAL_MS);
    const drifted = () => events.filter((e) => e.type === 'stack.drifted');
    try {
      await waitFor('three drift checks', () => drifted().length >= 3, 10_000, 20);
      const startedAt = drifted()[0].at;
      // Long enough for several checks by each replica if both ran them.
      await new Promise((r) => setTimeout(r, 5 * INTERVAL_MS));
      const seen = drifted();
      const by = [...new Set(seen.map((e) => e.by))];
      expect(by).toHaveLength(1);
      // One event per check: no more than the checks one replica fits in the time.
      expect(seen.length).toBeLessThanOrEqual(Math.ceil((Date.now() - startedAt) / INTERVAL_MS) + 1);

      // The holder stops (its lease is released): the other replica carries on.
      const [leader, other] = by[0] === 'a' ? [a, 'b'] : [b, 'a'];
      await leader.stop();
      await waitFor(`${other} checking`, () => drifted().some((e) => e.by === other), 10_000, 20);
      const stoppedAt = Date.now();
      await new Promise((r) => setTimeout(r, 3 * INTERVAL_MS));
      expect(drifted().filter((e) => e.at > stoppedAt + 50 && e.by !== other)).toEqual([]);
    } finally {
      await a.stop();
      await b.stop();
    }
  }, 40_000);
});
