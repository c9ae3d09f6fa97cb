import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pino from 'pino';
import { Bus } from '@droplet-mesh/udc-kit';
import { startNatsServer, waitFor, type NatsServerHandle } from '@droplet-mesh/udc-kit/testing';
import { configSchema } from '../src/config.js';
import { initialRecovery } from '../src/domain/recovery-plan.js';
import type { Incident } from '../src/domain/types.js';
import { IncidentStore } from '../src/store/incident-store.js';
import { quiet } from './helpers/quiet.js';

// Finding 8 of the zero-trust review: resolved incidents were kept forever, in KV and in
// every monitor's memory (replayed whole at each start). They now have a retention
// (INCIDENT_RETENTION_DAYS) and a bound (INCIDENT_MAX_RESOLVED), enforced in KV.

const log = pino({ level: 'silent' }, quiet());
const DAY = 24 * 3600_000;
let nats: NatsServerHandle;
let bus: Bus;

beforeAll(async () => {
  nats = await startNatsServer();
  bus = await Bus.connect({ url: nats.url, name: 'retention-test' });
});
afterAll(async () => {
  await bus?.close();
  await nats?.stop({ removeStore: true });
});

const incident = (id: string, target: string, resolvedDaysAgo?: number): Incident => {
  const at = resolvedDaysAgo === undefined ? Date.now() : Date.now() - resolvedDaysAgo * DAY;
  return {
    id,
    target_id: target,
    status: resolvedDaysAgo === undefined ? 'open' : 'resolved',
    reason: 'test',
    opened_at: new Date(at - 60_000).toISOString(),
    opened_by: 'm1',
    ...(resolvedDaysAgo === undefined ? {} : { resolved_at: new Date(at).toISOString(), resolved_by: 'm1' }),
    recovery: initialRecovery(['alert']),
    timeline: [],
  };
};

async function closedKeys(bucket: string): Promise<string[]> {
  const kv = await bus.kv(bucket);
  const keys: string[] = [];
  for await (const k of await kv.keys('closed.>')) keys.push(k);
  return keys.sort();
}

describe('resolved incidents are bounded', () => {
  it('older than the retention, or beyond the maximum (oldest first), they leave KV and memory; open ones stay', async () => {
    const bucket = 'incident-retention-a';
    const kv = await bus.kv(bucket, { history: 5 });
    for (let i = 0; i < 15; i++) await kv.put(`closed.old-${i}`, JSON.stringify(incident(`old-${i}`, `t${i}`, 40 + i)));
    for (let i = 0; i < 15; i++) await kv.put(`closed.new-${i}`, JSON.stringify(incident(`new-${i}`, `t${i}`, i / 10)));
    await kv.put('open.t-open', JSON.stringify(incident('still-open', 't-open')));

    const store = new IncidentStore(kv, log, { retentionMs: 30 * DAY, maxResolved: 10 });
    await store.start();
    await store.prune();
    const keep = Array.from({ length: 10 }, (_, i) => `closed.new-${i}`).sort();
    expect(await closedKeys(bucket)).toEqual(keep);
    expect(
      store
        .all()
        .filter((i) => i.status === 'resolved')
        .map((i) => i.id)
        .sort(),
    ).toEqual(keep.map((k) => k.slice('closed.'.length)));
    expect(store.openFor('t-open')?.id).toBe('still-open');

    // A fresh monitor replays only what is left.
    const fresh = new IncidentStore(kv, log, { retentionMs: 30 * DAY, maxResolved: 10 });
    await fresh.start();
    await waitFor('the fresh store replays', () => fresh.all().length === 11, 5000);
    store.stop();
    fresh.stop();
  });

  it('the bound holds while incidents keep resolving: each archive prunes', async () => {
    const kv = await bus.kv('incident-retention-b', { history: 5 });
    const store = new IncidentStore(kv, log, { retentionMs: 30 * DAY, maxResolved: 5 });
    await store.start();
    for (let i = 0; i < 12; i++) {
      const target = `svc-${i}`;
      expect(await store.create(incident(`inc-${i}`, target))).toBe(true);
      await store.update(target, (cur) => ({ ...cur, status: 'resolved', resolved_at: new Date().toISOString(), resolved_by: 'm1' }));
      await store.archive(target);
    }
    const keys = await closedKeys('incident-retention-b');
    expect(keys.length).toBe(5);
    expect(keys).toEqual(Array.from({ length: 5 }, (_, i) => `closed.inc-${i + 7}`).sort());
    expect(store.all().length).toBe(5);
    store.stop();
  });

  it('the settings have defaults and refuse nonsense', () => {
    const c = configSchema.parse({ NATS_URL: nats.url, ALLOW_SIMPLE_TOKEN: 'true', API_TOKEN: 'x'.repeat(32) });
    expect(c.INCIDENT_RETENTION_DAYS).toBe(30);
    expect(c.INCIDENT_MAX_RESOLVED).toBe(1000);
    expect(configSchema.safeParse({ NATS_URL: nats.url, INCIDENT_MAX_RESOLVED: '0' }).success).toBe(false);
    expect(configSchema.safeParse({ NATS_URL: nats.url, INCIDENT_RETENTION_DAYS: '-1' }).success).toBe(false);
  });
});
