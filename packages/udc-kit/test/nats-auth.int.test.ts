// The mesh's NATS authorization against a real nats-server: each droplet's user reaches
// exactly its own subjects and buckets. Each attack here succeeded on an open server.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Kvm } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Bus } from '../src/bus.js';
import { MESH_DROPLETS, meshNatsUsers, OWNED_BUCKETS, renderNatsAuthorization } from '../src/nats-auth.js';
import { startNatsServer, waitFor, type NatsServerHandle } from '../src/testing/index.js';

const password = (name: string) => `pw-${name}-0123456789abcdef`;
let nats: NatsServerHandle;
const buses = new Map<string, Bus>();
const bus = (name: string) => buses.get(name)!;

/** An action NATS refuses: a permissions error, or (for a publish the server drops) no effect within the timeout. */
async function refused(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'allowed';
  } catch (err) {
    return String((err as Error).message);
  }
}

beforeAll(async () => {
  nats = await startNatsServer({ config: renderNatsAuthorization(meshNatsUsers(password)) });
  for (const name of MESH_DROPLETS)
    buses.set(name, await Bus.connect({ url: nats.url, name, user: name, pass: password(name), connectTimeoutMs: 10_000 }));
}, 60_000);

afterAll(async () => {
  for (const b of buses.values()) await b.close();
  await nats?.stop({ removeStore: true });
});

describe('NATS authorization', () => {
  it('refuses a connection without credentials, or with another droplet\u2019s password', async () => {
    expect(await refused(connect({ servers: nats.url, timeout: 2000, reconnect: false }))).toMatch(/auth/i);
    expect(
      await refused(connect({ servers: nats.url, user: 'deployer', pass: password('registry'), timeout: 2000, reconnect: false })),
    ).toMatch(/auth/i);
  });

  it('lets each droplet create, write, read, watch and list its own buckets', async () => {
    for (const [name, buckets] of Object.entries(OWNED_BUCKETS)) {
      for (const bucket of buckets) {
        const kv = await bus(name).kv(bucket);
        await kv.put('probe', 'v1');
        expect((await kv.get('probe'))?.string()).toBe('v1');
        const seen: string[] = [];
        const watch = await kv.watch({ key: 'probe' });
        void (async () => {
          for await (const e of watch) seen.push(e.string());
        })();
        await kv.put('probe', 'v2');
        await waitFor(`${name} watching ${bucket}`, () => seen.includes('v2'), 5000);
        watch.stop();
        const keys: string[] = [];
        for await (const k of await kv.keys()) keys.push(k);
        expect(keys).toContain('probe');
        await kv.delete('probe');
      }
    }
  }, 60_000);

  it('keeps every other droplet out of the registry\u2019s key bucket (no planting a signing key)', async () => {
    await bus('registry').kv('registry-keys');
    for (const name of MESH_DROPLETS.filter((n) => n !== 'registry')) {
      const kv = await new Kvm(bus(name).nc).open('registry-keys');
      expect(await refused(kv.put('planted', 'attacker-key'))).toMatch(/permission|timeout/i);
      expect(await refused(kv.get('current'))).toMatch(/permission|timeout/i);
    }
    const own = await bus('registry').kv('registry-keys');
    expect(await own.get('planted')).toBeNull();
  }, 60_000);

  it('lets every droplet read the revocation bucket, and only the registry write it', async () => {
    const byRegistry = await bus('registry').kv('registry-revocations');
    await byRegistry.put('tok-1', 'revoked');
    const deployerView = await new Kvm(bus('deployer').nc).open('registry-revocations');
    expect((await deployerView.get('tok-1'))?.string()).toBe('revoked');
    expect(await refused(deployerView.put('tok-1', 'restored'))).toMatch(/permission|timeout/i);
    expect((await byRegistry.get('tok-1'))?.string()).toBe('revoked');
  }, 30_000);

  it('lets a droplet heartbeat only as itself', async () => {
    const got: string[] = [];
    const sub = bus('registry').nc.subscribe('registry.heartbeat.*', { callback: (_e, m) => void got.push(m.subject) });
    await bus('registry').nc.flush();
    bus('deployer').publishJson('registry.heartbeat.proxy-manager', { status: 'active' });
    bus('deployer').publishJson('registry.heartbeat.deployer', { status: 'active' });
    await bus('deployer').nc.flush();
    await waitFor('the deployer\u2019s own heartbeat', () => got.includes('registry.heartbeat.deployer'), 5000);
    sub.unsubscribe();
    expect(got).not.toContain('registry.heartbeat.proxy-manager');
  });

  it('keeps a droplet from serving (stealing) another droplet\u2019s messages or reading its replies', async () => {
    const stolen: string[] = [];
    const thief = bus('deployer').nc.subscribe('udc.proxy-manager.message', { callback: (_e, m) => void stolen.push(m.subject) });
    const snoop = bus('deployer').nc.subscribe('_INBOX_health-monitor.>', { callback: (_e, m) => void stolen.push(m.subject) });
    const real = bus('proxy-manager').nc.subscribe('udc.proxy-manager.message', { callback: (_e, m) => void m.respond('ok') });
    await bus('proxy-manager').nc.flush();
    const reply = await bus('health-monitor').nc.request('udc.proxy-manager.message', '{}', { timeout: 2000 });
    expect(reply.string()).toBe('ok');
    await new Promise((r) => setTimeout(r, 200));
    thief.unsubscribe();
    snoop.unsubscribe();
    real.unsubscribe();
    expect(stolen).toEqual([]);
  });
});
