import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { waitFor } from '@droplet-mesh/udc-kit/testing';
import { startVultrEmulator, type EmulatorHandle } from '../src/index.js';
import { client } from './http.js';

const actionMs = 300;

describe('Vultr emulator over HTTP', () => {
  let emu: EmulatorHandle;
  let call: ReturnType<typeof client>;

  beforeAll(async () => {
    // The functional tests poll; the 30 req/s limit has its own test and emulator below.
    emu = await startVultrEmulator({
      token: 'vultr-token',
      seedInstances: 120,
      actionDurationMs: actionMs,
      rateLimit: { perSecond: 100_000 },
    });
    call = client(emu);
  });
  afterAll(() => emu.close());

  test("a wrong token gets Vultr's 401 body; /v2/account works with the right one", async () => {
    const res = await call('GET', '/v2/account', undefined, 'wrong');
    expect(res.status).toBe(401);
    expect(res.body).toEqual({ error: 'Invalid API token.', status: 401 });
    expect((await call('GET', '/v2/account')).body.account.email).toEqual(expect.any(String));
  });

  test('cursor pagination: meta.links.next is the cursor for the next page, "" on the last', async () => {
    const ids = new Set<string>();
    let cursor = '';
    let pages = 0;
    do {
      const res = await call('GET', `/v2/instances?per_page=50${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      expect(res.body.meta.total).toBe(120);
      for (const i of res.body.instances as { id: string }[]) ids.add(i.id);
      cursor = res.body.meta.links.next;
      pages++;
    } while (cursor);
    expect(pages).toBe(3);
    expect(ids.size).toBe(120);
    const firstPage = await call('GET', '/v2/instances');
    expect(firstPage.body.instances).toHaveLength(100); // Vultr's default page size
    expect(firstPage.headers.get('ratelimit-limit')).toBeNull();
  });

  test('create: pending/stopped without an IP, then active/running with one; tags stored and filterable', async () => {
    const created = await call('POST', '/v2/instances', {
      region: 'ewr',
      plan: 'vc2-1c-1gb',
      os_id: 2284,
      label: 'web-1',
      hostname: 'web-1',
      tags: ['droplet-mesh', 'web'],
      enable_ipv6: true,
    });
    expect(created.status).toBe(202);
    expect(created.body.instance).toMatchObject({
      status: 'pending',
      power_status: 'stopped',
      main_ip: '0.0.0.0',
      tags: ['droplet-mesh', 'web'],
      default_password: expect.any(String),
    });
    const id = created.body.instance.id;
    await waitFor('instance active', async () => (await call('GET', `/v2/instances/${id}`)).body.instance.status === 'active', 5000);
    const active = (await call('GET', `/v2/instances/${id}`)).body.instance;
    expect(active).toMatchObject({ power_status: 'running', server_status: 'ok', main_ip: expect.stringMatching(/^100\.66\./) });
    expect(active.default_password).toBeUndefined();
    expect(active.v6_networks).toHaveLength(1);
    expect((await call('GET', '/v2/instances?tag=droplet-mesh')).body.instances.map((i: { id: string }) => i.id)).toEqual([id]);
    expect((await call('GET', `/v2/instances?main_ip=${active.main_ip}`)).body.instances.map((i: { id: string }) => i.id)).toEqual([id]);
    expect((await call('GET', '/v2/instances?label=web-1')).body.meta.total).toBe(1);
  });

  test("an invalid create is 400 in Vultr's shape and a recorded contract violation", async () => {
    emu.resetRecords();
    const res = await call('POST', '/v2/instances', { plan: 'vc2-1c-1gb' });
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ error: expect.any(String), status: 400 });
    expect(emu.contractViolations).toEqual([expect.objectContaining({ kind: 'request', operationId: 'create-instance' })]);
    emu.resetRecords();
  });

  test('halt, start and reboot answer 204 and power_status follows after the action time', async () => {
    const id = (await call('GET', '/v2/instances?per_page=1')).body.instances[0].id;
    expect((await call('POST', `/v2/instances/${id}/halt`)).status).toBe(204);
    expect((await call('GET', `/v2/instances/${id}`)).body.instance.power_status).toBe('running');
    await waitFor('stopped', async () => (await call('GET', `/v2/instances/${id}`)).body.instance.power_status === 'stopped', 5000);
    expect((await call('POST', '/v2/instances/start', { instance_ids: [id] })).status).toBe(204);
    await waitFor('running', async () => (await call('GET', `/v2/instances/${id}`)).body.instance.power_status === 'running', 5000);
    expect((await call('POST', `/v2/instances/${id}/reboot`)).status).toBe(204);
    expect((await call('GET', `/v2/instances/${id}`)).body.instance.server_status).toBe('installingbooting');
    await waitFor('rebooted', async () => (await call('GET', `/v2/instances/${id}`)).body.instance.server_status === 'ok', 5000);
  });

  test('snapshots: created from an instance, pending then complete, listed', async () => {
    const id = (await call('GET', '/v2/instances?per_page=1')).body.instances[0].id;
    const res = await call('POST', '/v2/snapshots', { instance_id: id, description: 'nightly' });
    expect(res.status).toBe(201);
    expect(res.body.snapshot).toMatchObject({ description: 'nightly', status: 'pending' });
    await waitFor(
      'snapshot complete',
      async () => (await call('GET', `/v2/snapshots/${res.body.snapshot.id}`)).body.snapshot.status === 'complete',
      5000,
    );
    expect((await call('GET', '/v2/snapshots')).body.snapshots.map((s: { description: string }) => s.description)).toEqual(['nightly']);
  });

  test('catalog: plans with monthly cost, os, regions', async () => {
    expect((await call('GET', '/v2/plans')).body.plans.find((p: { id: string }) => p.id === 'vc2-1c-1gb')).toMatchObject({
      monthly_cost: 5,
      vcpu_count: 1,
    });
    expect((await call('GET', '/v2/os')).body.os.map((o: { id: number }) => o.id)).toContain(2284);
    expect((await call('GET', '/v2/regions')).body.regions.map((r: { id: string }) => r.id)).toContain('ewr');
  });

  test("delete answers 204; the instance is then 404 in Vultr's shape", async () => {
    const id = (await call('GET', '/v2/instances?per_page=1')).body.instances[0].id;
    expect((await call('DELETE', `/v2/instances/${id}`)).status).toBe(204);
    const gone = await call('GET', `/v2/instances/${id}`);
    expect(gone.status).toBe(404);
    expect(gone.body).toEqual({ error: expect.any(String), status: 404 });
  });

  test('injected faults answer {error, status}', async () => {
    emu.injectFault({ status: 500, times: 2, method: 'GET' });
    expect((await call('GET', '/v2/regions')).body).toEqual({ error: 'Internal server error.', status: 500 });
    expect((await call('GET', '/v2/plans')).status).toBe(500);
    expect((await call('GET', '/v2/plans')).status).toBe(200);
  });

  test('no request or response broke the OpenAPI description', () => {
    expect(emu.contractViolations).toEqual([]);
  });
});

describe('Vultr rate limit', () => {
  test('more than 30 requests within a second get 429 {error, status} and no rate-limit headers', async () => {
    const emu = await startVultrEmulator();
    try {
      const call = client(emu);
      const replies = await Promise.all(Array.from({ length: 40 }, () => call('GET', '/v2/regions')));
      const limited = replies.filter((r) => r.status === 429);
      expect(replies.filter((r) => r.status === 200).length).toBeLessThanOrEqual(30);
      expect(limited.length).toBeGreaterThanOrEqual(10);
      expect(limited[0]!.body).toEqual({ error: expect.any(String), status: 429 });
      expect(limited[0]!.headers.get('retry-after')).toBeNull();
      // A client that stays under 30 req/s is never refused.
      await waitFor('window clears', async () => (await call('GET', '/v2/regions')).status === 200, 3000);
      expect(emu.contractViolations).toEqual([]);
    } finally {
      await emu.close();
    }
  });
});
