// /shutdown drains and exits 0; /emergency-stop exits at once. `exit` is injected, so the
// test process survives; the droplet is real (listening port, real nats-server).
import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import type { RegistryLink } from '../src/droplet.js';
import { startNatsServer, startTestAuthority, waitFor, type NatsServerHandle, type TestAuthority } from '../src/testing/index.js';
import { createTestDroplet, type TestDroplet } from './helpers.js';

let nats: NatsServerHandle;
let authority: TestAuthority;
const started: TestDroplet[] = [];

beforeAll(async () => {
  nats = await startNatsServer();
  authority = await startTestAuthority();
});
afterAll(async () => {
  for (const d of started) await d.stop();
  await authority?.close();
  await nats?.stop({ removeStore: true });
});

/** A fresh TCP connection each time (no keep-alive pool), so "refused" means refused. */
function freshGet(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

async function startDroplet(extra: { registry?: RegistryLink } = {}) {
  const order: string[] = [];
  const exit = jest.fn((code: number) => void order.push(`exit(${code})`));
  let slowStarted = 0;
  const droplet = createTestDroplet({ env: { NATS_URL: nats.url, ...authority.env() }, exit, onSlowStart: () => slowStarted++, ...extra });
  started.push(droplet);
  const { url } = await droplet.start({ port: 0 });
  const admin = { Authorization: `Bearer ${authority.mint({ scopes: ['admin'] })}`, 'Content-Type': 'application/json' };
  const read = { Authorization: `Bearer ${authority.mint({ scopes: ['read'] })}` };
  return { droplet, url, exit, order, admin, read, slowStarted: () => slowStarted };
}

describe('POST /shutdown', () => {
  it('stops accepting, drains the in-flight request, deregisters, closes NATS, then exits 0', async () => {
    const registryStop = jest.fn(async (_o?: { deregister?: boolean }) => undefined);
    const registry: RegistryLink = {
      start: () => undefined,
      stop: registryStop,
      status: () => ({ reachable: true, registered: true }),
      upsertRecord: async () => {
        throw new Error('unused');
      },
      removeRecord: async () => undefined,
      list: async () => [],
      get: async () => undefined,
      token: async () => 't',
    };
    const t = await startDroplet({ registry });
    const bus = t.droplet.ctx.bus;
    expect(bus.isConnected()).toBe(true);

    const slow = fetch(`${t.url}/slow?ms=800`, { headers: t.read }).then(async (r) => {
      t.order.push('slow answered');
      return { status: r.status, body: (await r.json()) as { slept_ms: number } };
    });
    await waitFor('the slow request to be in flight', () => t.slowStarted() === 1, 5000);

    const res = await fetch(`${t.url}/shutdown`, {
      method: 'POST',
      headers: t.admin,
      body: JSON.stringify({ reason: 'test drain', delay_seconds: 0 }),
    });
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({ status: 'shutting_down', delay_seconds: 0, reason: 'test drain' });

    // While draining: new connections are refused, and exit has not been called.
    await waitFor(
      'the listener to close',
      async () =>
        freshGet(`${t.url}/version`).then(
          () => false,
          (e: NodeJS.ErrnoException) => e.code === 'ECONNREFUSED',
        ),
      3000,
    );
    expect(t.exit).not.toHaveBeenCalled();

    const answered = await slow;
    expect(answered).toEqual({ status: 200, body: { slept_ms: 800 } });
    await waitFor('exit to be called', () => t.exit.mock.calls.length > 0, 5000);
    expect(t.exit).toHaveBeenCalledTimes(1);
    expect(t.exit).toHaveBeenCalledWith(0);
    expect(t.order).toEqual(['slow answered', 'exit(0)']);
    expect(registryStop).toHaveBeenCalledWith({ deregister: true });
    expect(bus.nc.isClosed()).toBe(true);
    expect(t.droplet.health().status).toBe('inactive');
  });

  it('honours delay_seconds before it starts draining', async () => {
    const t = await startDroplet();
    const res = await fetch(`${t.url}/shutdown`, { method: 'POST', headers: t.admin, body: JSON.stringify({ delay_seconds: 0.5 }) });
    expect(res.status).toBe(202);
    const at = Date.now();
    expect((await freshGet(`${t.url}/version`)).status).toBe(200);
    await waitFor('exit to be called', () => t.exit.mock.calls.length > 0, 5000);
    expect(Date.now() - at).toBeGreaterThanOrEqual(400);
    expect(t.exit).toHaveBeenCalledWith(0);
  });

  it.each([{ delay_seconds: -1 }, { delay_seconds: 301 }, { delay_seconds: 'soon' }, { reason: 'x'.repeat(501) }])(
    'refuses %j with 400 and keeps running',
    async (body) => {
      const t = await startDroplet();
      const res = await fetch(`${t.url}/shutdown`, { method: 'POST', headers: t.admin, body: JSON.stringify(body) });
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('INVALID_REQUEST');
      expect(t.exit).not.toHaveBeenCalled();
      expect(t.droplet.health().status).toBe('active');
    },
  );
});

describe('POST /emergency-stop', () => {
  it('exits at once, without waiting for in-flight requests', async () => {
    const t = await startDroplet();
    const slow = fetch(`${t.url}/slow?ms=2000`, { headers: t.read }).then(
      (r) => r.status,
      () => 'aborted',
    );
    await waitFor('the slow request to be in flight', () => t.slowStarted() === 1, 5000);
    const at = Date.now();
    const res = await fetch(`${t.url}/emergency-stop`, { method: 'POST', headers: t.admin });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'stopping' });
    await waitFor('exit to be called', () => t.exit.mock.calls.length > 0, 1000);
    expect(Date.now() - at).toBeLessThan(500);
    expect(t.exit).toHaveBeenCalledTimes(1);
    expect(t.order).toEqual([expect.stringMatching(/^exit\(\d\)$/)]);
    // A real process.exit would end here; the fake one lets the slow request finish so the test can clean up.
    await slow;
  });

  it('needs the admin scope', async () => {
    const t = await startDroplet();
    const res = await fetch(`${t.url}/emergency-stop`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${authority.mint({ scopes: ['write'] })}` },
    });
    expect(res.status).toBe(403);
    expect(t.exit).not.toHaveBeenCalled();
  });
});
