import { beforeEach, describe, expect, it } from '@jest/globals';
import { waitFor } from '@droplet-mesh/udc-kit/testing';
import { DependencyUnavailable, type RegistryLink, type RegistryRecordInput } from '@droplet-mesh/udc-kit';
import { CatalogCache } from '../src/domain/catalog-cache.js';
import { Fleet } from '../src/domain/fleet.js';
import { HostRegistry } from '../src/domain/host-registry.js';
import { LifecycleWatcher } from '../src/domain/lifecycle-watcher.js';
import { ProviderSet } from '../src/providers/provider-set.js';
import { FakeProvider, MemoryIdempotencyStore, unavailable } from './fake-provider.js';
import { testLogger } from './helpers.js';

const logger = testLogger();

function build(providers: FakeProvider[], opts: { listTimeoutMs?: number } = {}) {
  const events: Array<{ type: string; data: any }> = [];
  const hosts: RegistryRecordInput[] = [];
  const removed: string[] = [];
  const link = {
    upsertRecord: async (r: RegistryRecordInput) => (hosts.push(r), r),
    removeRecord: async (id: string) => void removed.push(id),
  } as unknown as RegistryLink;
  const idempotency = new MemoryIdempotencyStore();
  const settings = { listTimeoutMs: opts.listTimeoutMs ?? 1000, pollIntervalMs: 5, waitTimeoutMs: 2000 };
  const fleet = new Fleet({
    providers: ProviderSet.of(providers),
    catalog: new CatalogCache(60),
    idempotency,
    hosts: new HostRegistry(() => link, logger),
    watcher: new LifecycleWatcher({ intervalMs: 5, timeoutMs: 2000 }, logger),
    emit: (type, data) => events.push({ type, data }),
    logger,
    settings,
  });
  return { fleet, events, hosts, removed, idempotency };
}

const createReq = (provider: 'digitalocean' | 'hetzner', wait = false) => ({
  provider,
  name: 'web-1',
  region: 'r1',
  size: 's1',
  image: 'img',
  tags: ['web'],
  labels: {},
  wait,
});

