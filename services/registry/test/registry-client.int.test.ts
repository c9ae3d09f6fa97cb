import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { RegistryClient } from '@droplet-mesh/registry-client';
import { Bus } from '@droplet-mesh/udc-kit';
import { freePort, startNatsServer, waitFor, type NatsServerHandle } from '@droplet-mesh/udc-kit/testing';
import { createExampleDroplet } from '@droplet-mesh/example/dist/example-droplet.js';
import { ADMIN_KEY, quiet, startRegistry } from './support.js';

let nats: NatsServerHandle;
let bus: Bus;

beforeAll(async () => {
  nats = await startNatsServer();
  bus = await Bus.connect({ url: nats.url, name: 'client-test' });
}, 60_000);
afterAll(async () => {
  await bus?.close();
  await nats?.stop({ removeStore: true });
});

describe('RegistryClient against the real registry', () => {
  it('registers while the registry comes up later, heartbeats over NATS, looks up, and deregisters', async () => {
    const port = await freePort();
    const client = new RegistryClient({
      registryUrl: `http://127.0.0.1:${port}`,
      registryKey: ADMIN_KEY,
      self: { id: 'late-bird', url: 'http://127.0.0.1:1', kind: 'service', capabilities: ['sing'] },
      heartbeatIntervalS: 0.2,
      publish: (s, d) => bus.publishJson(s, d),
    });
    client.start();
    await waitFor('a failed attempt', () => client.status().last_error !== undefined, 5000);
    expect(client.status()).toMatchObject({ reachable: false, registered: false });

    const reg = await startRegistry(nats.url, { PORT: String(port), LIVENESS_TICK_MS: '50' });
    try {
      await waitFor('registration', () => client.status().registered, 15_000);
      expect(client.status().reachable).toBe(true);
      await waitFor('heartbeats', () => (reg.liveness().lastSeenOf('late-bird') ?? 0) > Date.now() - 300, 5000);
      // Heartbeats keep it active well past 3 intervals.
      await new Promise((r) => setTimeout(r, 900));
      expect(reg.store().get('late-bird')?.status).toBe('active');

      const found = await client.list({ capability: 'sing' });
      expect(found.map((r) => r.id)).toEqual(['late-bird']);
      expect((await client.get('late-bird'))?.steward).toBe('late-bird');
      expect(await client.get('nobody-here')).toBeUndefined();

      const host = await client.upsertRecord({ id: 'host-of-late-bird', url: 'http://127.0.0.1', kind: 'host' });
      expect(host.steward).toBe('late-bird');
      await client.removeRecord('host-of-late-bird');

      await client.stop();
      expect(reg.store().get('late-bird')).toBeUndefined();
    } finally {
      await client.stop({ deregister: false });
      await reg.droplet.stop();
    }
  }, 60_000);

  it('refreshes its token before expiry and keeps the cached one while the registry is away', async () => {
    let now = Date.now();
    const reg = await startRegistry(nats.url, { TOKEN_TTL_S: '600' });
    const client = new RegistryClient({
      registryUrl: reg.url,
      registryKey: ADMIN_KEY,
      self: { id: 'clock', url: 'http://127.0.0.1:1', kind: 'service' },
      now: () => now,
    });
    try {
      await client.register();
      const t1 = await client.token();
      expect(await client.token()).toBe(t1);
      now += 500_000; // past 80% of 600 s
      await new Promise((r) => setTimeout(r, 1100)); // a new iat second, so the new token differs
      const t2 = await client.token();
      expect(t2).not.toBe(t1);
      await reg.droplet.stop();
      now += 10_000;
      expect(await client.token()).toBe(t2);
    } finally {
      await client.stop({ deregister: false });
    }
  }, 30_000);

  it('after an admin removes its record (ending its droplet key), it registers again with its configured key', async () => {
    const reg = await startRegistry(nats.url, { LIVENESS_TICK_MS: '50' });
    const client = new RegistryClient({
      registryUrl: reg.url,
      registryKey: ADMIN_KEY,
      self: { id: 'removed-by-admin', url: 'http://127.0.0.1:1', kind: 'service' },
      heartbeatIntervalS: 0.2,
      publish: (s, d) => bus.publishJson(s, d),
    });
    try {
      client.start();
      await waitFor('registration', () => client.status().registered && client.dropletKey !== undefined, 10_000);
      await client.token(); // cached: the 404 that follows comes with a token that still works
      const del = await fetch(`${reg.url}/droplets/removed-by-admin`, { method: 'DELETE', headers: { 'x-registry-key': ADMIN_KEY } });
      expect(del.status).toBe(204);
      await waitFor('registered again', () => reg.store().get('removed-by-admin') !== undefined, 10_000);
      expect(reg.store().get('removed-by-admin')?.steward).toBe('removed-by-admin');
    } finally {
      await client.stop({ deregister: false });
      await reg.droplet.stop();
    }
  }, 30_000);

  it('when the registry refuses its token (revoked), it gets a new one and carries on', async () => {
    const reg = await startRegistry(nats.url);
    const client = new RegistryClient({
      registryUrl: reg.url,
      registryKey: ADMIN_KEY,
      self: { id: 'revoked-client', url: 'http://127.0.0.1:1', kind: 'service' },
    });
    try {
      await client.register();
      const t1 = await client.token();
      const jti = JSON.parse(Buffer.from(t1.split('.')[1], 'base64url').toString()).jti;
      const rev = await fetch(`${reg.url}/auth/revoke`, {
        method: 'POST',
        headers: { 'x-registry-key': ADMIN_KEY, 'content-type': 'application/json' },
        body: JSON.stringify({ jti }),
      });
      expect(rev.status).toBe(200);
      expect((await client.get('revoked-client'))?.id).toBe('revoked-client');
      expect(await client.token()).not.toBe(t1);
    } finally {
      await client.stop({ deregister: false });
      await reg.droplet.stop();
    }
  }, 30_000);

  it('a udc-kit droplet with REGISTRY_KEY registers itself, reports the registry in /health, and re-registers after the registry loses it', async () => {
    const reg = await startRegistry(nats.url, { LIVENESS_TICK_MS: '50' });
    const ex = createExampleDroplet({
      env: {
        PORT: '0',
        NATS_URL: nats.url,
        REGISTRY_URL: reg.url,
        REGISTRY_KEY: ADMIN_KEY,
        HEARTBEAT_INTERVAL_S: '0.2',
        DROPLET_ID: 'example-1',
      },
      logDestination: quiet(),
    });
    try {
      const { url } = await ex.start();
      await waitFor('example registered', () => reg.store().get('example-1')?.url === url, 10_000);
      await waitFor('registry dependency ok', () => ex.health().dependencies.some((d) => d.name === 'registry' && d.status === 'ok'), 5000);
      // The registry forgets it (an operator deleted it): the next heartbeat's 404 makes it register again.
      await reg.store().delete('example-1');
      expect(reg.store().get('example-1')).toBeUndefined();
      await waitFor('example registered again', () => reg.store().get('example-1') !== undefined, 10_000);
    } finally {
      await ex.stop();
      await reg.droplet.stop();
    }
  }, 30_000);
});
