import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import request from 'supertest';
import { Bus, type RegistryLink, type RegistryRecord } from '@droplet-mesh/udc-kit';
import {
  freePort,
  startNatsServer,
  startTestAuthority,
  waitFor,
  type NatsServerHandle,
  type TestAuthority,
} from '@droplet-mesh/udc-kit/testing';
import { UndiciProbe } from '../src/checks/http-checker.js';
import { configSchema } from '../src/config.js';
import type { Observation } from '../src/domain/types.js';
import { createHealthMonitor, type HealthMonitor } from '../src/health-monitor.js';
import { startTarget, type Proc } from './helpers/processes.js';
import { quiet } from './helpers/quiet.js';

// Finding 6 of the zero-trust review: the health-monitor fetched any URL a registry
// record named (cloud metadata, the mesh's own ports) and showed what came back. A record
// whose address the policy refuses is not a target: never fetched, never listed, no
// incident, no recovery. The mesh's own droplets, registered as themselves, stay targets.

let nats: NatsServerHandle;
let authority: TestAuthority;
let bus: Bus;
let app: Proc;
let appPort: number;
let monitor: HealthMonitor;
const observations: Observation[] = [];
/** The DNS the monitor sees (tests re-point names). */
const dns = new Map<string, string[]>();
const resolve = async (host: string) => {
  const a = dns.get(host);
  if (!a) throw Object.assign(new Error(`cannot resolve ${host}`), { code: 'ENOTFOUND' });
  return a;
};

function record(r: Partial<RegistryRecord> & { id: string; url: string }): RegistryRecord {
  const now = new Date().toISOString();
  return {
    name: r.id,
    kind: 'service',
    capabilities: [],
    steward: 'deployer',
    status: 'active',
    registered_at: now,
    updated_at: now,
    health_path: '/health',
    ...r,
  } as RegistryRecord;
}

let records: RegistryRecord[] = [];
const registry: RegistryLink = {
  start: () => undefined,
  stop: async () => undefined,
  status: () => ({ reachable: true, registered: true }),
  upsertRecord: async () => {
    throw new Error('not used');
  },
  removeRecord: async () => undefined,
  list: async () => records,
  get: async (id) => records.find((r) => r.id === id),
  token: async () => 'unused',
};

const REFUSED = ['meta-ip', 'meta-mapped', 'meta-v6', 'meta-name', 'registry-port', 'nats-port', 'squatted-registry'];

beforeAll(async () => {
  nats = await startNatsServer();
  authority = await startTestAuthority();
  appPort = await freePort();
  app = await startTarget(appPort);
  dns.set('metadata.evil.test', ['169.254.169.254']);
  records = [
    record({ id: 'app', url: `http://127.0.0.1:${appPort}` }),
    record({ id: 'meta-ip', url: 'http://169.254.169.254', health_path: '/latest/meta-data/iam/security-credentials/' }),
    record({ id: 'meta-mapped', url: 'http://[::ffff:169.254.169.254]' }),
    record({ id: 'meta-v6', url: 'http://[fd00:ec2::254]' }),
    record({ id: 'meta-name', url: 'http://metadata.evil.test' }),
    record({ id: 'registry-port', url: 'http://127.0.0.1:8000', health_path: '/droplets' }),
    record({ id: 'nats-port', url: 'http://127.0.0.1:4222', steward: 'someone' }),
    // The registry's id, but registered by another droplet: not the registry itself.
    record({ id: 'squatted-registry', url: 'http://localhost:8000', steward: 'deployer' }),
    // A mesh droplet registered as itself (its own key): its own port is its address.
    record({ id: 'registry', url: 'http://127.0.0.1:8000', steward: 'registry' }),
  ];
  dns.set('localhost', ['127.0.0.1']);
  bus = await Bus.connect({ url: nats.url, name: 'policy-test' });
  bus.nc.subscribe('health-monitor.observations', { callback: (_e, m) => void observations.push(...m.json<Observation[]>()) });
  monitor = createHealthMonitor({
    env: {
      PORT: '0',
      NATS_URL: nats.url,
      MONITORS_PER_TARGET: '1',
      CHECK_INTERVAL_MS: '300',
      CHECK_TIMEOUT_MS: '300',
      TARGET_REFRESH_MS: '300',
      DIGEST_INTERVAL_MIN: '0',
      RECOVERY_POLICY: 'alert',
      ...authority.env(),
    },
    registry,
    resolve,
    logDestination: quiet(),
  } as Parameters<typeof createHealthMonitor>[0]);
  await monitor.start();
}, 60_000);

