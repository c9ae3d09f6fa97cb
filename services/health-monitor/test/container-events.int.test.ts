import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import request from 'supertest';
import { Bus } from '@droplet-mesh/udc-kit';
import {
  freePort,
  startNatsServer,
  startTestAuthority,
  waitFor,
  type NatsServerHandle,
  type TestAuthority,
} from '@droplet-mesh/udc-kit/testing';
import { createHealthMonitor, type HealthMonitor } from '../src/health-monitor.js';
import type { Incident } from '../src/domain/types.js';
import { startFakeDeployer } from './helpers/fake-droplets.js';
import { startTarget, type Proc } from './helpers/processes.js';
import { quiet } from './helpers/quiet.js';

// The deployer sees an app container die (Docker's `die` event) before any check can: the
// monitor opens the incident from its event, leaves the restart to it, and resolves once its
// own checks see the app serve again. Checks every 10 s here, so they cannot be what acts.
const TARGET = 'app-shop-web-prod';
let nats: NatsServerHandle;
let authority: TestAuthority;
let bus: Bus;
let target: Proc;
let targetPort: number;
let other: Proc;
let monitor: HealthMonitor;
let deployer: Awaited<ReturnType<typeof startFakeDeployer>>;
const events: Array<{ subject: string; incident: Incident; at: number }> = [];

const died = (extra: Record<string, unknown> = {}) => ({
  target_id: TARGET,
  deployment_id: 'dep-1',
  server_id: 'local',
  container: 'shop-web-prod-blue-1',
  exit_code: 137,
  died_at: new Date().toISOString(),
  oom_killed: false,
  ...extra,
});

function announce(type: 'container_died' | 'container_restarted' | 'crash_loop', data: unknown): void {
  bus.publishJson(`udc.deployer.events.service.${type}`, data);
}

/** The deployer's `service.crash_loop`: a died event's fields without a death time, and the count. */
function crashLoop(): Record<string, unknown> {
  const { died_at: _, oom_killed: __, ...rest } = died();
  return { ...rest, restarts: 5, window_s: 60 };
}

const openedIncidents = () => events.filter((e) => e.subject === 'health-monitor.incident.opened').map((e) => e.incident);
const incident = async (id: string) => (await request(monitor.droplet.app).get(`/incidents/${id}`).set(auth())).body;

beforeAll(async () => {
  nats = await startNatsServer();
  authority = await startTestAuthority();
  targetPort = await freePort();
  target = await startTarget(targetPort);
  const otherPort = await freePort();
  other = await startTarget(otherPort);
  bus = await Bus.connect({ url: nats.url, name: 'test-deployer-events' });
  bus.nc.subscribe('health-monitor.incident.*', {
    callback: (_e, m) => void events.push({ subject: m.subject, incident: m.json<Incident>(), at: Date.now() }),
  });
  deployer = await startFakeDeployer({ natsUrl: nats.url, env: authority.env(), restart: async () => undefined });
  monitor = createHealthMonitor({
    env: {
      PORT: '0',
      NATS_URL: nats.url,
      MONITOR_ID: 'solo',
      MONITORS_PER_TARGET: '1',
      CHECK_INTERVAL_MS: '10000',
      STATIC_TARGETS: JSON.stringify([
        { id: TARGET, url: `http://127.0.0.1:${targetPort}`, recovery: ['restart', 'alert'] },
        { id: 'app-other-web-prod', url: `http://127.0.0.1:${otherPort}`, recovery: ['restart', 'alert'] },
      ]),
      DIGEST_INTERVAL_MIN: '0',
      ...authority.env(),
    },
    logDestination: quiet(),
  });
  await monitor.start();
}, 60_000);

afterAll(async () => {
  await monitor?.stop();
  await deployer?.stop();
  await bus?.close();
  await target?.stop();
  await other?.stop();
  await authority?.close();
  await nats?.stop({ removeStore: true });
});

const auth = () => ({ Authorization: `Bearer ${authority.mint({ scopes: ['read'] })}` });

