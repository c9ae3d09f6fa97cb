import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Bus } from '@droplet-mesh/udc-kit';
import { freePort, startNatsServer, waitFor, type NatsServerHandle } from '@droplet-mesh/udc-kit/testing';
// The real registry droplet, in this process: records over HTTP, events on NATS.
import { createRegistryDroplet } from '@droplet-mesh/registry/dist/app.js';
import { createHealthMonitor, type HealthMonitor } from '../src/health-monitor.js';
import type { Incident, Observation } from '../src/domain/types.js';
import { startCommandRecorder, startFakeDeployer } from './helpers/fake-droplets.js';
import { startTarget, type Proc } from './helpers/processes.js';
import { quiet } from './helpers/quiet.js';

// Three monitors (k = 3) whose targets come from a real registry, real target processes,
// and stand-in deployer and multi-cloud-manager droplets that count what they are asked.
// TARGET_REFRESH_MS is a minute: anything a monitor learns sooner, it learned by reading
// the record fresh, as it must before declaring a target down or recovering it.
const ADMIN_KEY = 'registry-admin-key-for-tests-0123456789';
const MONITOR_IDS = ['m1', 'm2', 'm3'];

let nats: NatsServerHandle;
let registry: Awaited<ReturnType<typeof createRegistryDroplet>>['droplet'];
let registryUrl: string;
let bus: Bus;
let deployer: Awaited<ReturnType<typeof startCommandRecorder>>;
let multiCloud: Awaited<ReturnType<typeof startCommandRecorder>>;
const monitors: HealthMonitor[] = [];
const procs: Proc[] = [];
const observations: Array<Observation & { received: number }> = [];
const events: Array<{ type: string; incident: Incident; at: number }> = [];
/** What the deployer does on `restart`, per target. */
const onRestart = new Map<string, () => Promise<void>>();
const hostAgent = { port: 0, proc: undefined as Proc | undefined };
let appV1: Awaited<ReturnType<typeof target>>;
let leavers: Record<'a' | 'b', Awaited<ReturnType<typeof target>>>;

async function target(port?: number): Promise<{ port: number; url: string; proc: Proc }> {
  const p = port ?? (await freePort());
  const proc = await startTarget(p);
  procs.push(proc);
  return { port: p, url: `http://127.0.0.1:${p}`, proc };
}

