// The built-in UDC endpoints that need no NATS: /state, /capabilities, /version, /metrics,
// /logs, /events, /proof, /reload-config, plus correlation ids and log redaction.
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import request from 'supertest';
import type { Env } from '../src/config.js';
import { expectEnvelope, startTestAuthority, type TestAuthority } from '../src/testing/index.js';
import { captureStream, createTestDroplet, type TestDroplet } from './helpers.js';

let authority: TestAuthority;
let droplet: TestDroplet;
let env: Env;
const logs = captureStream();
const read = () => ({ Authorization: `Bearer ${authority.mint({ scopes: ['read'] })}` });
const write = () => ({ Authorization: `Bearer ${authority.mint({ scopes: ['write'] })}` });
const admin = () => ({ Authorization: `Bearer ${authority.mint({ scopes: ['admin'] })}` });

beforeAll(async () => {
  authority = await startTestAuthority();
  env = { ...authority.env(), GREETING: 'hello', LOG_LEVEL: 'info' };
  droplet = createTestDroplet({ env, logDestination: logs.stream, dependencies: [{ name: 'peer', required: true }, { name: 'cache' }] });
});
afterAll(async () => {
  await droplet.stop();
  await authority.close();
});

describe('/capabilities, /version, /state, /dependencies, /metrics', () => {
  it('/capabilities lists capabilities, message actions and endpoints', async () => {
    const res = await request(droplet.app).get('/capabilities');
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ droplet: 'testdrop', version: '1.2.3', udc_version: '1.0', capabilities: ['echo', 'things'] });
    expect(res.body.message_actions).toEqual(['echo', 'explode', 'later', 'ping', 'status.only']);
    expect(res.body.endpoints).toEqual(expect.arrayContaining(['GET /health', 'POST /send', 'POST /echo']));
  });

  it('/version answers without auth', async () => {
    const res = await request(droplet.app).get('/version');
    expect(res.body).toMatchObject({ droplet: 'testdrop', version: '1.2.3', udc_version: '1.0', node: process.version });
  });

  it('/state counts requests and 5xx errors', async () => {
    const before = (await request(droplet.app).get('/state').set(read())).body;
    await request(droplet.app).get('/boom').set(read());
    await request(droplet.app).get('/version');
    const after = (await request(droplet.app).get('/state').set(read())).body;
    expect(after.requests_total - before.requests_total).toBe(3);
    expect(after.errors_last_hour - before.errors_last_hour).toBe(1);
    expect(after.requests_per_minute).toBeGreaterThanOrEqual(3);
    expect(after.memory_mb).toBeGreaterThan(10);
    expect(after.last_restart).toBe(before.last_restart);
  });

  it('/dependencies lists declared dependencies with their type', async () => {
    const res = await request(droplet.app).get('/dependencies').set(read());
    expect(res.status).toBe(200);
    expect(res.body.dependencies).toEqual([
      expect.objectContaining({ name: 'peer', type: 'required', status: 'unknown' }),
      expect.objectContaining({ name: 'cache', type: 'optional', status: 'unknown' }),
    ]);
  });

  it('/metrics has default metrics and the HTTP histogram by route and status', async () => {
    await request(droplet.app).get('/things/abc').set(read());
    const res = await request(droplet.app).get('/metrics');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/text\/plain/);
    expect(res.text).toContain('process_resident_memory_bytes');
    expect(res.text).toMatch(/http_request_duration_seconds_count\{[^}]*route="\/things\/:id"[^}]*status="200"[^}]*\} [1-9]/);
  });
});

