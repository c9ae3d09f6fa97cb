import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Bus } from '@droplet-mesh/udc-kit';
import { freePort, startNatsServer, waitFor, type NatsServerHandle } from '@droplet-mesh/udc-kit/testing';
import { startDropletProcess, type DropletProcess } from '../support/processes.js';
import { ADMIN_KEY, getJson, operatorToken, postJson } from '../support/registry-api.js';

// NATS + registry + two droplets, each its own process.
let nats: NatsServerHandle;
let registry: DropletProcess;
let alpha: DropletProcess;
let beta: DropletProcess;
let bus: Bus;
const events: Array<{ subject: string; id: string; at: number }> = [];
let registryEnv: Record<string, string>;
let betaEnv: Record<string, string>;
let token: string;

const status = async (id: string) => (await getJson(`${registry.url}/droplets/${id}`, token)).body.droplet?.status;

beforeAll(async () => {
  nats = await startNatsServer();
  bus = await Bus.connect({ url: nats.url, name: 'e2e-listener' });
  bus.nc.subscribe('registry.droplet.>', {
    callback: (_e, m) => {
      events.push({ subject: m.subject, id: m.json<any>().droplet?.id, at: Date.now() });
    },
  });
  registryEnv = { PORT: String(await freePort()), NATS_URL: nats.url, REGISTRY_ADMIN_KEY: ADMIN_KEY, LIVENESS_TICK_MS: '100' };
  registry = await startDropletProcess('registry', registryEnv);
  token = await operatorToken(registry.url);
  const dropletEnv = (name: string, port: number) => ({
    PORT: String(port),
    NATS_URL: nats.url,
    REGISTRY_URL: registry.url,
    REGISTRY_KEY: ADMIN_KEY,
    HEARTBEAT_INTERVAL_S: '0.3',
    EXAMPLE_NAME: name,
  });
  alpha = await startDropletProcess('example', dropletEnv('alpha', await freePort()), { name: 'alpha' });
  betaEnv = dropletEnv('beta', await freePort());
  beta = await startDropletProcess('example', betaEnv, { name: 'beta' });
}, 90_000);

afterAll(async () => {
  for (const p of [alpha, beta, registry]) await p?.stop();
  await bus?.close();
  await nats?.stop({ removeStore: true });
});

describe('registry with droplets as separate processes', () => {
  it('both droplets register and stay active by heartbeating', async () => {
    await waitFor('alpha and beta active', async () => (await status('alpha')) === 'active' && (await status('beta')) === 'active', 15_000);
    await new Promise((r) => setTimeout(r, 1200)); // > 3 intervals
    expect(await status('alpha')).toBe('active');
    expect(await status('beta')).toBe('active');
  });

  it('alpha /sends a command to beta over NATS and gets its reply', async () => {
    const res = await postJson(`${alpha.url}/send`, token, {
      target: 'beta',
      message_type: 'command',
      payload: { action: 'echo', text: 'hi beta' },
      trace_id: 'e2e-trace-1',
    });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ received: true, trace_id: 'e2e-trace-1', result: 'success', data: { echo: 'hi beta' } });
    await waitFor('trace id in both logs', () => alpha.output().includes('e2e-trace-1') && beta.output().includes('e2e-trace-1'), 5000);
  });

  it('kill -9 beta: stale, then down within the window, with events; restarted, active again', async () => {
    const killedAt = Date.now();
    await beta.kill9();
    await waitFor('beta stale', async () => (await status('beta')) === 'stale', 5000);
    await waitFor('beta down', async () => (await status('beta')) === 'down', 8000);
    const downAfter = Date.now() - killedAt;
    // 10 missed intervals of 0.3 s = 3 s, plus a liveness tick and one interval of slack.
    expect(downAfter).toBeLessThan(3000 + 100 + 300 + 1500);
    const betaEvents = () => events.filter((e) => e.id === 'beta').map((e) => e.subject);
    // The status reads `down` as the registry publishes the event: it may reach us a moment later.
    await waitFor('down event', () => betaEvents().includes('registry.droplet.down'), 2000);
    expect(betaEvents()).toEqual(
      expect.arrayContaining(['registry.droplet.registered', 'registry.droplet.stale', 'registry.droplet.down']),
    );
    beta = await startDropletProcess('example', betaEnv, { name: 'beta' });
    await waitFor('beta active again', async () => (await status('beta')) === 'active', 10_000);
    await waitFor('recovered event', () => betaEvents().includes('registry.droplet.recovered'), 5000);
  });

  it('restarting the registry loses no record', async () => {
    const before = (await getJson(`${registry.url}/droplets`, token)).body.items.map((r: { id: string }) => r.id).sort();
    expect(before).toEqual(expect.arrayContaining(['alpha', 'beta', 'registry']));
    await registry.stop();
    registry = await startDropletProcess('registry', registryEnv);
    // Tokens signed before the restart still verify: the key lives in KV.
    const after = (await getJson(`${registry.url}/droplets`, token)).body.items.map((r: { id: string }) => r.id).sort();
    expect(after).toEqual(before);
    await waitFor('alpha still active after the restart', async () => (await status('alpha')) === 'active', 5000);
  });
});