async function registryCall(method: string, path: string, body?: unknown): Promise<void> {
  const res = await fetch(`${registryUrl}${path}`, {
    method,
    headers: { 'x-registry-key': ADMIN_KEY, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  if (!res.ok) throw new Error(`${method} ${path}: HTTP ${res.status} ${await res.text()}`);
}
/** As the deployer or multi-cloud-manager does: a record it stewards (no heartbeats of its own). */
const register = (record: Record<string, unknown>) => registryCall('POST', '/droplets', { steward: 'deployer', ...record });
const deregister = (id: string) => registryCall('DELETE', `/droplets/${id}`);

const opened = (id: string) => events.filter((e) => e.type === 'opened' && e.incident.target_id === id);
const resolved = (id: string) => events.filter((e) => e.type === 'resolved' && e.incident.target_id === id);
const sawOk = (monitor: string, id: string, url: string, since = 0) =>
  observations.some((o) => o.monitor_id === monitor && o.target_id === id && o.url === `${url}/health` && o.ok && o.received >= since);
const dump = () => JSON.stringify(events.map((e) => [e.type, e.incident.target_id, e.incident.timeline.map((t) => t.event)]));

beforeAll(async () => {
  nats = await startNatsServer();
  const registryPort = await freePort();
  registryUrl = `http://127.0.0.1:${registryPort}`;
  ({ droplet: registry } = await createRegistryDroplet({
    env: {
      PORT: String(registryPort),
      NATS_URL: nats.url,
      REGISTRY_ADMIN_KEY: ADMIN_KEY,
      LIVENESS_TICK_MS: '200',
      HEARTBEAT_INTERVAL_S: '1',
      AUTH_RATE_LIMIT_PER_MIN: '1000',
      LOG_LEVEL: 'warn',
    },
    logDestination: quiet(),
  }));
  await registry.start({ port: registryPort, host: '127.0.0.1' });

  // They verify the monitors' tokens (every NATS message carries one) with the registry's keys.
  deployer = await startFakeDeployer({
    natsUrl: nats.url,
    env: { REGISTRY_URL: registryUrl },
    restart: async (id) => onRestart.get(id)?.(),
  });
  multiCloud = await startCommandRecorder({
    natsUrl: nats.url,
    env: { REGISTRY_URL: registryUrl },
    name: 'multi-cloud-manager',
    action: 'instance.reboot',
    act: async () => {
      if (!hostAgent.proc?.exited()) return;
      hostAgent.proc = (await target(hostAgent.port)).proc;
    },
  });
  bus = await Bus.connect({ url: nats.url, name: 'registry-targets-test' });
  bus.nc.subscribe('health-monitor.observations', {
    callback: (_e, m) => void observations.push(...m.json<Observation[]>().map((o) => ({ ...o, received: Date.now() }))),
  });
  bus.nc.subscribe('health-monitor.incident.*', {
    callback: (_e, m) => void events.push({ type: m.subject.split('.').pop()!, incident: m.json<Incident>(), at: Date.now() }),
  });

  // Every record exists before the monitors start: with a one-minute refresh they list once.
  const [app, leaverA, leaverB, agent] = await Promise.all([target(), target(), target(), target()]);
  appV1 = app;
  leavers = { a: leaverA, b: leaverB };
  hostAgent.port = agent.port;
  hostAgent.proc = agent.proc;
  const nothing = await freePort();
  await register({
    id: 'app',
    url: app.url,
    health_path: '/health',
    capabilities: ['app'],
    metadata: { project: 'p', service: 'app', environment: 'prod' },
  });
  await register({ id: 'leaver-a', url: leaverA.url, health_path: '/health' });
  await register({ id: 'leaver-b', url: leaverB.url, health_path: '/health', metadata: { recovery: ['alert'] } });
  // As multi-cloud-manager registers a server: http://<ip>, no port, no health path.
  await register({
    id: 'host-bare',
    kind: 'host',
    steward: 'multi-cloud-manager',
    url: `http://127.0.0.1:${nothing}`,
    metadata: { provider: 'hetzner', instance_id: 'n0', recovery: ['reboot', 'alert'] },
  });
  // A host running a health agent says where it answers.
  await register({
    id: 'host-agent',
    kind: 'host',
    steward: 'multi-cloud-manager',
    url: agent.url,
    health_path: '/health',
    metadata: { provider: 'hetzner', instance_id: 'n1' },
  });

  for (const id of MONITOR_IDS) {
    const m = createHealthMonitor({
      env: {
        PORT: '0',
        NATS_URL: nats.url,
        REGISTRY_URL: registryUrl,
        REGISTRY_KEY: ADMIN_KEY,
        DROPLET_ID: `health-monitor-${id}`,
        HEARTBEAT_INTERVAL_S: '1',
        MONITOR_ID: id,
        MONITORS_PER_TARGET: '3',
        CHECK_INTERVAL_MS: '1000',
        CHECK_TIMEOUT_MS: '500',
        RECHECK_DELAY_MS: '200',
        FAILS_TO_SUSPECT: '2',
        OKS_TO_RECOVER: '2',
        MEMBER_HEARTBEAT_MS: '500',
        MEMBER_TTL_MS: '2000',
        LEASE_TTL_MS: '3000',
        RECOVERY_MAX_ATTEMPTS: '2',
        RECOVERY_BACKOFF_MS: '2000',
        RECOVERY_TIMEOUT_MS: '2000',
        TARGET_REFRESH_MS: '60000',
        DIGEST_INTERVAL_MIN: '0',
        LOG_LEVEL: 'warn',
      },
      logDestination: quiet(),
    });
    monitors.push(m);
    await m.start({ host: '127.0.0.1' });
  }
  await waitFor(
    'every monitor checks app, the leavers and the host agent and finds them up',
    () =>
      MONITOR_IDS.every(
        (m) =>
          sawOk(m, 'app', appV1.url) &&
          sawOk(m, 'leaver-a', leavers.a.url) &&
          sawOk(m, 'leaver-b', leavers.b.url) &&
          sawOk(m, 'host-agent', `http://127.0.0.1:${hostAgent.port}`),
      ),
    15_000,
  );
}, 60_000);

afterAll(async () => {
  for (const m of monitors) await m.stop();
  for (const p of procs) await p.stop();
  await deployer?.stop();
  await multiCloud?.stop();
  await bus?.close();
  await registry?.stop();
  await nats?.stop({ removeStore: true });
}, 60_000);

describe('targets from the registry', () => {
  it('a redeploy to a new port, the old process killed at once, is no outage: no incident, no restart', async () => {
    const v2 = await target();
    await register({
      id: 'app',
      url: v2.url,
      health_path: '/health',
      capabilities: ['app'],
      metadata: { project: 'p', service: 'app', environment: 'prod' },
    });
    const killedAt = Date.now();
    await appV1.proc.kill9();
    await waitFor(
      'every monitor checks the new address and finds it up',
      () => MONITOR_IDS.every((m) => sawOk(m, 'app', v2.url)),
      8000,
    ).catch((e) => {
      throw new Error(`${(e as Error).message}\n${dump()}`);
    });
    // Well within the one-minute refresh: they read the record fresh.
    expect(Date.now() - killedAt).toBeLessThan(8000);
    // Long enough for a wrong verdict on the old address (down within ~2 s) to show.
    await new Promise((r) => setTimeout(r, 1500));
    expect(opened('app')).toEqual([]);
    expect(deployer.for('app')).toEqual([]);
    for (const m of monitors) expect(m.engine!.target('app')?.url).toBe(v2.url);

    // A real outage still opens an incident (how soon is bench/servers' to measure). This
    // deployer brings the app back on yet another port; the monitors follow the record, and the
    // leader re-reads it before its next step: no second restart.
    onRestart.set('app', async () => {
      const v3 = await target();
      await register({
        id: 'app',
        url: v3.url,
        health_path: '/health',
        capabilities: ['app'],
        metadata: { project: 'p', service: 'app', environment: 'prod' },
      });
    });
    const downAt = Date.now();
    await v2.proc.kill9();
    await waitFor('app incident opened', () => opened('app').length === 1, 10_000);
    expect(Date.parse(opened('app')[0].incident.opened_at)).toBeGreaterThanOrEqual(downAt);
    await waitFor('app incident resolved', () => resolved('app').length === 1, 15_000).catch((e) => {
      throw new Error(`${(e as Error).message}\n${dump()}`);
    });
    const timeline = resolved('app')[0].incident.timeline.map((t) => t.event);
    expect(timeline.filter((e) => e === 'restart.requested')).toHaveLength(1);
    // Either the new address proved itself first, or the leader saw the newer record before its next step.
    expect(timeline.some((e) => e === 'resolved' || e === 'superseded')).toBe(true);
    expect(deployer.for('app')).toHaveLength(1);
    expect(opened('app')).toHaveLength(1);
  }, 40_000);

  it('a record that moves is followed at once (registry event, no listing); the old port refusing then opens nothing, restarts nothing', async () => {
    // Registered after the monitors started: with a one-minute refresh only the event brings it.
    const meta = { project: 'p', service: 'mover', environment: 'prod' };
    const v1 = await target();
    await register({ id: 'mover', url: v1.url, health_path: '/health', metadata: { ...meta, deployment_id: 'd1' } });
    await waitFor('every monitor checks the new record', () => MONITOR_IDS.every((m) => sawOk(m, 'mover', v1.url)), 5000);
    // As the deployer redeploys: the new address is registered while the old one still serves.
    const v2 = await target();
    const movedAt = Date.now();
    await register({ id: 'mover', url: v2.url, health_path: '/health', metadata: { ...meta, deployment_id: 'd2' } });
    await waitFor(
      'every monitor checks the new address',
      () =>
        MONITOR_IDS.every(
          (m) => monitors[MONITOR_IDS.indexOf(m)].engine!.target('mover')?.url === v2.url && sawOk(m, 'mover', v2.url, movedAt),
        ),
      3000,
    );
    // The old port now refuses (the deployer drained and stopped it).
    await v1.proc.kill9();
    // Long enough for a verdict on the old address (FAILS_TO_SUSPECT 2 at 1 s) to show.
    await new Promise((r) => setTimeout(r, 3000));
    expect(opened('mover')).toEqual([]);
    expect(deployer.for('mover')).toEqual([]);
    const late = observations.filter((o) => o.target_id === 'mover' && o.url === `${v1.url}/health` && o.received > movedAt + 1500);
    expect(late).toEqual([]);
  }, 30_000);

  it('a target that left the registry opens nothing, and an open incident of one resolves with a note', async () => {
    await Promise.all([leavers.a.proc.kill9(), deregister('leaver-a'), leavers.b.proc.kill9()]);
    await waitFor('leaver-b incident opened', () => opened('leaver-b').length === 1, 5000);
    await deregister('leaver-b');
    await waitFor('leaver-b incident resolved', () => resolved('leaver-b').length === 1, 8000);
    const resolution = resolved('leaver-b')[0].incident.timeline.at(-1)!;
    expect(resolution).toMatchObject({ event: 'resolved', detail: { note: 'target left the registry' } });
    await waitFor(
      'no monitor checks either leaver any more',
      () => monitors.every((m) => !m.engine!.target('leaver-a') && !m.engine!.target('leaver-b')),
      5000,
    );
    expect(opened('leaver-a')).toEqual([]);
    expect(deployer.for('leaver-a')).toEqual([]);
    expect(deployer.for('leaver-b')).toEqual([]);
  }, 30_000);

  it('a host is checked only where its record says it answers, and recovered by reboot, never restart', async () => {
    // The bare host (no health path) is no target: nobody checks it, nothing opens.
    for (const m of monitors) expect(m.engine!.target('host-bare')).toBeUndefined();
    expect(observations.filter((o) => o.target_id === 'host-bare')).toEqual([]);
    expect(monitors[0].engine!.target('host-agent')).toMatchObject({ kind: 'host', recovery: ['reboot', 'alert'] });

    await hostAgent.proc!.kill9();
    await waitFor('host-agent incident opened', () => opened('host-agent').length === 1, 5000);
    await waitFor('host-agent rebooted and resolved', () => resolved('host-agent').length === 1, 15_000).catch((e) => {
      throw new Error(`${(e as Error).message}\n${dump()}`);
    });
    expect(multiCloud.for('host-agent')).toHaveLength(1);
    expect(multiCloud.for('host-agent')[0].payload).toMatchObject({
      action: 'instance.reboot',
      provider: 'hetzner',
      instance_id: 'n1',
      target_id: 'host-agent',
    });
    expect(deployer.for('host-agent')).toEqual([]);
    expect(events.filter((e) => e.incident.target_id === 'host-bare')).toEqual([]);
  }, 30_000);
});