describe('/logs', () => {
  it('filters by minimum level', async () => {
    droplet.ctx.logger.debug('logs-debug-line');
    droplet.ctx.logger.info('logs-info-line');
    droplet.ctx.logger.warn('logs-warn-line');
    droplet.ctx.logger.error('logs-error-line');
    const res = await request(droplet.app).get('/logs?level=warn&limit=1000').set(read());
    expect(res.status).toBe(200);
    const msgs = res.body.logs.map((l: { msg: string }) => l.msg);
    expect(msgs).toEqual(expect.arrayContaining(['logs-warn-line', 'logs-error-line']));
    expect(msgs).not.toContain('logs-info-line');
    expect(res.body.logs.every((l: { level: string }) => ['warn', 'error', 'fatal'].includes(l.level))).toBe(true);
    expect(res.body.count).toBe(res.body.logs.length);
    // LOG_LEVEL=info: debug lines are never produced, so never stored.
    const all = await request(droplet.app).get('/logs?level=trace&limit=1000').set(read());
    expect(all.body.logs.map((l: { msg: string }) => l.msg)).not.toContain('logs-debug-line');
  });

  it('filters by since and limit, newest kept, oldest first', async () => {
    droplet.ctx.logger.info('before-cut');
    await sleep(15);
    const cut = new Date().toISOString();
    await sleep(15);
    for (let i = 0; i < 5; i++) droplet.ctx.logger.info(`after-cut-${i}`);
    // limit first: every later request adds its own 'request' line.
    const two = await request(droplet.app)
      .get(`/logs?since=${encodeURIComponent(cut)}&limit=2`)
      .set(read());
    expect(two.body.logs.map((l: { msg: string }) => l.msg)).toEqual(['after-cut-3', 'after-cut-4']);
    const res = await request(droplet.app)
      .get(`/logs?since=${encodeURIComponent(cut)}&limit=1000`)
      .set(read());
    const msgs = res.body.logs.map((l: { msg: string }) => l.msg);
    expect(msgs).not.toContain('before-cut');
    expect(msgs.filter((m: string) => m.startsWith('after-cut'))).toEqual([
      'after-cut-0',
      'after-cut-1',
      'after-cut-2',
      'after-cut-3',
      'after-cut-4',
    ]);
    expect(res.body.logs.every((l: { time: string }) => Date.parse(l.time) >= Date.parse(cut))).toBe(true);
  });

  it.each(['level=loud', 'since=yesterday', 'limit=0', 'limit=1001', 'limit=2.5', 'limit=1&limit=2'])('refuses ?%s with 400', async (q) => {
    const res = await request(droplet.app).get(`/logs?${q}`).set(read());
    expectEnvelope(res, 400, 'INVALID_REQUEST');
    expect(res.body.error.details.location).toBe('query');
  });
});

describe('/events', () => {
  it('filters by level, type prefix, since and limit', async () => {
    await request(droplet.app)
      .post('/emit')
      .set(write())
      .send({ type: 'route.applied', data: { n: 1 } });
    await sleep(15);
    const cut = new Date().toISOString();
    await sleep(15);
    await request(droplet.app)
      .post('/emit')
      .set(write())
      .send({ type: 'route.failed', level: 'error', data: { n: 2 } });
    await request(droplet.app)
      .post('/emit')
      .set(write())
      .send({ type: 'cert.renewed', level: 'warn', data: { n: 3 } });
    await request(droplet.app)
      .post('/emit')
      .set(write())
      .send({ type: 'route.applied', data: { n: 4 } });

    const all = (await request(droplet.app).get('/events').set(read())).body;
    expect(all.events.map((e: { data: { n: number } }) => e.data.n)).toEqual([1, 2, 3, 4]);
    expect(all.events[0]).toMatchObject({ type: 'route.applied', subject: 'testdrop.route.applied', level: 'info' });

    const warn = (await request(droplet.app).get('/events?level=warn').set(read())).body;
    expect(warn.events.map((e: { data: { n: number } }) => e.data.n)).toEqual([2, 3]);
    const routes = (await request(droplet.app).get('/events?type=route.').set(read())).body;
    expect(routes.events.map((e: { data: { n: number } }) => e.data.n)).toEqual([1, 2, 4]);
    const since = (
      await request(droplet.app)
        .get(`/events?since=${encodeURIComponent(cut)}`)
        .set(read())
    ).body;
    expect(since.events.map((e: { data: { n: number } }) => e.data.n)).toEqual([2, 3, 4]);
    const last = (await request(droplet.app).get('/events?limit=1').set(read())).body;
    expect(last).toMatchObject({ count: 1, events: [{ data: { n: 4 } }] });
  });

  it.each(['level=debug', 'since=1999', 'limit=-1'])('refuses ?%s with 400', async (q) => {
    expectEnvelope(await request(droplet.app).get(`/events?${q}`).set(read()), 400, 'INVALID_REQUEST');
  });
});