afterAll(async () => {
  await monitor?.stop();
  await bus?.close();
  await app?.stop();
  await authority?.close();
  await nats?.stop({ removeStore: true });
});

describe('registry records as check targets', () => {
  it('refused addresses are not targets: never checked, never listed; the app and the self-registered registry are', async () => {
    await waitFor('the app checked twice', () => observations.filter((o) => o.target_id === 'app' && o.ok).length >= 2, 20_000, 50);
    await waitFor('the registry record checked', () => observations.some((o) => o.target_id === 'registry'), 20_000, 50);
    const checked = new Set(observations.map((o) => o.target_id));
    for (const id of REFUSED) expect(checked.has(id)).toBe(false);
    const res = await request(monitor.droplet.app)
      .get('/targets?per_page=100')
      .set({ Authorization: `Bearer ${authority.mint({ scopes: ['read'] })}` });
    expect(res.status).toBe(200);
    const ids = res.body.items.map((t: { id: string }) => t.id).sort();
    expect(ids).toEqual(['app', 'registry']);
    const one = await request(monitor.droplet.app)
      .get('/targets/meta-ip')
      .set({ Authorization: `Bearer ${authority.mint({ scopes: ['read'] })}` });
    expect(one.status).toBe(404);
    expect(JSON.stringify(one.body)).not.toContain('169.254');
  }, 30_000);

  it('a name that resolved to an allowed address at listing and to a metadata address at connect time is refused when connecting', async () => {
    const probe = new UndiciProbe({ resolve });
    try {
      dns.set('later.test', ['169.254.169.254']);
      const out = await probe.get(`http://later.test:${appPort}/health`, 1000, 'app');
      expect(out).toMatchObject({ ok: false, error: 'ADDRESS_REFUSED' });
      expect(out.status_code).toBeUndefined();
      dns.set('fine.test', ['127.0.0.1']);
      expect(await probe.get(`http://fine.test:${appPort}/health`, 1000, 'app')).toMatchObject({ ok: true, status_code: 200 });
      expect(await probe.get('http://127.0.0.1:8000/health', 1000, 'app')).toMatchObject({ ok: false, error: 'ADDRESS_REFUSED' });
      expect(await probe.get('http://[::ffff:169.254.169.254]/', 1000, 'droplet')).toMatchObject({ ok: false, error: 'ADDRESS_REFUSED' });
      // A droplet registered as itself may be at a mesh port; metadata stays refused for it too.
      expect((await probe.get('http://127.0.0.1:8000/health', 300, 'droplet')).error).not.toBe('ADDRESS_REFUSED');
      // Static targets and control checks are operator configuration: not guarded.
      expect(await probe.get(`http://127.0.0.1:${appPort}/health`, 1000)).toMatchObject({ ok: true });
    } finally {
      await probe.close();
    }
  });

  it('CHECK_ALLOW names exceptions; a bad value stops start-up with the variable named', () => {
    const base = { NATS_URL: nats.url, ...authority.env() };
    expect(configSchema.parse({ ...base, CHECK_ALLOW: '169.254.169.254:80' }).CHECK_ALLOW).toEqual([{ host: '169.254.169.254', port: 80 }]);
    const bad = configSchema.safeParse({ ...base, CHECK_ALLOW: 'nope' });
    expect(bad.success).toBe(false);
    expect(JSON.stringify(bad.error?.issues)).toContain('CHECK_ALLOW');
  });
});
