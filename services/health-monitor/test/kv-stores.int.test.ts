import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pino from 'pino';
import { Bus } from '@droplet-mesh/udc-kit';
import { startNatsServer, waitFor, type NatsServerHandle } from '@droplet-mesh/udc-kit/testing';
import { initialRecovery } from '../src/domain/recovery-plan.js';
import type { Incident } from '../src/domain/types.js';
import { IncidentStore } from '../src/store/incident-store.js';
import { KvLease } from '../src/store/lease.js';
import { quiet } from './helpers/quiet.js';

const log = pino({ level: 'silent' }, quiet());
let nats: NatsServerHandle;
let busA: Bus;
let busB: Bus;

beforeAll(async () => {
  nats = await startNatsServer();
  busA = await Bus.connect({ url: nats.url, name: 'kv-test-a' });
  busB = await Bus.connect({ url: nats.url, name: 'kv-test-b' });
});
afterAll(async () => {
  await busA?.close();
  await busB?.close();
  await nats?.stop({ removeStore: true });
});

describe('KvLease (real JetStream KV)', () => {
  it('lets exactly one of many contenders hold it, renews, and hands over only after expiry', async () => {
    const kvA = await busA.kv('lease-test', { history: 1 });
    const kvB = await busB.kv('lease-test', { history: 1 });
    let clock = Date.now();
    const now = () => clock;
    const contenders = [
      new KvLease(kvA, 'a', 1000, now),
      new KvLease(kvB, 'b', 1000, now),
      new KvLease(kvA, 'c', 1000, now),
      new KvLease(kvB, 'd', 1000, now),
    ];
    const won = await Promise.all(contenders.map((l) => l.acquire('job-1')));
    expect(won.filter(Boolean)).toHaveLength(1);
    const winner = contenders[won.indexOf(true)];
    const others = contenders.filter((l) => l !== winner);

    expect(await winner.renew('job-1')).toBe(true);
    for (const o of others) expect(await o.acquire('job-1')).toBe(false);

    // The winner stops renewing (dies); after the ttl one other takes over.
    clock += 1001;
    const takeover = await Promise.all(others.map((l) => l.acquire('job-1')));
    expect(takeover.filter(Boolean)).toHaveLength(1);
    // The old holder's renewal now fails: its revision is stale.
    expect(await winner.renew('job-1')).toBe(false);
    expect(winner.holds('job-1')).toBe(false);

    const next = others[takeover.indexOf(true)];
    await next.release('job-1');
    expect(await winner.acquire('job-1')).toBe(true);
  });
});

describe('IncidentStore (real JetStream KV)', () => {
  const incident = (id: string): Incident => ({
    id,
    target_id: 'svc.with.dots',
    status: 'open',
    reason: 'test',
    opened_at: new Date().toISOString(),
    opened_by: 'a',
    recovery: initialRecovery(['restart']),
    timeline: [],
  });

  it('opens one incident per target however many monitors race, CAS-updates it and archives it', async () => {
    const a = new IncidentStore(await busA.kv('incident-test'), log);
    const b = new IncidentStore(await busB.kv('incident-test'), log);
    await Promise.all([a.start(), b.start()]);
    const created = await Promise.all([a.create(incident('i1')), b.create(incident('i2')), a.create(incident('i3'))]);
    expect(created.filter(Boolean)).toHaveLength(1);
    const winnerId = ['i1', 'i2', 'i3'][created.indexOf(true)];
    await waitFor('b sees the open incident', () => b.openFor('svc.with.dots')?.id === winnerId, 5000);

    // Two concurrent resolvers: only one write happens.
    const resolve = (s: IncidentStore) =>
      s.update('svc.with.dots', (i) =>
        i.status === 'resolved' ? undefined : { ...i, status: 'resolved', resolved_at: new Date().toISOString() },
      );
    const results = await Promise.all([resolve(a), resolve(b)]);
    expect(results.filter(Boolean)).toHaveLength(1);
    await Promise.all([a.archive('svc.with.dots'), b.archive('svc.with.dots')]);
    await waitFor(
      'both see it closed',
      () => !a.openFor('svc.with.dots') && !b.openFor('svc.with.dots') && b.all().some((i) => i.id === winnerId && i.status === 'resolved'),
      5000,
    );
    expect((await b.get(winnerId))?.status).toBe('resolved');

    // The target can have a new incident once the old one is closed, and a restarted store sees history.
    expect(await b.create(incident('i4'))).toBe(true);
    const c = new IncidentStore(await busA.kv('incident-test'), log);
    await c.start();
    await waitFor('a fresh store replays everything', () => c.all().length === 2 && c.openFor('svc.with.dots')?.id === 'i4', 5000);
    a.stop();
    b.stop();
    c.stop();
  });
});
