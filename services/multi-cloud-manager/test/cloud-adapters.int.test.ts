import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { startDigitalOceanEmulator, startHetznerEmulator, startVultrEmulator, type EmulatorHandle } from '@droplet-mesh/cloud-emulators';
import { UdcError } from '@droplet-mesh/udc-kit';
import { waitFor } from '@droplet-mesh/udc-kit/testing';
import type { CloudProvider } from '../src/providers/cloud-provider.js';
import { waitForAction } from '../src/domain/action-waiter.js';
import { captureLogs, createInput, PER_PAGE, providerFor, testLogger, type CloudName } from './helpers.js';

const start = { digitalocean: startDigitalOceanEmulator, hetzner: startHetznerEmulator, vultr: startVultrEmulator };
const TOKEN = 'tok-SECRET-0123456789abcdef';
const wait = { intervalMs: 50, timeoutMs: 10_000 };

async function caught(p: Promise<unknown>): Promise<UdcError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof UdcError) return err;
    throw err;
  }
  return new UdcError(200, 'INTERNAL_ERROR', 'no error was thrown');
}

describe.each(['digitalocean', 'hetzner', 'vultr'] as CloudName[])('%s adapter against its emulator', (name) => {
  let emu: EmulatorHandle;
  let provider: CloudProvider;
  const logs = captureLogs();
  const seeded = Math.round(PER_PAGE[name] * 2.2);

  beforeAll(async () => {
    emu = await start[name]({ token: TOKEN, seedInstances: seeded, actionDurationMs: 200 });
    provider = providerFor(name, emu, { logger: testLogger(logs.stream) }).provider;
  });
  afterAll(async () => {
    await provider.close?.();
    await emu.close();
  });

  const calls = (method: string, pattern: RegExp) => emu.requests.filter((r) => r.method === method && pattern.test(r.path));

  it('lists every page', async () => {
    emu.resetRecords();
    const items = await provider.list();
    expect(items).toHaveLength(seeded);
    expect(new Set(items.map((i) => i.id)).size).toBe(seeded);
    expect(calls('GET', /\/(droplets|servers|instances)$/).length).toBe(3);
    const one = items[0];
    expect(one.provider).toBe(name);
    expect(one.id).toBe(`${name}:${one.provider_id}`);
    expect(one.status).toBe('running');
    expect(one.ipv4).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    expect(one.managed).toBe(false);
    expect(one.tags).toContain('seed');
    if (name !== 'vultr') expect(one.price_monthly).toBeGreaterThan(0);
  });

  it('creates without waiting (an action to poll), then waits for it', async () => {
    const { instance, action } = await provider.create(createInput(name, `web-${name}-1`));
    expect(instance.managed).toBe(true);
    expect(instance.tags).toEqual(expect.arrayContaining(['droplet-mesh', 'web']));
    expect(instance.labels).toEqual({ team: 'ops' });
    expect(action?.status).toBe('in_progress');
    const done = await waitForAction(provider, action!, wait);
    expect(done.status).toBe('completed');
    const after = await provider.get(instance.provider_id);
    expect(after.status).toBe('running');
    expect(after.ipv4).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
  });

  it('powers off and on, waiting on the action', async () => {
    const { instance, action } = await provider.create(createInput(name, `power-${name}`));
    await waitForAction(provider, action!, wait);
    const off = await waitForAction(provider, await provider.power(instance.provider_id, 'power_off'), wait);
    expect(off.status).toBe('completed');
    expect((await provider.get(instance.provider_id)).status).toBe('off');
    await waitForAction(provider, await provider.power(instance.provider_id, 'power_on'), wait);
    expect((await provider.get(instance.provider_id)).status).toBe('running');
    const reboot = await waitForAction(provider, await provider.power(instance.provider_id, 'reboot'), wait);
    expect(reboot.status).toBe('completed');
  });

  it('deletes, after which get is NOT_FOUND with the provider message and request id', async () => {
    const { instance, action } = await provider.create(createInput(name, `gone-${name}`));
    await waitForAction(provider, action!, wait);
    const del = await provider.delete(instance.provider_id);
    if (del) await waitForAction(provider, del, wait);
    // Hetzner shows `deleting` until its action ends; the others forget the server at once.
    await waitFor('server gone', async () => (await caught(provider.get(instance.provider_id))).code === 'NOT_FOUND', 5000);
    const err = await caught(provider.get(instance.provider_id));
    expect(err.code).toBe('NOT_FOUND');
    expect(err.httpStatus).toBe(404);
    expect(err.details).toMatchObject({ provider: name, provider_status: 404 });
    expect((err.details as { request_id?: string }).request_id).toBeTruthy();
  });

  it('honours 429 and then succeeds', async () => {
    emu.resetRecords();
    emu.injectFault({ status: 429, times: 1, pathPattern: /\/(sizes|server_types|plans)$/ });
    const sizes = await provider.sizes();
    expect(sizes.length).toBeGreaterThan(0);
    expect(sizes.every((s) => s.price_monthly! > 0 && s.price_hourly! > 0)).toBe(true);
    const statuses = emu.requests.filter((r) => /\/(sizes|server_types|plans)$/.test(r.path)).map((r) => r.status);
    expect(statuses[0]).toBe(429);
    expect(statuses.at(-1)).toBe(200);
  });

  it('retries 5xx on an idempotent GET', async () => {
    emu.resetRecords();
    emu.injectFault({ status: 503, times: 2, pathPattern: /\/(regions|locations)$/ });
    const regions = await provider.regions();
    expect(regions.length).toBeGreaterThan(0);
    expect(emu.requests.filter((r) => /\/(regions|locations)$/.test(r.path)).map((r) => r.status)).toEqual([503, 503, 200]);
  });

  it('does not retry 5xx on a POST (not idempotent) and maps it to DEPENDENCY_UNAVAILABLE', async () => {
    const { instance, action } = await provider.create(createInput(name, `noretry-${name}`));
    await waitForAction(provider, action!, wait);
    emu.resetRecords();
    emu.injectFault({ status: 500, times: 2, method: 'POST' });
    const err = await caught(provider.power(instance.provider_id, 'reboot'));
    expect(err.code).toBe('DEPENDENCY_UNAVAILABLE');
    expect(err.details).toMatchObject({ provider: name, provider_status: 500 });
    expect(emu.requests.filter((r) => r.method === 'POST')).toHaveLength(1);
    emu.clearFaults();
  });

  it('refuses a bad id as INVALID_REQUEST before calling the provider', async () => {
    const err = await caught(provider.get('../../etc'));
    expect(err.code).toBe('INVALID_REQUEST');
  });

  it('takes and lists snapshots', async () => {
    const { instance, action } = await provider.create(createInput(name, `snap-${name}`));
    await waitForAction(provider, action!, wait);
    const r = await provider.createSnapshot(instance.provider_id, `snap-of-${name}`);
    if (r.action) await waitForAction(provider, r.action, wait);
    const all = await provider.snapshots();
    expect(all.some((s) => s.name === `snap-of-${name}`)).toBe(true);
  });

  it('lists images and checks the token with ping', async () => {
    expect((await provider.images()).length).toBeGreaterThan(0);
    await expect(provider.ping()).resolves.toBeUndefined();
  });

  it('maps a rejected token to DEPENDENCY_UNAVAILABLE and never shows the token', async () => {
    const wrong = 'wrong-SECRET-token-value-987654';
    const bad = providerFor(name, emu, { token: wrong, logger: testLogger(logs.stream) }).provider;
    const err = await caught(bad.list());
    await bad.close?.();
    expect(err.code).toBe('DEPENDENCY_UNAVAILABLE');
    expect(err.details).toMatchObject({ provider: name, provider_status: 401, token_valid: false });
    const text = JSON.stringify({ message: err.message, details: err.details, stack: err.stack });
    expect(text).not.toContain(wrong);
    expect(logs.text()).not.toContain(wrong);
    expect(logs.text()).not.toContain(TOKEN);
  });

  it('sent only requests the OpenAPI description allows', () => {
    expect(emu.contractViolations).toEqual([]);
  });
});
