import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createServer, type Server } from 'node:http';
import request from 'supertest';
import {
  freePort,
  startNatsServer,
  startTestAuthority,
  tokenOnlyRegistry,
  waitFor,
  type NatsServerHandle,
  type TestAuthority,
} from '@droplet-mesh/udc-kit/testing';
import { createHealthMonitor, type HealthMonitor } from '../src/health-monitor.js';
import { quiet } from './helpers/quiet.js';

// Recipients set over the API (what the orchestrator does for a stack's alerts:): checked when
// set, kept in KV, and every notification reaches them, until their owner removes them.
let nats: NatsServerHandle;
let authority: TestAuthority;
let monitor: HealthMonitor;
let control: Server;
let hook: Server;
let hookUrl: string;
let target: Server;
/** The watched target answers 200 until a test takes it down (so its incident opens after the list is set). */
let targetUp = true;
const received: Array<Record<string, unknown>> = [];
let write: Record<string, string>;
let read: Record<string, string>;
const app = () => monitor.droplet.app;

beforeAll(async () => {
  nats = await startNatsServer();
  authority = await startTestAuthority();
  const controlPort = await freePort();
  control = createServer((_q, s) => s.end('ok'));
  await new Promise<void>((r) => control.listen(controlPort, '127.0.0.1', () => r()));
  const hookPort = await freePort();
  hook = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      received.push(JSON.parse(body));
      res.end('ok');
    });
  });
  await new Promise<void>((r) => hook.listen(hookPort, '127.0.0.1', () => r()));
  hookUrl = `http://127.0.0.1:${hookPort}/alerts`;
  const targetPort = await freePort();
  target = createServer((_q, s) => {
    s.statusCode = targetUp ? 200 : 503;
    s.end(targetUp ? 'ok' : 'down');
  });
  await new Promise<void>((r) => target.listen(targetPort, '127.0.0.1', () => r()));
  monitor = createHealthMonitor({
    env: {
      PORT: '0',
      NATS_URL: nats.url,
      MONITOR_ID: 'recipients',
      MONITORS_PER_TARGET: '1',
      CHECK_INTERVAL_MS: '300',
      CHECK_TIMEOUT_MS: '300',
      RECHECK_DELAY_MS: '100',
      STATIC_TARGETS: JSON.stringify([{ id: 'gone', url: `http://127.0.0.1:${targetPort}`, recovery: ['alert'] }]),
      CONTROL_CHECK_URLS: JSON.stringify([`http://127.0.0.1:${controlPort}`]),
      DIGEST_INTERVAL_MIN: '0',
      WEBHOOK_MAX_ATTEMPTS: '2',
      WEBHOOK_BACKOFF_MS: '50',
      ...authority.env(),
    },
    registry: tokenOnlyRegistry(() => authority.mint({ sub: 'health-monitor', scopes: ['read', 'write'] })),
    logDestination: quiet(),
  });
  await monitor.start();
  write = { Authorization: `Bearer ${authority.mint({ sub: 'orchestrator', scopes: ['read', 'write'] })}` };
  read = { Authorization: `Bearer ${authority.mint({ sub: 'viewer', scopes: ['read'] })}` };
}, 60_000);

afterAll(async () => {
  await monitor?.stop();
  await new Promise<void>((r) => (control ? control.close(() => r()) : r()));
  await new Promise<void>((r) => (hook ? hook.close(() => r()) : r()));
  await new Promise<void>((r) => (target ? target.close(() => r()) : r()));
  await authority?.close();
  await nats?.stop({ removeStore: true });
});

describe('notification recipients over the API', () => {
  it('refuses unknown keys, metadata addresses, emails without SMTP, and writers without the write scope', async () => {
    const put = (body: object, headers = write) => request(app()).put('/notifications/recipients/stack-shop').set(headers).send(body);
    const unknown = await put({ webhooks: [hookUrl], pager: 'x' });
    expect(unknown.status).toBe(400);
    const metadata = await put({ webhooks: [hookUrl, 'http://169.254.169.254/latest/meta-data'] });
    expect(metadata.status).toBe(400);
    expect(metadata.body.error.details).toMatchObject({ reason: 'address_refused', location: 'webhooks.1' });
    const meshPort = await put({ webhooks: ['http://127.0.0.1:8000/droplets'] });
    expect(meshPort.status).toBe(400);
    const emails = await put({ emails: ['ops@example.com'] });
    expect(emails.status).toBe(400);
    expect(emails.body.error.details.fields).toEqual([expect.objectContaining({ path: 'emails' })]);
    expect((await put({ webhooks: [hookUrl] }, read)).status).toBe(403);
    expect((await request(app()).get('/notifications/recipients/stack-shop').set(write)).status).toBe(404);
  });

  it('a list set by an owner receives every notification, until the owner removes it', async () => {
    const put = await request(app())
      .put('/notifications/recipients/stack-shop')
      .set(write)
      .send({ webhooks: [hookUrl] });
    expect(put.status).toBe(200);
    expect(put.body).toMatchObject({ owner: 'stack-shop', emails: [], webhooks: [hookUrl] });
    // A webhook URL may carry its credential (Slack-style paths): read tokens do not see them.
    expect((await request(app()).get('/notifications/recipients').set(read)).status).toBe(403);
    expect((await request(app()).get('/notifications/recipients/stack-shop').set(read)).status).toBe(403);
    const list = await request(app()).get('/notifications/recipients').set(write);
    expect(list.body.items.map((r: { owner: string }) => r.owner)).toEqual(['stack-shop']);
    targetUp = false;
    await waitFor('the stack webhook to receive the incident', () => received.some((b) => b.event === 'incident.opened'), 20_000);
    expect(received.find((b) => b.event === 'incident.opened')).toMatchObject({ incident: expect.objectContaining({ target_id: 'gone' }) });

    expect((await request(app()).delete('/notifications/recipients/stack-shop').set(write)).status).toBeLessThan(300);
    expect((await request(app()).get('/notifications/recipients/stack-shop').set(write)).status).toBe(404);
    expect((await request(app()).delete('/notifications/recipients/stack-shop').set(write)).status).toBe(404);
  }, 40_000);
});
