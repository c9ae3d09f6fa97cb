import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createServer, type Server } from 'node:http';
import pino from 'pino';
import { Bus } from '@droplet-mesh/udc-kit';
import { freePort, startNatsServer, waitFor, type NatsServerHandle } from '@droplet-mesh/udc-kit/testing';
import { DigestScheduler } from '../src/engine/digest.js';
import { initialRecovery } from '../src/domain/recovery-plan.js';
import { EmailChannel } from '../src/notify/email-channel.js';
import { digestNotification, incidentNotification } from '../src/notify/notification.js';
import { Notifier } from '../src/notify/notifier.js';
import { WebhookChannel } from '../src/notify/webhook-channel.js';
import { quiet } from './helpers/quiet.js';
import { startSmtpRecorder, type SmtpRecorder } from './helpers/smtp-recorder.js';

const log = pino({ level: 'silent' }, quiet());
let smtp: SmtpRecorder;
let hook: Server;
let hookUrl: string;
const hookBodies: Array<Record<string, unknown>> = [];
let hookFailuresLeft = 2;

const incident = {
  id: 'inc-1',
  target_id: 'web',
  status: 'open' as const,
  reason: '2 of 3 assigned monitors report failure',
  opened_at: new Date().toISOString(),
  opened_by: 'm1',
  recovery: initialRecovery(['restart']),
  timeline: [{ at: new Date().toISOString(), event: 'opened', by: 'm1' }],
};

beforeAll(async () => {
  smtp = await startSmtpRecorder();
  const port = await freePort();
  hook = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      if (hookFailuresLeft-- > 0) {
        res.statusCode = 503;
        return res.end();
      }
      hookBodies.push(JSON.parse(body));
      res.end('ok');
    });
  });
  await new Promise<void>((r) => hook.listen(port, '127.0.0.1', () => r()));
  hookUrl = `http://127.0.0.1:${port}/hook`;
});
afterAll(async () => {
  await smtp?.close();
  await new Promise<void>((r) => hook.close(() => r()));
});

describe('notification channels', () => {
  it('emails through a real SMTP server', async () => {
    const email = new EmailChannel(smtp.url, 'monitor@example.com', ['ops@example.com']);
    await email.send(
      incidentNotification('incident.opened', incident, {
        id: 'web',
        kind: 'service',
        url: 'http://127.0.0.1:1',
        health_path: '/health',
        recovery: ['restart'],
        metadata: {},
        source: 'static',
      }),
    );
    email.close();
    expect(smtp.messages).toHaveLength(1);
    expect(smtp.messages[0]).toMatchObject({ from: 'monitor@example.com', to: ['ops@example.com'] });
    expect(smtp.messages[0].subject).toBe('[DOWN] web - incident inc-1');
    expect(smtp.messages[0].raw).toContain('2 of 3 assigned monitors');
  });

  it('retries a webhook with backoff until it accepts', async () => {
    const webhook = new WebhookChannel([hookUrl], { maxAttempts: 4, backoffMs: 10 });
    await webhook.send(incidentNotification('incident.resolved', { ...incident, status: 'resolved' }, undefined));
    expect(hookBodies).toHaveLength(1);
    expect(hookBodies[0]).toMatchObject({ event: 'incident.resolved', attempt: 3, incident: { id: 'inc-1', status: 'resolved' } });
  });

  it('a dead channel never throws out of the notifier and does not stop the others', async () => {
    const deadPort = await freePort();
    const notifier = new Notifier(
      [
        new EmailChannel(`smtp://127.0.0.1:${deadPort}`, 'a@example.com', ['b@example.com']),
        new WebhookChannel([hookUrl], { maxAttempts: 1, backoffMs: 1 }),
      ],
      log,
    );
    const results = await notifier.deliver(
      digestNotification({ at: '', targets: 1, up: 1, down: 0, unknown: 0, open_incidents: [], monitors: ['m1'] }),
    );
    expect(results.find((r) => r.channel === 'email')?.ok).toBe(false);
    expect(results.find((r) => r.channel === 'webhook')?.ok).toBe(true);
    expect(() =>
      notifier.notify(digestNotification({ at: '', targets: 0, up: 0, down: 0, unknown: 0, open_incidents: [], monitors: [] })),
    ).not.toThrow();
    await notifier.settle(5000);
  });
});

describe('digest', () => {
  let nats: NatsServerHandle;
  let buses: Bus[] = [];
  beforeAll(async () => {
    nats = await startNatsServer();
    buses = await Promise.all([1, 2, 3].map((i) => Bus.connect({ url: nats.url, name: `digest-${i}` })));
  });
  afterAll(async () => {
    for (const b of buses) await b.close();
    await nats?.stop({ removeStore: true });
  });

  it('three replicas send one "all OK" digest per period between them', async () => {
    const before = smtp.messages.length;
    const schedulers = await Promise.all(
      buses.map(async (b) => {
        const notifier = new Notifier([new EmailChannel(smtp.url, 'monitor@example.com', ['ops@example.com'])], log);
        return new DigestScheduler(
          await b.kv('digest-test', { history: 1 }),
          700,
          () => ({
            at: new Date().toISOString(),
            targets: 2,
            up: 2,
            down: 0,
            unknown: 0,
            open_incidents: [],
            monitors: ['m1', 'm2', 'm3'],
          }),
          notifier,
          log,
        );
      }),
    );
    const started = Date.now();
    for (const s of schedulers) s.start();
    await waitFor('three digests', () => smtp.messages.length - before >= 3, 8000);
    const periods = Math.floor((Date.now() - started) / 700) + 1;
    for (const s of schedulers) s.stop();
    await new Promise((r) => setTimeout(r, 300));
    const digests = smtp.messages.slice(before);
    expect(digests.length).toBeLessThanOrEqual(periods);
    expect(digests.every((m) => m.subject === '[health digest] all OK (2 targets)')).toBe(true);
  });
});
