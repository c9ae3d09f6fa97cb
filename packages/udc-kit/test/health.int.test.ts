// /health and /dependencies of a started droplet on a real nats-server.
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { RegistryLink } from '../src/droplet.js';
import { startNatsServer, startTestAuthority, waitFor, type NatsServerHandle, type TestAuthority } from '../src/testing/index.js';
import { createTestDroplet, median, type TestDroplet } from './helpers.js';

let nats: NatsServerHandle;
let authority: TestAuthority;
let droplet: TestDroplet;
let peer: TestDroplet;
let url: string;
const checkCalls = { slow: 0, disk: 0, cache: 0 };
const registryStatus = { reachable: false, registered: false, last_error: 'connect ECONNREFUSED 127.0.0.1:8000' };
const fakeRegistry: RegistryLink = {
  start: () => undefined,
  stop: async () => undefined,
  status: () => registryStatus,
  upsertRecord: async () => {
    throw new Error('not used');
  },
  removeRecord: async () => undefined,
  list: async () => [],
  get: async () => undefined,
  token: async () => 'unused',
};

interface Health {
  status: string;
  degraded: string[];
  dependencies: { name: string; required: boolean; status: string; detail?: unknown }[];
}
const getHealth = async (): Promise<{ code: number; body: Health }> => {
  const res = await fetch(`${url}/health`);
  return { code: res.status, body: (await res.json()) as Health };
};
const dep = (h: Health, name: string) => h.dependencies.find((d) => d.name === name);

beforeAll(async () => {
  nats = await startNatsServer();
  authority = await startTestAuthority();
  const env = { NATS_URL: nats.url, ...authority.env() };
  peer = createTestDroplet({ env, name: 'peer' });
  await peer.start({ port: 0 });
  droplet = createTestDroplet({
    env,
    registry: fakeRegistry,
    dependencies: [{ name: 'peer', required: true }, { name: 'ghost' }],
    healthChecks: {
      // A slow check: if /health ran checks on the request path, it could not answer in 5 ms.
      slow: {
        intervalMs: 60_000,
        check: async () => {
          checkCalls.slow++;
          await sleep(300);
          return { ok: true, detail: 'took 300 ms' };
        },
      },
      disk: { required: true, intervalMs: 60_000, check: () => (checkCalls.disk++, true) },
      cache: { intervalMs: 60_000, check: () => (checkCalls.cache++, { ok: false, detail: 'cache unreachable' }) },
    },
  });
  url = (await droplet.start({ port: 0 })).url;
});

afterAll(async () => {
  await droplet?.stop();
  await peer?.stop();
  await authority?.close();
  await nats?.stop({ removeStore: true });
});

describe('/health', () => {
  it('is inactive before start', async () => {
    const idle = createTestDroplet({ env: { NATS_URL: nats.url } });
    expect(idle.health().status).toBe('inactive');
    await idle.stop();
  });

  it('reports NATS, the registry and service checks, run in the background', async () => {
    await waitFor('the slow check to finish once', () => dep(droplet.health() as unknown as Health, 'slow')?.status === 'ok', 5000);
    const { code, body } = await getHealth();
    expect(code).toBe(200);
    expect(body.status).toBe('active');
    expect(dep(body, 'nats')).toMatchObject({ required: true, status: 'ok' });
    expect(dep(body, 'registry')).toMatchObject({
      required: false,
      status: 'degraded',
      detail: { registered: false, last_error: expect.stringContaining('ECONNREFUSED') },
    });
    expect(dep(body, 'disk')).toMatchObject({ required: true, status: 'ok' });
    expect(dep(body, 'cache')).toMatchObject({ required: false, status: 'degraded', detail: 'cache unreachable' });
    expect(body.degraded.sort()).toEqual(['cache', 'registry']);
  });

  it('answers in under 5 ms (median of 300 calls) and runs no check on the request path', async () => {
    const calls = { ...checkCalls };
    await getHealth(); // warm the keep-alive connection
    const times: number[] = [];
    for (let i = 0; i < 300; i++) {
      const t0 = performance.now();
      const res = await fetch(`${url}/health`);
      await res.arrayBuffer();
      times.push(performance.now() - t0);
      expect(res.status).toBe(200);
    }
    // Client-measured round trip on loopback, so it includes fetch's own cost: a generous bound.
    expect(median(times)).toBeLessThan(5);
    expect(checkCalls).toEqual(calls);
  });

  it('turns error when NATS goes away and active again when it is back', async () => {
    await nats.stop();
    await waitFor('health to see NATS down', async () => (await getHealth()).body.status === 'error', 10_000);
    const down = await getHealth();
    expect(down.code).toBe(503);
    expect(dep(down.body, 'nats')?.status).toBe('down');
    expect(down.body.degraded).toContain('nats');
    await nats.restart();
    await waitFor('health to see NATS back', async () => (await getHealth()).body.status === 'active', 15_000);
  });
});

describe('/dependencies', () => {
  it('reports declared dependencies with live status: a peer that answers, one that does not', async () => {
    // The peer answered its ping at start (or after the NATS restart above) in the background.
    await waitFor(
      'dependency checks',
      async () => {
        const res = await fetch(`${url}/dependencies`, { headers: { Authorization: `Bearer ${authority.mint({ scopes: ['read'] })}` } });
        const body = (await res.json()) as { dependencies: { name: string; status: string }[] };
        return (
          body.dependencies.find((d) => d.name === 'peer')?.status === 'available' &&
          body.dependencies.find((d) => d.name === 'ghost')?.status === 'missing'
        );
      },
      15_000,
    );
    const res = await fetch(`${url}/dependencies`, { headers: { Authorization: `Bearer ${authority.mint({ scopes: ['read'] })}` } });
    const body = (await res.json()) as { dependencies: unknown[] };
    expect(body.dependencies).toEqual([
      expect.objectContaining({ name: 'peer', type: 'required', status: 'available', checked_at: expect.any(String) }),
      expect.objectContaining({ name: 'ghost', type: 'optional', status: 'missing', detail: expect.any(String) }),
    ]);
  });
});
