import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { waitFor } from '@droplet-mesh/udc-kit/testing';
import { startHetznerEmulator, type EmulatorHandle } from '../src/index.js';
import { client } from './http.js';

const actionMs = 300;

describe('Hetzner emulator over HTTP', () => {
  let emu: EmulatorHandle;
  let call: ReturnType<typeof client>;

  beforeAll(async () => {
    emu = await startHetznerEmulator({ token: 'hz-token', seedInstances: 60, actionDurationMs: actionMs });
    call = client(emu);
  });
  afterAll(() => emu.close());

  test("apiUrl is the origin plus /v1; a wrong token gets Hetzner's 401 body", async () => {
    expect(emu.apiUrl).toBe(`${emu.url}/v1`);
    const res = await call('GET', '/v1/locations', undefined, 'wrong');
    expect(res.status).toBe(401);
    expect(res.body).toEqual({ error: { code: 'unauthorized', message: 'unable to authenticate', details: null } });
    expect((await call('GET', '/v1/locations')).body.locations.map((l: { name: string }) => l.name)).toContain('fsn1');
  });

  test('pagination: page/per_page (max 50) with meta.pagination, a Link header and RateLimit headers', async () => {
    const first = await call('GET', '/v1/servers?per_page=50');
    expect(first.body.servers).toHaveLength(50);
    expect(first.body.meta.pagination).toEqual({
      page: 1,
      per_page: 50,
      previous_page: null,
      next_page: 2,
      last_page: 2,
      total_entries: 60,
    });
    expect(first.headers.get('link')).toContain('rel="next"');
    expect(first.headers.get('ratelimit-limit')).toBe('3600');
    expect(Number(first.headers.get('ratelimit-remaining'))).toBeLessThan(3600);
    expect(Number(first.headers.get('ratelimit-reset'))).toBeGreaterThanOrEqual(Math.floor(Date.now() / 1000));
    const second = await call('GET', '/v1/servers?per_page=50&page=2');
    expect(second.body.servers).toHaveLength(10);
    expect(second.body.meta.pagination).toMatchObject({ page: 2, previous_page: 1, next_page: null });
    const ids = new Set([...first.body.servers, ...second.body.servers].map((s: { id: number }) => s.id));
    expect(ids.size).toBe(60);
  });

  test('create: initializing with an action that progresses, then running; labels stored and selectable', async () => {
    const created = await call('POST', '/v1/servers', {
      name: 'web-1',
      server_type: 'cx22',
      image: 'ubuntu-24.04',
      location: 'nbg1',
      labels: { 'droplet-mesh': 'true', role: 'web' },
    });
    expect(created.status).toBe(201);
    expect(created.body.server).toMatchObject({ name: 'web-1', status: 'initializing', labels: { 'droplet-mesh': 'true', role: 'web' } });
    expect(created.body.server.public_net.ipv4.ip).toMatch(/^100\.65\./);
    expect(created.body.action).toMatchObject({ command: 'create_server', status: 'running' });
    expect(created.body.root_password).toEqual(expect.any(String));
    const id = created.body.server.id;
    await waitFor(
      'action success',
      async () => (await call('GET', `/v1/actions/${created.body.action.id}`)).body.action.status === 'success',
      5000,
    );
    expect((await call('GET', `/v1/actions/${created.body.action.id}`)).body.action).toMatchObject({
      progress: 100,
      finished: expect.any(String),
    });
    expect((await call('GET', `/v1/servers/${id}`)).body.server.status).toBe('running');
    for (const selector of ['droplet-mesh', 'role=web', 'role==web', 'role in (web,db)', 'droplet-mesh,role!=db']) {
      const res = await call('GET', `/v1/servers?label_selector=${encodeURIComponent(selector)}`);
      expect(res.body.servers.map((s: { id: number }) => s.id)).toEqual([id]);
    }
    expect(
      (await call('GET', `/v1/servers?label_selector=${encodeURIComponent('!seed')}`)).body.servers.map((s: { id: number }) => s.id),
    ).toEqual([id]);
    const duplicate = await call('POST', '/v1/servers', { name: 'web-1', server_type: 'cx22', image: 'ubuntu-24.04' });
    expect(duplicate.status).toBe(409);
    expect(duplicate.body.error.code).toBe('uniqueness_error');
  });

  test("an invalid create is 422 invalid_input in Hetzner's shape and a recorded contract violation", async () => {
    emu.resetRecords();
    const res = await call('POST', '/v1/servers', { name: 'x' });
    expect(res.status).toBe(422);
    expect(res.body.error).toMatchObject({
      code: 'invalid_input',
      details: { fields: [expect.objectContaining({ name: 'server_type' })] },
    });
    expect(emu.contractViolations).toEqual([expect.objectContaining({ kind: 'request', operationId: 'create_server' })]);
    emu.resetRecords();
  });

  test('power actions lock the server (423 locked) until they finish, and change its status', async () => {
    const id = (await call('GET', '/v1/servers?per_page=1')).body.servers[0].id;
    const off = await call('POST', `/v1/servers/${id}/actions/poweroff`);
    expect(off.status).toBe(201);
    expect(off.body.action).toMatchObject({ command: 'stop_server', status: 'running', resources: [{ id, type: 'server' }] });
    expect((await call('GET', `/v1/servers/${id}`)).body.server).toMatchObject({ status: 'stopping', locked: true });
    const locked = await call('POST', `/v1/servers/${id}/actions/reboot`);
    expect(locked.status).toBe(423);
    expect(locked.body.error.code).toBe('locked');
    expect((await call('DELETE', `/v1/servers/${id}`)).status).toBe(423);
    await waitFor(
      'poweroff done',
      async () => (await call('GET', `/v1/servers/${id}/actions/${off.body.action.id}`)).body.action.status === 'success',
      5000,
    );
    expect((await call('GET', `/v1/servers/${id}`)).body.server).toMatchObject({ status: 'off', locked: false });
    const on = await call('POST', `/v1/servers/${id}/actions/poweron`);
    await waitFor(
      'poweron done',
      async () => (await call('GET', `/v1/actions/${on.body.action.id}`)).body.action.status === 'success',
      5000,
    );
    expect((await call('GET', `/v1/servers/${id}`)).body.server.status).toBe('running');
    for (const command of ['shutdown', 'reboot']) {
      const res = await call('POST', `/v1/servers/${id}/actions/${command}`);
      expect(res.status).toBe(201);
      await waitFor(
        `${command} done`,
        async () => (await call('GET', `/v1/actions/${res.body.action.id}`)).body.action.status === 'success',
        5000,
      );
    }
    const listed = await call('GET', `/v1/servers/${id}/actions`);
    expect(listed.body.actions.map((a: { command: string }) => a.command)).toEqual([
      'stop_server',
      'start_server',
      'shutdown_server',
      'reboot_server',
    ]);
  });

  test('create_image makes a snapshot image that becomes available', async () => {
    const id = (await call('GET', '/v1/servers?per_page=1&page=2')).body.servers[0].id;
    const res = await call('POST', `/v1/servers/${id}/actions/create_image`, { description: 'nightly', type: 'snapshot' });
    expect(res.status).toBe(201);
    expect(res.body.image).toMatchObject({ type: 'snapshot', status: 'creating', description: 'nightly', created_from: { id } });
    await waitFor(
      'image available',
      async () => (await call('GET', `/v1/images/${res.body.image.id}`)).body.image.status === 'available',
      5000,
    );
    const snapshots = await call('GET', '/v1/images?type=snapshot');
    expect(snapshots.body.images.map((i: { description: string }) => i.description)).toEqual(['nightly']);
  });

  test('catalog: server types with net/gross prices per location, system images, locations', async () => {
    const types = (await call('GET', '/v1/server_types')).body.server_types;
    const cx22 = types.find((t: { name: string }) => t.name === 'cx22');
    expect(cx22.prices[0]).toMatchObject({ location: 'fsn1', price_monthly: { net: '3.7900000000', gross: expect.any(String) } });
    expect((await call('GET', '/v1/images?type=system')).body.images.length).toBeGreaterThan(1);
    expect((await call('GET', '/v1/locations?name=hel1')).body.locations).toHaveLength(1);
  });

  test('delete returns a delete_server action; the server is gone when it finishes', async () => {
    const id = (await call('GET', '/v1/servers?per_page=1&page=3')).body.servers[0].id;
    const res = await call('DELETE', `/v1/servers/${id}`);
    expect(res.status).toBe(200);
    expect(res.body.action.command).toBe('delete_server');
    await waitFor('server gone', async () => (await call('GET', `/v1/servers/${id}`)).status === 404, 5000);
    expect((await call('GET', `/v1/servers/${id}`)).body).toEqual({
      error: { code: 'not_found', message: `server with ID '${id}' not found`, details: null },
    });
  });

  test("injected faults use Hetzner's error codes", async () => {
    emu.injectFault({ status: 503, times: 1, pathPattern: /\/servers/ });
    const res = await call('GET', '/v1/servers');
    expect(res.status).toBe(503);
    expect(res.body.error.code).toBe('unavailable');
    expect((await call('GET', '/v1/servers')).status).toBe(200);
    emu.injectFault({ status: 429 });
    const limited = await call('GET', '/v1/servers');
    expect(limited.status).toBe(429);
    expect(limited.body.error.code).toBe('rate_limit_exceeded');
    expect(limited.headers.get('ratelimit-remaining')).toBe('0');
  });

  test('no request or response broke the OpenAPI description', () => {
    expect(emu.contractViolations).toEqual([]);
  });
});

describe('Hetzner rate limit', () => {
  test('an exhausted bucket answers 429 rate_limit_exceeded with RateLimit headers', async () => {
    const emu = await startHetznerEmulator({ rateLimit: { perHour: 3 } });
    try {
      const call = client(emu);
      const statuses = [];
      for (let i = 0; i < 4; i++) statuses.push((await call('GET', '/v1/locations')).status);
      expect(statuses).toEqual([200, 200, 200, 429]);
      const limited = await call('GET', '/v1/locations');
      expect(limited.body.error).toMatchObject({ code: 'rate_limit_exceeded' });
      expect(limited.headers.get('ratelimit-limit')).toBe('3');
      expect(limited.headers.get('ratelimit-remaining')).toBe('0');
      expect(Number(limited.headers.get('ratelimit-reset'))).toBeGreaterThan(Date.now() / 1000);
      expect(emu.contractViolations).toEqual([]);
    } finally {
      await emu.close();
    }
  });
});