describe('/proof', () => {
  const sha = (s: string) => createHash('sha256').update(s).digest('hex');

  it('is the sha256 of the material it returns, and follows the last verified action', async () => {
    const first = (await request(droplet.app).get('/proof').set(read())).body;
    expect(first.sha256).toBe(sha(first.material));
    await sleep(5);
    await request(droplet.app)
      .post('/verify')
      .set(write())
      .send({ action: 'nginx.reloaded', detail: { routes: 3 } });
    const second = (await request(droplet.app).get('/proof').set(read())).body;
    expect(second.sha256).toBe(sha(second.material));
    expect(second.sha256).not.toBe(first.sha256);
    expect(second).toMatchObject({ droplet: 'testdrop', action: 'nginx.reloaded' });
    expect(JSON.parse(second.material)).toEqual({
      droplet: 'testdrop',
      action: 'nginx.reloaded',
      detail: { routes: 3 },
      at: second.verified_at,
    });
    const again = (await request(droplet.app).get('/proof').set(read())).body;
    expect(again.sha256).toBe(second.sha256);
  });
});

describe('/reload-config', () => {
  it('needs the admin scope', async () => {
    expectEnvelope(await request(droplet.app).post('/reload-config').set(write()), 403, 'FORBIDDEN');
  });

  it('refuses an invalid environment with 400 naming the variable and keeps the old config', async () => {
    env.GREETING = '';
    env.LOG_LEVEL = 'loud';
    const res = await request(droplet.app).post('/reload-config').set(admin());
    expectEnvelope(res, 400, 'INVALID_REQUEST');
    expect(res.body.error.details.fields.map((f: { path: string }) => f.path).sort()).toEqual(['GREETING', 'LOG_LEVEL']);
    expect(droplet.ctx.config.GREETING).toBe('hello');
    const echo = await request(droplet.app).post('/echo').set(write()).send({ text: 'x' });
    expect(echo.body.greeting).toBe('hello');
    expect(droplet.ctx.logger.level).toBe('info');
  });

  it('applies the log level live; a setting the droplet cannot apply live waits for a restart', async () => {
    env.GREETING = 'bonjour';
    env.LOG_LEVEL = 'warn';
    const res = await request(droplet.app).post('/reload-config').set(admin());
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ reloaded: true, changed: ['GREETING', 'LOG_LEVEL'], needs_restart: ['GREETING'] });
    const echo = await request(droplet.app).post('/echo').set(write()).send({ text: 'x' });
    expect(echo.body.greeting).toBe('hello');
    expect(droplet.ctx.logger.level).toBe('warn');
    expect((await request(droplet.app).get('/proof').set(read())).body.action).toBe('config.reloaded');
    env.LOG_LEVEL = 'info';
    expect((await request(droplet.app).post('/reload-config').set(admin())).status).toBe(200);
  });
});