describe('Fleet', () => {
  let dop: FakeProvider;
  let hz: FakeProvider;
  beforeEach(() => {
    dop = new FakeProvider('digitalocean');
    hz = new FakeProvider('hetzner', 'EUR');
    dop.add({ provider_id: '1', name: 'api-1', tags: ['api'], region: 'nyc3' });
    dop.add({ provider_id: '2', name: 'db-1', status: 'off', region: 'nyc3', managed: true, tags: ['droplet-mesh'] });
    hz.add({ provider_id: '7', name: 'api-2', region: 'fsn1', price_monthly: 3.79, ipv4: '203.0.113.9' });
  });

  it('lists every provider; a failing provider is an error entry, unconfigured ones are listed as such', async () => {
    hz.failWith = unavailable('hetzner');
    const { fleet } = build([dop, hz]);
    const r = await fleet.listAll();
    expect(r.instances.map((i) => i.id)).toEqual(['digitalocean:1', 'digitalocean:2']);
    const byName = Object.fromEntries(r.providers.map((p) => [p.provider, p]));
    expect(byName.digitalocean).toMatchObject({ status: 'ok', count: 2 });
    expect(byName.hetzner).toMatchObject({ status: 'error', error: { code: 'DEPENDENCY_UNAVAILABLE' } });
    expect(byName.vultr).toMatchObject({ status: 'not_configured', hint: 'set VULTR_TOKEN' });
    expect(byName.local.status).toBe('not_configured');
  });

  it('gives a slow provider its own deadline and answers with the others', async () => {
    hz.delayMs = 5000;
    const { fleet } = build([dop, hz], { listTimeoutMs: 200 });
    const started = Date.now();
    const r = await fleet.listAll();
    expect(Date.now() - started).toBeLessThan(1500);
    expect(r.instances).toHaveLength(2);
    expect(r.providers.find((p) => p.provider === 'hetzner')).toMatchObject({
      status: 'error',
      error: { message: expect.stringContaining('did not answer within 200 ms') },
    });
  });

  it('filters, searches and summarises', async () => {
    const { fleet } = build([dop, hz]);
    expect((await fleet.list({ status: 'off' })).instances.map((i) => i.name)).toEqual(['db-1']);
    expect((await fleet.list({ region: 'fsn1' })).instances.map((i) => i.name)).toEqual(['api-2']);
    expect((await fleet.list({ tag: 'api' })).instances.map((i) => i.name)).toEqual(['api-1']);
    expect((await fleet.list({ name: 'API' })).instances).toHaveLength(2);
    expect((await fleet.search('203.0.113', {})).instances.map((i) => i.id)).toEqual(['hetzner:7']);
    expect((await fleet.search('hetzner:7', {})).instances).toHaveLength(1);
    expect((await fleet.search('api', { provider: 'digitalocean' })).instances.map((i) => i.id)).toEqual(['digitalocean:1']);
    const s = await fleet.summary();
    expect(s).toMatchObject({
      total: 3,
      by_provider: { digitalocean: 2, hetzner: 1 },
      by_status: { running: 2, off: 1 },
      by_region: { nyc3: 2, fsn1: 1 },
      estimated_monthly_cost: {
        by_currency: { USD: 10, EUR: 3.79 },
        by_provider: { hetzner: { amount: 3.79, currency: 'EUR', priced: 1 } },
      },
    });
  });

  it('refuses to delete or power off an unmanaged instance unless forced; reboot is allowed', async () => {
    const { fleet, events } = build([dop]);
    await expect(fleet.delete('digitalocean', '1', false)).rejects.toMatchObject({ code: 'CONFLICT', httpStatus: 409 });
    await expect(fleet.act('digitalocean', '1', { type: 'power_off', wait: false, force: false })).rejects.toMatchObject({
      code: 'CONFLICT',
    });
    await expect(fleet.act('digitalocean', '1', { type: 'shutdown', wait: false, force: false })).rejects.toMatchObject({
      code: 'CONFLICT',
    });
    await expect(fleet.act('digitalocean', '1', { type: 'reboot', wait: false, force: false })).resolves.toMatchObject({
      action: { status: 'completed' },
    });
    const off = await fleet.act('digitalocean', '1', { type: 'power_off', wait: false, force: true });
    expect(off.instance.status).toBe('off');
    expect(events.find((e) => e.type === 'instance.state_changed')?.data).toMatchObject({
      from: 'running',
      to: 'off',
      action: 'power_off',
    });
    await fleet.delete('digitalocean', '1', true);
    expect(events.at(-1)).toMatchObject({ type: 'instance.deleted', data: { forced: true, instance: { id: 'digitalocean:1' } } });
    await expect(fleet.delete('digitalocean', '2', false)).resolves.toMatchObject({ deleted: true });
  });

  it('a not-configured provider is DEPENDENCY_UNAVAILABLE naming its variable', async () => {
    const { fleet } = build([dop]);
    await expect(fleet.get('vultr', 'x')).rejects.toMatchObject({
      code: 'DEPENDENCY_UNAVAILABLE',
      details: { status: 'not_configured', hint: 'set VULTR_TOKEN' },
    });
  });

  it('create with wait: runs, registers the host and emits created and state_changed', async () => {
    hz.pollsToRun = 3;
    const { fleet, events, hosts } = build([hz]);
    const r = await fleet.create(createReq('hetzner', true));
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({ instance: { status: 'running', managed: true }, registered: true });
    expect(hosts).toEqual([
      {
        id: 'host-hetzner-n1',
        name: 'web-1',
        kind: 'host',
        url: 'http://192.0.2.1',
        metadata: { provider: 'hetzner', instance_id: 'n1', region: 'r1', recovery: ['reboot', 'alert'] },
      },
    ]);
    expect(events.map((e) => e.type)).toEqual(['instance.created', 'instance.state_changed']);
  });

  it('create without wait: answers 202 and registers the host once it runs', async () => {
    const { fleet, events, hosts } = build([hz]);
    const r = await fleet.create(createReq('hetzner'));
    expect(r.status).toBe(202);
    expect(r.body).toMatchObject({ instance: { status: 'provisioning' }, action: { status: 'in_progress' } });
    await waitFor('host registered', () => hosts.length === 1, 2000);
    await waitFor('state event', () => events.some((e) => e.type === 'instance.state_changed'), 2000);
    fleet.stop();
  });

  it('Idempotency-Key: a retried create replays the first answer and creates once', async () => {
    const { fleet } = build([dop]);
    const key = { key: 'abc-123', scope: 'op' };
    const first = await fleet.create(createReq('digitalocean'), key);
    const again = await fleet.create(createReq('digitalocean'), key);
    expect(again).toEqual({ ...first, replayed: true });
    expect(dop.createCalls).toBe(1);
    await expect(fleet.create({ ...createReq('digitalocean'), name: 'other' }, key)).rejects.toMatchObject({ httpStatus: 422 });
    // Another caller's identical key is a different request.
    await fleet.create(createReq('digitalocean'), { key: 'abc-123', scope: 'someone-else' });
    expect(dop.createCalls).toBe(2);
    fleet.stop();
  });

  it('a failed create releases its Idempotency-Key so a retry runs', async () => {
    const { fleet, idempotency } = build([dop]);
    dop.failWith = unavailable('digitalocean');
    await expect(fleet.create(createReq('digitalocean'), { key: 'k1', scope: 'op' })).rejects.toMatchObject({
      code: 'DEPENDENCY_UNAVAILABLE',
    });
    expect(idempotency.records.size).toBe(0);
    dop.failWith = undefined;
    await expect(fleet.create(createReq('digitalocean'), { key: 'k1', scope: 'op' })).resolves.toMatchObject({
      status: 202,
      replayed: false,
    });
    fleet.stop();
  });

  it('health-check reports reachable and token validity per provider', async () => {
    hz.failWith = new DependencyUnavailable('rejected', { provider: 'hetzner', provider_status: 401, token_valid: false }, 502);
    const { fleet } = build([dop, hz]);
    const h = await fleet.healthCheck();
    const by = Object.fromEntries(h.providers.map((p) => [p.provider, p]));
    expect(by.digitalocean).toMatchObject({ status: 'ok', reachable: true, token_valid: true });
    expect(typeof by.digitalocean.latency_ms).toBe('number');
    expect(by.hetzner).toMatchObject({ status: 'error', reachable: true, token_valid: false });
    expect(by.vultr).toMatchObject({ status: 'not_configured', reachable: null, token_valid: null });
  });
});