describe('incidents from the deployer’s container events', () => {
  it('a container that died opens an incident at once; the deployer’s restart is on its timeline; checks resolve it', async () => {
    await target.kill9();
    const death = died();
    const sentAt = Date.now();
    announce('container_died', death);
    // Checks run every 10 s: an incident within 5 s whose reason names the container and its exit
    // code came from the event. How soon is bench/crash's to measure (issue 16).
    await waitFor('incident opened', () => events.some((e) => e.subject === 'health-monitor.incident.opened'), 5000, 10);
    const opened = events.find((e) => e.subject === 'health-monitor.incident.opened')!;
    expect(Date.parse(opened.incident.opened_at)).toBeGreaterThanOrEqual(sentAt);
    expect(opened.incident).toMatchObject({ target_id: TARGET, status: 'open', opened_by: 'solo' });
    expect(opened.incident.reason).toContain('shop-web-prod-blue-1');
    expect(opened.incident.reason).toContain('137');
    expect(opened.incident.timeline[0]).toMatchObject({ event: 'opened', detail: { source: 'deployer', died_at: death.died_at } });
    // Our own recovery waits: the deployer is already starting it.
    expect(Date.parse(opened.incident.recovery.next_attempt_at!)).toBeGreaterThan(Date.now() + 5000);

    // The same death announced again (another deployer replica, a redelivery) adds nothing.
    announce('container_died', death);
    const down = await request(monitor.droplet.app).get('/targets?status=down').set(auth());
    expect(down.body.items.map((t: { id: string }) => t.id)).toEqual([TARGET]);

    target = await startTarget(targetPort);
    announce('container_restarted', { ...death, restarted_by: 'deployer', restart_ms: 900 });
    // Well before three 10 s check intervals: an open incident's target is checked at once and then often.
    await waitFor('incident resolved', () => events.some((e) => e.subject === 'health-monitor.incident.resolved'), 8000, 20);
    const res = await request(monitor.droplet.app).get(`/incidents/${opened.incident.id}`).set(auth());
    expect(res.body.status).toBe('resolved');
    const steps = (res.body.timeline as Array<{ event: string; by: string }>).filter((t) => t.event !== 'leader.acquired');
    expect(steps.map((t) => [t.event, t.by])).toEqual([
      ['opened', 'solo'],
      ['container.restarted', 'deployer'],
      ['resolved', 'solo'],
    ]);
    expect(deployer.requests).toEqual([]);
    expect(events.filter((e) => e.subject === 'health-monitor.incident.opened')).toHaveLength(1);
  }, 30_000);

  it('a crash loop (the deployer stopped restarting) escalates at once: no restart of its own, the next step now', async () => {
    await target.kill9();
    const death = died();
    announce('container_died', death);
    await waitFor('second incident opened', () => openedIncidents().length === 2, 5000, 10);
    const second = openedIncidents()[1];
    // Without the crash loop its own restart would wait RECOVERY_BACKOFF_MS (30 s).
    expect(Date.parse(second.recovery.next_attempt_at!)).toBeGreaterThan(Date.now() + 5000);

    announce('crash_loop', crashLoop());
    announce('crash_loop', crashLoop()); // every deployer replica says it: recorded once
    // Well before the 30 s backoff it would otherwise wait.
    await waitFor('recovery escalated', async () => (await incident(second.id)).recovery?.exhausted === true, 10_000, 50);
    const steps = ((await incident(second.id)).timeline as Array<{ event: string; by: string; detail?: { reason?: string } }>).filter(
      (t) => t.event !== 'leader.acquired',
    );
    expect(steps.map((t) => [t.event, t.by])).toEqual([
      ['opened', 'solo'],
      ['container.crash_loop', 'deployer'],
      ['recovery.exhausted', 'solo'],
    ]);
    expect(steps[2].detail?.reason).toContain('crashed 5 times in 60 s');
    // The policy's restart step was skipped: restarting a crash loop again is futile.
    expect(deployer.requests).toEqual([]);
    target = await startTarget(targetPort);
    await waitFor('incident resolved', async () => (await incident(second.id)).status === 'resolved', 8000, 50);
  }, 30_000);

  it('a crash loop with no incident open opens one, due for recovery now', async () => {
    await target.kill9();
    const before = openedIncidents().length;
    announce('crash_loop', crashLoop());
    await waitFor('incident opened', () => openedIncidents().length === before + 1, 5000, 10);
    const third = openedIncidents()[before];
    expect(third.reason).toContain('crashed 5 times in 60 s');
    expect(Date.parse(third.recovery.next_attempt_at!)).toBeLessThanOrEqual(Date.now());
    target = await startTarget(targetPort);
    await waitFor('incident resolved', async () => (await incident(third.id)).status === 'resolved', 8000, 50);
    expect(deployer.requests).toEqual([]);
  }, 30_000);

  it('a replica’s death opens the incident on that replica’s record (record_id), not on its service', async () => {
    // TARGET stands for the second replica's record here; the service's own target is not checked.
    await target.kill9();
    const before = openedIncidents().length;
    announce('container_died', died({ target_id: 'app-shop-web-unchecked', record_id: TARGET, container: 'shop-web-prod-blue-2' }));
    await waitFor('incident opened', () => openedIncidents().length === before + 1, 5000, 10);
    const fourth = openedIncidents()[before];
    expect(fourth).toMatchObject({ target_id: TARGET });
    expect(fourth.reason).toContain('shop-web-prod-blue-2');
    target = await startTarget(targetPort);
    announce('container_restarted', { ...died({ record_id: TARGET }), target_id: 'app-shop-web-unchecked', restarted_by: 'deployer' });
    // The resolved event itself, not only the stored incident: the next test counts events from here.
    await waitFor(
      'incident resolved',
      () => events.some((e) => e.subject === 'health-monitor.incident.resolved' && e.incident.id === fourth.id),
      8000,
      50,
    );
  }, 30_000);

  it('ignores deaths of targets it does not check and events that are not well formed', async () => {
    const before = events.length;
    announce('container_died', died({ target_id: 'app-unknown-web-prod' }));
    announce('container_died', { target_id: 'app-other-web-prod' });
    announce('container_died', died({ target_id: 42 }));
    announce('crash_loop', { target_id: 'app-other-web-prod', restarts: 'many' });
    bus.nc.publish('udc.deployer.events.service.container_died', 'not json');
    await new Promise((r) => setTimeout(r, 1000));
    expect(events.slice(before)).toEqual([]);
    const open = await request(monitor.droplet.app).get('/incidents?status=open').set(auth());
    expect(open.body.items).toEqual([]);
  });
});
