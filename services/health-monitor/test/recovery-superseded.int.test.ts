import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pino from 'pino';
import { Bus, type MessageReply } from '@droplet-mesh/udc-kit';
import { startNatsServer, type NatsServerHandle } from '@droplet-mesh/udc-kit/testing';
import { initialRecovery } from '../src/domain/recovery-plan.js';
import { checkAddress, type Incident, type Target } from '../src/domain/types.js';
import { RecoveryWorker, type RecoveryRequest } from '../src/engine/recovery-worker.js';
import { Notifier } from '../src/notify/notifier.js';
import { IncidentStore } from '../src/store/incident-store.js';
import { KvLease } from '../src/store/lease.js';
import { targetRevision } from '../src/targets/record-events.js';
import type { Reread } from '../src/targets/target-directory.js';
import { quiet } from './helpers/quiet.js';

// The recovery leader re-reads the target's record before it acts. A redeploy since the
// incident opened (a new deployment, even on the same address) supersedes the incident:
// it closes on its timeline and nothing is restarted. Real NATS KV for incidents and leases.
let nats: NatsServerHandle;
let bus: Bus;
const log = pino(quiet());

const app = (deployment: string, port = 18080): Target => ({
  id: 'app',
  kind: 'service',
  url: `http://127.0.0.1:${port}`,
  health_path: '/health',
  recovery: ['restart', 'alert'],
  metadata: { project: 'p', service: 'app', environment: 'prod', deployment_id: deployment },
  source: 'registry',
});

async function setup(bucket: string, current: Target) {
  const store = new IncidentStore(await bus.kv(`${bucket}-incidents`, { history: 5 }), log, { retentionMs: 3600_000, maxResolved: 100 });
  await store.start();
  const sent: RecoveryRequest[] = [];
  const events: Array<{ type: string; data: Incident }> = [];
  let record = current;
  const worker = new RecoveryWorker({
    monitorId: 'm1',
    store,
    lease: new KvLease(await bus.kv(`${bucket}-leases`, { history: 1 }), 'm1', 3000),
    notifier: new Notifier([], log),
    target: () => record,
    reread: async (): Promise<Reread> => ({ kind: 'same', target: record }),
    resolveDeparted: async () => undefined,
    send: async (req): Promise<MessageReply> => {
      sent.push(req);
      return { result: 'success' } as MessageReply;
    },
    emit: (type, data) => void events.push({ type, data: data as Incident }),
    params: { maxAttemptsPerStep: 2, backoffMs: 1000, backoffMaxMs: 1000 },
    requestTimeoutMs: 1000,
    tickMs: 60_000,
    log,
  });
  return { store, sent, events, worker, redeploy: (t: Target) => void (record = t) };
}

function incidentFor(t: Target): Incident {
  const at = new Date().toISOString();
  return {
    id: `inc-${Math.random().toString(36).slice(2)}`,
    target_id: t.id,
    url: checkAddress(t),
    target_revision: targetRevision(t),
    status: 'open',
    reason: 'test',
    opened_at: at,
    opened_by: 'm1',
    recovery: initialRecovery(t.recovery),
    timeline: [{ at, event: 'opened', by: 'm1' }],
  };
}

beforeAll(async () => {
  nats = await startNatsServer();
  bus = await Bus.connect({ url: nats.url, name: 'recovery-superseded-test' });
}, 30_000);

afterAll(async () => {
  await bus?.close();
  await nats?.stop({ removeStore: true });
});

describe('recovery re-reads the record before it acts', () => {
  it('a redeploy on the same address since the incident opened: superseded, no restart', async () => {
    const v1 = app('d1');
    const s = await setup('same-addr', v1);
    const incident = incidentFor(v1);
    expect(await s.store.create(incident)).toBe(true);
    s.redeploy(app('d2'));
    await s.worker.tick();
    expect(s.sent).toEqual([]);
    const closed = await s.store.get(incident.id);
    expect(closed?.status).toBe('resolved');
    const superseded = closed?.timeline.find((e) => e.event === 'superseded');
    expect(superseded?.detail).toEqual({ from: targetRevision(v1), to: targetRevision(app('d2')) });
    expect(s.events.map((e) => [e.type, e.data.id])).toEqual([['incident.resolved', incident.id]]);
    s.worker.stop();
    s.store.stop();
  });

  it('a redeploy to a new address: superseded, no restart', async () => {
    const v1 = app('d1');
    const s = await setup('new-addr', v1);
    const incident = incidentFor(v1);
    expect(await s.store.create(incident)).toBe(true);
    s.redeploy(app('d1', 18081));
    await s.worker.tick();
    expect(s.sent).toEqual([]);
    expect((await s.store.get(incident.id))?.timeline.map((e) => e.event)).toEqual(['opened', 'leader.acquired', 'superseded']);
    s.worker.stop();
    s.store.stop();
  });

  it('the same record still down: the restart is sent (the check above can fail)', async () => {
    const v1 = app('d1');
    const s = await setup('unchanged', v1);
    const incident = incidentFor(v1);
    expect(await s.store.create(incident)).toBe(true);
    await s.worker.tick();
    expect(s.sent.map((r) => [r.target, r.payload.action, r.payload.target_id])).toEqual([['deployer', 'restart', 'app']]);
    expect((await s.store.get(incident.id))?.status).toBe('recovering');
    s.worker.stop();
    s.store.stop();
  });
});
