import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createServer, type Server } from 'node:http';
import request from 'supertest';
import { Conflict } from '@droplet-mesh/udc-kit';
import {
  expectEnvelope,
  freePort,
  startNatsServer,
  startTestAuthority,
  tokenOnlyRegistry,
  waitFor,
  type NatsServerHandle,
  type TestAuthority,
} from '@droplet-mesh/udc-kit/testing';
import { createHealthMonitor, type HealthMonitor } from '../src/health-monitor.js';
import type { Incident } from '../src/domain/types.js';
import type { Notification } from '../src/notify/notification.js';
import { startCommandRecorder } from './helpers/fake-droplets.js';
import { startTarget, type Proc } from './helpers/processes.js';
import { quiet } from './helpers/quiet.js';

// Acknowledge, silence and recover by hand: one in-process monitor, real NATS, a real target
// process, a stand-in deployer on NATS that restarts it (or refuses), notifications recorded.
let nats: NatsServerHandle;
let authority: TestAuthority;
let control: Server;
let controlUrl: string;
let target: Proc;
let targetPort: number;
let monitor: HealthMonitor;
let deployer: Awaited<ReturnType<typeof startCommandRecorder>>;
/** What the stand-in deployer does with a restart: nothing (it did not help), restart the target, or refuse. */
let deployerMode: 'ignore' | 'restart' | 'refuse' = 'ignore';
let restarting: Promise<void> | undefined;
const sent: Notification[] = [];
let write: Record<string, string>;

const app = () => monitor.droplet.app;
const kinds = (targetId = 'web') =>
  sent.filter((n) => (n.data.incident as Incident | undefined)?.target_id === targetId).map((n) => n.kind);

async function openIncident(): Promise<Incident> {
  await target.kill9();
  let open: Incident | undefined;
  await waitFor(
    'an open incident for web',
    () => {
      open = monitor.engine!.incidents.openFor('web');
      return !!open && open.status !== 'resolved';
    },
    10_000,
  );
  return open!;
}

async function resolved(id: string): Promise<Incident> {
  let i: Incident | undefined;
  await waitFor(
    `incident ${id} resolved`,
    async () => {
      i = await monitor.engine!.incidents.get(id);
      return i?.status === 'resolved';
    },
    15_000,
  );
  return i!;
}

beforeAll(async () => {
  nats = await startNatsServer();
  authority = await startTestAuthority();
  targetPort = await freePort();
  target = await startTarget(targetPort);
  const controlPort = await freePort();
  control = createServer((_req, res) => res.end('ok'));
  await new Promise<void>((r) => control.listen(controlPort, '127.0.0.1', () => r()));
  controlUrl = `http://127.0.0.1:${controlPort}`;
  deployer = await startCommandRecorder({
    natsUrl: nats.url,
    env: authority.env(),
    name: 'deployer',
    action: 'restart',
    act: async () => {
      if (deployerMode === 'refuse') throw new Conflict('the deployer says no');
      if (deployerMode !== 'restart') return;
      // One restart at a time, as a real deployer's: the monitor's own restart and one asked by
      // hand can arrive together, and two target processes cannot both take the port.
      restarting ??= (async () => {
        if (target.exited()) target = await startTarget(targetPort);
      })().finally(() => {
        restarting = undefined;
      });
      await restarting;
    },
  });
  monitor = createHealthMonitor({
    env: {
      PORT: '0',
      NATS_URL: nats.url,
      MONITOR_ID: 'hand',
      MONITORS_PER_TARGET: '1',
      CHECK_INTERVAL_MS: '400',
      CHECK_TIMEOUT_MS: '300',
      RECHECK_DELAY_MS: '100',
      OKS_TO_RECOVER: '2',
      LEASE_TTL_MS: '1500',
      RECOVERY_MAX_ATTEMPTS: '1',
      // One automatic restart at once, then (after the backoff) the escalation to a person.
      RECOVERY_BACKOFF_MS: '4000',
      // The stand-in deployer's restart starts a node process: seconds on a loaded CI machine.
      RECOVERY_TIMEOUT_MS: '15000',
      STATIC_TARGETS: JSON.stringify([{ id: 'web', url: `http://127.0.0.1:${targetPort}`, recovery: ['restart', 'alert'] }]),
      CONTROL_CHECK_URLS: JSON.stringify([controlUrl]),
      DIGEST_INTERVAL_MIN: '0',
      ...authority.env(),
    },
    // Its messages to the deployer carry its own token, as a registered monitor's do.
    registry: tokenOnlyRegistry(() => authority.mint({ sub: 'health-monitor', scopes: ['read', 'write'] })),
    channels: [{ name: 'recorder', send: async (n) => void sent.push(n) }],
    logDestination: quiet(),
  });
  await monitor.start();
  write = { Authorization: `Bearer ${authority.mint({ sub: 'alice', scopes: ['read', 'write'] })}` };
  await waitFor('web seen up', () => monitor.engine!.targetStatus('web') === 'up', 10_000);
}, 60_000);

