import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import request from 'supertest';
import {
  expectEnvelope,
  freePort,
  startNatsServer,
  startTestAuthority,
  udcConformanceSuite,
  waitFor,
  type NatsServerHandle,
  type TestAuthority,
} from '@droplet-mesh/udc-kit/testing';
import { createHealthMonitor, type HealthMonitor } from '../src/health-monitor.js';
import { quiet } from './helpers/quiet.js';
import { startTarget, type Proc } from './helpers/processes.js';

let nats: NatsServerHandle;
let authority: TestAuthority;
let monitor: HealthMonitor;
let target: Proc;

async function setup() {
  nats = await startNatsServer();
  authority = await startTestAuthority();
  const port = await freePort();
  target = await startTarget(port);
  monitor = createHealthMonitor({
    env: {
      PORT: '0',
      NATS_URL: nats.url,
      MONITOR_ID: 'conformance-monitor',
      CHECK_INTERVAL_MS: '300',
      STATIC_TARGETS: JSON.stringify([{ id: 'web', url: `http://127.0.0.1:${port}` }]),
      DIGEST_INTERVAL_MIN: '0',
      ...authority.env(),
    },
    logDestination: quiet(),
  });
  await monitor.start();
}

async function teardown() {
  await monitor?.stop();
  await target?.stop();
  await authority?.close();
  await nats?.stop({ removeStore: true });
}

// One droplet for the whole file: the conformance suite and the route tests share it.
beforeAll(setup, 30_000);
afterAll(teardown, 30_000);

udcConformanceSuite('health-monitor', async () => ({
  app: monitor.droplet.app,
  routes: monitor.droplet.api.routes,
  dropletName: 'health-monitor',
  token: (scopes) => authority.mint({ scopes }),
}));

describe('health-monitor routes', () => {
  // Runs inside the conformance suite's setup (same file, same droplet).
  const auth = () => ({ Authorization: `Bearer ${authority.mint({ scopes: ['read'] })}` });

  it('lists targets with status, last check and uptime, and the monitors checking them', async () => {
    await waitFor(
      'web observed up',
      async () => {
        const res = await request(monitor.droplet.app).get('/targets').set(auth());
        return res.body.items?.[0]?.status === 'up' && res.body.items[0].last_check?.ok === true;
      },
      10_000,
    );
    const res = await request(monitor.droplet.app).get('/targets').set(auth());
    expect(res.body.pagination.total).toBe(1);
    expect(res.body.items[0]).toMatchObject({ id: 'web', status: 'up', monitors: ['conformance-monitor'], open_incident: null });
    expect(res.body.items[0].uptime_percent['24h']).toBe(100);
    const monitors = await request(monitor.droplet.app).get('/monitors').set(auth());
    expect(monitors.body).toMatchObject({
      self: 'conformance-monitor',
      monitors_per_target: 3,
      assignments: { web: ['conformance-monitor'] },
    });
    const history = await request(monitor.droplet.app).get('/targets/web/history?checks=5').set(auth());
    expect(history.status).toBe(200);
    expect(history.body.recent_checks.length).toBeGreaterThan(0);
    expect(history.body.recent_checks.length).toBeLessThanOrEqual(5);
    expect(history.body.transitions).toEqual([]);
  });

  it('answers bad input with 4xx envelopes, never 500', async () => {
    expectEnvelope(await request(monitor.droplet.app).get('/incidents/inc-nope').set(auth()), 404, 'NOT_FOUND');
    expectEnvelope(await request(monitor.droplet.app).get('/targets/nope/history').set(auth()), 404, 'NOT_FOUND');
    expectEnvelope(await request(monitor.droplet.app).get('/incidents?status=exploded').set(auth()), 400, 'INVALID_REQUEST');
    expectEnvelope(await request(monitor.droplet.app).get('/incidents?per_page=100000').set(auth()), 400, 'INVALID_REQUEST');
    expectEnvelope(await request(monitor.droplet.app).get('/targets?status=sideways').set(auth()), 400, 'INVALID_REQUEST');
    expectEnvelope(
      await request(monitor.droplet.app)
        .get(`/incidents/${'x'.repeat(300)}`)
        .set(auth()),
      400,
      'INVALID_REQUEST',
    );
    const empty = await request(monitor.droplet.app).get('/incidents?status=active').set(auth());
    expect(empty.status).toBe(200);
    expect(empty.body.items).toEqual([]);
  });
});
