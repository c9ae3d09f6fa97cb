import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { waitFor } from '@droplet-mesh/udc-kit/testing';
import { startDigitalOceanEmulator, type EmulatorHandle } from '../src/index.js';
import { client, type Reply } from './http.js';

const actionMs = 300;

describe('DigitalOcean emulator over HTTP', () => {
  let emu: EmulatorHandle;
  let call: ReturnType<typeof client>;

  beforeAll(async () => {
    emu = await startDigitalOceanEmulator({ token: 'do-token', seedInstances: 45, actionDurationMs: actionMs });
    call = client(emu);
  });
  afterAll(() => emu.close());

  test("a wrong or missing token gets DigitalOcean's 401 body", async () => {
    for (const token of ['nope', null]) {
      const res = await call('GET', '/v2/account', undefined, token);
      expect(res.status).toBe(401);
      expect(res.body).toEqual({ id: 'unauthorized', message: 'Unable to authenticate you.', request_id: expect.any(String) });
    }
    expect((await call('GET', '/v2/account')).body.account.status).toBe('active');
  });

  test('lists droplets page by page following links.pages.next, with meta.total', async () => {
    const first = await call('GET', '/v2/droplets?per_page=20');
    expect(first.body.meta.total).toBe(45);
    expect(first.headers.get('ratelimit-limit')).toBe('5000');
    expect(Number(first.headers.get('ratelimit-remaining'))).toBeLessThan(5000);
    const ids = new Set<number>();
    let next: string | undefined = `${emu.url}/v2/droplets?per_page=20`;
    let pages = 0;
    while (next) {
      const page: Reply<{ droplets: { id: number }[]; links: { pages?: { next?: string } } }> = await call('GET', next);
      for (const d of page.body.droplets) ids.add(d.id);
      next = page.body.links.pages?.next;
      pages++;
    }
    expect(pages).toBe(3);
    expect(ids.size).toBe(45);
    const last = await call('GET', '/v2/droplets?per_page=20&page=3');
    expect(last.body.droplets).toHaveLength(5);
    expect(last.body.links.pages.prev).toContain('page=2');
  });

  test('create: the droplet is new, its create action progresses, then it is active with IPs and tags', async () => {
    const created = await call('POST', '/v2/droplets', {
      name: 'web-1',
      region: 'fra1',
      size: 's-1vcpu-1gb',
      image: 'ubuntu-24-04-x64',
      tags: ['droplet-mesh', 'web'],
      ipv6: true,
    });
    expect(created.status).toBe(202);
    const droplet = created.body.droplet;
    expect(droplet.status).toBe('new');
    expect(droplet.networks.v4).toEqual([]);
    const actionId = created.body.links.actions[0].id;
    expect((await call('GET', `/v2/actions/${actionId}`)).body.action.status).toBe('in-progress');
    await waitFor('droplet active', async () => (await call('GET', `/v2/droplets/${droplet.id}`)).body.droplet.status === 'active', 5000);
    const active = (await call('GET', `/v2/droplets/${droplet.id}`)).body.droplet;
    expect(active.networks.v4.find((n: { type: string }) => n.type === 'public').ip_address).toMatch(/^100\.64\./);
    expect(active.networks.v6).toHaveLength(1);
    expect((await call('GET', `/v2/actions/${actionId}`)).body.action).toMatchObject({
      status: 'completed',
      type: 'create',
      resource_id: droplet.id,
    });
    const tagged = await call('GET', '/v2/droplets?tag_name=droplet-mesh');
    expect(tagged.body.droplets.map((d: { id: number }) => d.id)).toEqual([droplet.id]);
    expect(tagged.body.meta.total).toBe(1);
  });

  test("an invalid create is refused with 422 in DigitalOcean's shape and recorded as a contract violation", async () => {
    emu.resetRecords();
    const res = await call('POST', '/v2/droplets', { name: 'bad name!', size: 's-1vcpu-1gb', image: 'ubuntu-24-04-x64' });
    expect(res.status).toBe(422);
    expect(res.body).toMatchObject({ id: 'unprocessable_entity', message: expect.any(String) });
    expect(emu.contractViolations).toHaveLength(1);
    expect(emu.contractViolations[0]).toMatchObject({
      kind: 'request',
      method: 'POST',
      path: '/v2/droplets',
      operationId: 'droplets_create',
    });
    const unknownSize = await call('POST', '/v2/droplets', { name: 'ok', size: 'huge', image: 'ubuntu-24-04-x64' });
    expect(unknownSize.status).toBe(422);
    emu.resetRecords();
  });

  test('power actions progress, one at a time, and change the droplet status', async () => {
    const id = (await call('GET', '/v2/droplets?per_page=1')).body.droplets[0].id;
    const off = await call('POST', `/v2/droplets/${id}/actions`, { type: 'power_off' });
    expect(off.status).toBe(201);
    expect(off.body.action).toMatchObject({ type: 'power_off', status: 'in-progress', resource_id: id });
    const busy = await call('POST', `/v2/droplets/${id}/actions`, { type: 'reboot' });
    expect(busy.status).toBe(422);
    expect(busy.body.message).toBe('Droplet already has a pending event.');
    await waitFor(
      'power_off completed',
      async () => (await call('GET', `/v2/droplets/${id}/actions/${off.body.action.id}`)).body.action.status === 'completed',
      5000,
    );
    expect((await call('GET', `/v2/droplets/${id}`)).body.droplet.status).toBe('off');
    expect((await call('POST', `/v2/droplets/${id}/actions`, { type: 'shutdown' })).status).toBe(422);
    const on = await call('POST', `/v2/droplets/${id}/actions`, { type: 'power_on' });
    await waitFor(
      'power_on completed',
      async () => (await call('GET', `/v2/actions/${on.body.action.id}`)).body.action.status === 'completed',
      5000,
    );
    expect((await call('GET', `/v2/droplets/${id}`)).body.droplet.status).toBe('active');
    const actions = await call('GET', `/v2/droplets/${id}/actions`);
    expect(actions.body.actions.map((a: { type: string }) => a.type)).toEqual(['power_on', 'power_off']);
  });

  test('a snapshot action creates a snapshot listed under the droplet, /v2/snapshots and private images', async () => {
    const id = (await call('GET', '/v2/droplets?per_page=1&page=2')).body.droplets[0].id;
    const snap = await call('POST', `/v2/droplets/${id}/actions`, { type: 'snapshot', name: 'nightly' });
    expect(snap.status).toBe(201);
    await waitFor(
      'snapshot done',
      async () => (await call('GET', `/v2/actions/${snap.body.action.id}`)).body.action.status === 'completed',
      5000,
    );
    const own = await call('GET', `/v2/droplets/${id}/snapshots`);
    expect(own.body.snapshots).toEqual([expect.objectContaining({ name: 'nightly', type: 'snapshot' })]);
    const all = await call('GET', '/v2/snapshots?resource_type=droplet');
    expect(all.body.snapshots).toEqual([expect.objectContaining({ name: 'nightly', resource_id: String(id), resource_type: 'droplet' })]);
    expect((await call('GET', `/v2/droplets/${id}`)).body.droplet.snapshot_ids).toEqual([own.body.snapshots[0].id]);
    expect((await call('GET', '/v2/images?private=true')).body.images.map((i: { name: string }) => i.name)).toEqual(['nightly']);
  });

  test('catalog: sizes with prices, regions, distribution images', async () => {
    const sizes = (await call('GET', '/v2/sizes')).body.sizes;
    expect(sizes.find((s: { slug: string }) => s.slug === 's-1vcpu-1gb')).toMatchObject({ price_monthly: 6, price_hourly: 0.00893 });
    expect((await call('GET', '/v2/regions')).body.regions.map((r: { slug: string }) => r.slug)).toContain('fra1');
    expect((await call('GET', '/v2/images?type=distribution')).body.images.every((i: { type: string }) => i.type === 'base')).toBe(true);
  });

  test("delete removes the droplet; unknown ids are 404 in DigitalOcean's shape", async () => {
    const id = (await call('GET', '/v2/droplets?per_page=1')).body.droplets[0].id;
    expect((await call('DELETE', `/v2/droplets/${id}`)).status).toBe(204);
    const gone = await call('GET', `/v2/droplets/${id}`);
    expect(gone.status).toBe(404);
    expect(gone.body).toMatchObject({ id: 'not_found', message: expect.any(String) });
    expect((await call('GET', `/v2/actions/1`)).status).toBe(404);
  });

  test("injected faults answer in DigitalOcean's shape for `times` matching requests, then clear", async () => {
    emu.injectFault({ status: 503, times: 2, pathPattern: /^\/v2\/droplets$/ });
    expect((await call('GET', '/v2/sizes')).status).toBe(200);
    const first = await call('GET', '/v2/droplets');
    expect(first.status).toBe(503);
    expect(first.body).toMatchObject({ id: 'service_unavailable' });
    expect((await call('GET', '/v2/droplets')).status).toBe(503);
    expect((await call('GET', '/v2/droplets')).status).toBe(200);
    emu.injectFault({ status: 429, times: 1 });
    const limited = await call('GET', '/v2/account');
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toBe('1');
    expect(limited.body).toMatchObject({ id: 'too_many_requests' });
  });

  test('latency is added to every response and can be changed at run time', async () => {
    emu.setLatency(150);
    const started = Date.now();
    await call('GET', '/v2/account');
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    emu.setLatency(0);
  });

  test('requests are recorded with method, path, query and status', async () => {
    emu.resetRecords();
    await call('GET', '/v2/droplets?per_page=5&tag_name=web');
    expect(emu.requests).toEqual([
      { method: 'GET', path: '/v2/droplets', query: { per_page: '5', tag_name: 'web' }, status: 200, at: expect.any(Number) },
    ]);
  });

  test('no request or response broke the OpenAPI description', () => {
    expect(emu.contractViolations).toEqual([]);
  });
});

describe('DigitalOcean rate limit', () => {
  test('over the per-minute burst: 429 with retry-after and ratelimit headers', async () => {
    const emu = await startDigitalOceanEmulator({ rateLimit: { perHour: 100, perMinute: 3 } });
    try {
      const call = client(emu);
      const statuses = [];
      for (let i = 0; i < 4; i++) statuses.push((await call('GET', '/v2/account')).status);
      expect(statuses).toEqual([200, 200, 200, 429]);
      const limited = await call('GET', '/v2/account');
      expect(limited.body).toEqual({ id: 'too_many_requests', message: 'API rate limit exceeded.', request_id: expect.any(String) });
      expect(Number(limited.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect(limited.headers.get('ratelimit-limit')).toBe('100');
      expect(limited.headers.get('ratelimit-remaining')).toBe('97');
      expect(Number(limited.headers.get('ratelimit-reset'))).toBeGreaterThan(Date.now() / 1000);
      expect(emu.contractViolations).toEqual([]);
    } finally {
      await emu.close();
    }
  });
});
