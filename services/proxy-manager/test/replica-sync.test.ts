import { describe, expect, it } from '@jest/globals';
import { createLogger } from '@droplet-mesh/udc-kit';
import { waitFor } from '@droplet-mesh/udc-kit/testing';
import { ReplicaSync } from '../src/replica-sync.js';
import type { Change, Outcome, Reconciler } from '../src/reconciler.js';
import type { KeyChange, KeyWatch } from '../src/store/kv-watch.js';
import type { StoredRoute } from '../src/store/route-store.js';
import { quiet } from './support/http.js';

// The watch → batch → reconciler path in process, with the reconciler and the watch as
// stand-ins (the real ones, on NATS and nginx, are in replicas.int.test.ts).
const { logger } = createLogger('proxy-manager-test', 'warn', { destination: quiet });

function fakeReconciler(applied: Record<string, number>) {
  const routes = new Map<string, StoredRoute>(
    Object.entries(applied).map(([name, revision]) => [name, { revision, record: { name } } as unknown as StoredRoute]),
  );
  const submitted: string[][] = [];
  let current: string[] | undefined;
  return {
    submitted,
    reconciler: {
      routes,
      submit: async (c: Change): Promise<Outcome> => {
        // Changes submitted in the same tick count as one batch.
        if (!current) {
          current = [];
          submitted.push(current);
          queueMicrotask(() => (current = undefined));
        }
        current.push(`${c.kind}:${'name' in c ? c.name : c.record.name}`);
        return { ok: true, name: 'name' in c ? c.name : c.record.name, changed: false };
      },
      idle: async () => undefined,
    } as unknown as Reconciler,
  };
}

function fakeWatch() {
  const opened: Array<{ onChange: (c: KeyChange) => void; end: () => void }> = [];
  const open = async (onChange: (c: KeyChange) => void): Promise<KeyWatch> => {
    let end!: () => void;
    const done = new Promise<void>((r) => (end = r));
    opened.push({ onChange, end });
    return { stop: () => end(), done };
  };
  return { opened, open };
}

function build(applied: Record<string, number>, storedNames: string[] = [], quietMs = 30) {
  const r = fakeReconciler(applied);
  const w = fakeWatch();
  const sync = new ReplicaSync({
    reconciler: r.reconciler,
    watchRoutes: w.open,
    storedNames: async () => storedNames,
    adoptCertificate: async () => undefined,
    logger,
    emit: () => undefined,
    replicaId: 'test',
    quietMs,
    reopenDelayMs: 10,
  });
  return { ...r, ...w, sync };
}

describe('ReplicaSync', () => {
  it('holds changes until released, then submits only news, all in one batch', async () => {
    const { sync, opened, submitted } = build({ own: 7, old: 3 });
    await sync.open();
    const push = (c: KeyChange) => opened[0].onChange(c);
    push({ key: 'own', revision: 7, deleted: false }); // this replica's own write
    push({ key: 'old', revision: 9, deleted: false }); // newer than applied
    push({ key: 'fresh', revision: 10, deleted: false }); // unknown here
    push({ key: 'ghost', revision: 11, deleted: true }); // deleted, never applied here
    push({ key: 'Not_A_Route', revision: 12, deleted: false });
    await new Promise((r) => setTimeout(r, 80));
    expect(submitted).toEqual([]);
    sync.release();
    await waitFor('a batch', () => submitted.length > 0, 2000, 5);
    await sync.idle();
    expect(submitted).toEqual([['converge:old', 'converge:fresh']]);
    await sync.stop();
  });

  it('fifty changes in a burst become one batch, one change per route', async () => {
    // A quiet window far above the 1 ms gaps: on a loaded 2-core machine a 1 ms timer can
    // fire tens of ms late, which split the burst with a 30 ms window.
    const { sync, opened, submitted } = build({}, [], 250);
    await sync.open();
    sync.release();
    for (let i = 0; i < 50; i++) {
      opened[0].onChange({ key: `r-${i % 25}`, revision: i + 1, deleted: false });
      await new Promise((r) => setTimeout(r, 1));
    }
    await waitFor('a batch', () => submitted.length > 0, 2000, 5);
    await sync.idle();
    expect(submitted).toHaveLength(1);
    expect(submitted[0]).toHaveLength(25);
    await sync.stop();
  });

  it('a watch that ends is reopened, and every known name is compared with the store', async () => {
    const { sync, opened, submitted } = build({ local: 4 }, ['stored']);
    await sync.open();
    sync.release();
    opened[0].end();
    await waitFor('the watch reopened', () => opened.length === 2, 2000, 5);
    await waitFor('the catch-up batch', () => submitted.length > 0, 2000, 5);
    await sync.idle();
    expect(submitted.flat().sort()).toEqual(['converge:local', 'converge:stored']);
    // The new watch feeds batches as before.
    opened[1].onChange({ key: 'later', revision: 20, deleted: false });
    await waitFor('a batch from the new watch', () => submitted.flat().includes('converge:later'), 2000, 5);
    await sync.stop();
    expect(opened.length).toBe(2);
  });
});