describe('correlation id', () => {
  it('echoes a given X-Correlation-ID and puts it in the request log line and handler logs', async () => {
    const res = await request(droplet.app).post('/login').set('X-Correlation-ID', 'corr-abc.123').send({ user: 'u', password: 'p' });
    expect(res.headers['x-correlation-id']).toBe('corr-abc.123');
    const mine = logs.lines().filter((l) => l.correlation_id === 'corr-abc.123');
    expect(mine.map((l) => l.msg)).toEqual(expect.arrayContaining(['login attempt', 'request']));
    expect(mine.find((l) => l.msg === 'request')).toMatchObject({ method: 'POST', path: '/login', status: 200 });
  });

  it('generates one when none (or an unsafe one) is given', async () => {
    for (const given of [undefined, 'has spaces', 'x'.repeat(129), 'inject\\"quote']) {
      const req = request(droplet.app).get('/version');
      if (given) req.set('X-Correlation-ID', given);
      const res = await req;
      expect(res.headers['x-correlation-id']).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    }
  });

  it('error responses carry it too, and a 500 names it as the trace id', async () => {
    const res = await request(droplet.app).get('/boom').set(read()).set('X-Correlation-ID', 'corr-500');
    expect(res.headers['x-correlation-id']).toBe('corr-500');
    expect(res.body.error.details.trace_id).toBe('corr-500');
    expect(logs.lines().some((l) => l.correlation_id === 'corr-500' && l.msg === 'unexpected error')).toBe(true);
  });

  it('becomes the trace id of a /message without one, in the reply and the handler log', async () => {
    const res = await request(droplet.app)
      .post('/message')
      .set(write())
      .set('X-Correlation-ID', 'corr-msg-1')
      .send({ source: 'tester', target: 'testdrop', message_type: 'command', payload: { action: 'echo', text: 'hi' } });
    expect(res.body).toMatchObject({ received: true, trace_id: 'corr-msg-1', result: 'success', data: { echo: 'hi' } });
    expect(logs.lines().some((l) => l.trace_id === 'corr-msg-1' && l.msg === 'echo handler')).toBe(true);
  });
});

describe('redaction', () => {
  it('keeps Authorization, tokens and passwords out of the log stream and /logs', async () => {
    const jwt = authority.mint({ scopes: ['admin'] });
    await request(droplet.app).post('/login').set('Authorization', `Bearer ${jwt}`).send({ user: 'alice', password: 'pa55-w0rd-zebra' });
    await request(droplet.app).get('/boom').set('Authorization', `Bearer ${jwt}`);
    await request(droplet.app).get('/state').set('Authorization', `Bearer ${jwt}x`);
    const log = droplet.ctx.logger;
    log.info({ req: { headers: { authorization: `Bearer ${jwt}`, 'x-registry-key': 'reg-key-secret-1' } } }, 'inbound');
    log.info({ headers: { authorization: 'Basic c2VjcmV0' } }, 'outbound');
    log.info({ token: 'tok-top-level-1', password: 'pw-top-level-1', secret: 'sec-top-level-1', api_key: 'key-top-level-1' }, 'top level');
    log.info({ config: { password: 'pw-nested-1', apiToken: 'tok-nested-1', private_key: 'pk-nested-1' } }, 'nested');
    log.info({ secrets: { DO_TOKEN: 'do-token-secret-1' } }, 'secrets bag');

    const text = logs.text();
    for (const secret of [
      jwt,
      'pa55-w0rd-zebra',
      'tok-should-not-appear',
      'reg-key-secret-1',
      'c2VjcmV0',
      'tok-top-level-1',
      'pw-top-level-1',
      'sec-top-level-1',
      'key-top-level-1',
      'pw-nested-1',
      'tok-nested-1',
      'pk-nested-1',
      'do-token-secret-1',
    ]) {
      expect(text).not.toContain(secret);
    }
    expect(text).toContain('[redacted]');
    const login = logs.lines().find((l) => l.msg === 'login attempt' && l.user === 'alice');
    expect(login).toMatchObject({ password: '[redacted]', token: '[redacted]' });
    const served = (await request(droplet.app).get('/logs?limit=1000').set(read())).text;
    expect(served).not.toContain('pa55-w0rd-zebra');
    expect(served).not.toContain(jwt);
  });
});