afterAll(async () => {
  await monitor?.stop();
  await deployer?.stop();
  await target?.stop();
  await new Promise<void>((r) => (control ? control.close(() => r()) : r()));
  await authority?.close();
  await nats?.stop({ removeStore: true });
});

describe('incidents by hand', () => {
  it('acknowledge: no more notifications about the incident but its resolution', async () => {
    const incident = await openIncident();
    await waitFor('the DOWN notification', () => kinds().includes('incident.opened'), 5000);
    const ack = await request(app()).post(`/incidents/${incident.id}/ack`).set(write).send({ note: 'on it' });
    expect(ack.status).toBe(200);
    expect(ack.body).toMatchObject({ id: incident.id, acknowledged_by: 'alice' });
    expect(ack.body.timeline.at(-1)).toMatchObject({ event: 'acknowledged', by: 'alice', detail: { note: 'on it' } });
    // Idempotent.
    const again = await request(app()).post(`/incidents/${incident.id}/ack`).set(write).send({});
    expect(again.body.acknowledged_at).toBe(ack.body.acknowledged_at);
    // The automatic restart did not help: it escalates, but to nobody (acknowledged).
    await waitFor('recovery exhausted', async () => !!(await monitor.engine!.incidents.get(incident.id))?.recovery.exhausted, 15_000);
    await new Promise((r) => setTimeout(r, 300));
    expect(kinds()).toEqual(['incident.opened']);

    target = await startTarget(targetPort);
    await resolved(incident.id);
    await waitFor('the RESOLVED notification', () => kinds().includes('incident.resolved'), 5000);
    expect(kinds()).toEqual(['incident.opened', 'incident.resolved']);
    expectEnvelope(await request(app()).post(`/incidents/${incident.id}/ack`).set(write).send({}), 409, 'CONFLICT');
  }, 60_000);

  it('silence a target for a window, then recover its incident by hand through the deployer', async () => {
    sent.length = 0;
    const s = await request(app()).post('/silences').set(write).send({ target_id: 'web', duration_s: 600, reason: 'planned work' });
    expect(s.status).toBe(201);
    expect(s.body).toMatchObject({ target_id: 'web', by: 'alice', reason: 'planned work' });
    expect(Date.parse(s.body.until) - Date.now()).toBeGreaterThan(590_000);
    const listed = await request(app()).get('/silences').set(write);
    expect(listed.body.items.map((x: { target_id: string }) => x.target_id)).toEqual(['web']);

    const incident = await openIncident();
    await waitFor('recovery exhausted', async () => !!(await monitor.engine!.incidents.get(incident.id))?.recovery.exhausted, 15_000);

    // The deployer refuses: a 502 naming why, recorded in the timeline.
    deployerMode = 'refuse';
    const refused = await request(app()).post(`/incidents/${incident.id}/recover`).set(write).send({ step: 'restart' });
    expectEnvelope(refused, 502, 'DEPENDENCY_UNAVAILABLE');
    expect(refused.body.error.message).toMatch(/restart of 'web' failed: .*the deployer says no/);

    deployerMode = 'restart';
    const before = deployer.for('web').length;
    const rec = await request(app()).post(`/incidents/${incident.id}/recover`).set(write).send({ step: 'restart', resume: true });
    expect({ status: rec.status, error: rec.body.error }).toEqual({ status: 200, error: undefined });
    expect(rec.body).toMatchObject({ step: 'restart', result: 'accepted' });
    expect(deployer.for('web')).toHaveLength(before + 1);
    expect(deployer.for('web').at(-1)).toMatchObject({ requested_by: 'alice', incident_id: incident.id });
    const events = rec.body.incident.timeline.map((t: { event: string }) => t.event);
    expect(events).toEqual(expect.arrayContaining(['restart.requested', 'restart.failed', 'restart.accepted', 'recovery.resumed']));
    expect(rec.body.incident.recovery.exhausted).toBe(false);

    await resolved(incident.id);
    deployerMode = 'ignore';
    await new Promise((r) => setTimeout(r, 300));
    // Silenced: neither DOWN, NEEDS A PERSON nor RESOLVED went out.
    expect(kinds()).toEqual([]);

    expect((await request(app()).delete('/silences/web').set(write)).status).toBe(204);
    expectEnvelope(await request(app()).delete('/silences/web').set(write), 404, 'NOT_FOUND');
    expect((await request(app()).get('/silences').set(write)).body.items).toEqual([]);
  }, 60_000);

  it('bad requests are 4xx in the UDC envelope', async () => {
    const read = { Authorization: `Bearer ${authority.mint({ scopes: ['read'] })}` };
    expectEnvelope(await request(app()).post('/incidents/nope/ack').set(write).send({}), 404, 'NOT_FOUND');
    expectEnvelope(await request(app()).post('/incidents/nope/recover').set(write).send({}), 404, 'NOT_FOUND');
    expectEnvelope(await request(app()).post('/incidents/nope/silence').set(write).send({ duration_s: 60 }), 404, 'NOT_FOUND');
    expectEnvelope(await request(app()).post('/incidents/x/ack').set(read).send({}), 403, 'FORBIDDEN');
    for (const body of [{ target_id: 'web', duration_s: 0 }, { target_id: 'web' }, { target_id: '', duration_s: 5 }, { duration_s: 5 }])
      expectEnvelope(await request(app()).post('/silences').set(write).send(body), 400, 'INVALID_REQUEST');
    expectEnvelope(
      await request(app())
        .post('/silences')
        .set(write)
        .send({ target_id: 'web', duration_s: 31 * 24 * 3600 }),
      400,
      'INVALID_REQUEST',
    );
    expectEnvelope(await request(app()).post('/incidents/x/recover').set(write).send({ step: 'alert' }), 400, 'INVALID_REQUEST');
  });

  it('a reboot of a service target is refused with 409; an incident silence goes through its target', async () => {
    const incident = await openIncident();
    const reboot = await request(app()).post(`/incidents/${incident.id}/recover`).set(write).send({ step: 'reboot' });
    expectEnvelope(reboot, 409, 'CONFLICT');
    const s = await request(app()).post(`/incidents/${incident.id}/silence`).set(write).send({ duration_s: 30 });
    expect(s.status).toBe(201);
    expect(s.body.target_id).toBe('web');
    deployerMode = 'restart';
    // No step named: the first of the policy that applies (restart).
    const rec = await request(app()).post(`/incidents/${incident.id}/recover`).set(write).send({});
    expect({ status: rec.status, error: rec.body.error }).toEqual({ status: 200, error: undefined });
    await resolved(incident.id);
  }, 60_000);
});
