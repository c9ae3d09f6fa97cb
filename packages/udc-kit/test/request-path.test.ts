// The request path's shortcuts answer exactly as the router and the per-response listener
// did: GETs of static API routes served without walking the router, one handler per
// protected route, the request histogram's series looked up once, the per-second request
// counter, and cached tokens that still expire.
import { tracingChannel } from 'node:diagnostics_channel';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import express from 'express';
import pino from 'pino';
import request from 'supertest';
import { z } from 'zod';
import { Api } from '../src/api.js';
import { baseConfigShape, createDroplet, type Droplet } from '../src/index.js';
import { errorMiddleware } from '../src/error-middleware.js';
import { RuntimeStats } from '../src/stats.js';
import { expectEnvelope, startTestAuthority, type TestAuthority } from '../src/testing/index.js';
import { captureStream } from './helpers.js';

let authority: TestAuthority;
let droplet: Droplet;
const logs = captureStream();
const read = () => ({ Authorization: `Bearer ${authority.mint({ scopes: ['read'] })}` });

beforeAll(async () => {
  authority = await startTestAuthority();
  droplet = createDroplet({
    name: 'pathdrop',
    version: '0.0.1',
    capabilities: [],
    configSchema: z.object({ ...baseConfigShape, PORT: baseConfigShape.PORT.default(0) }),
    env: { ...authority.env(), LOG_LEVEL: 'info' },
    logDestination: logs.stream,
    registry: false,
    revocations: false,
    routes(api) {
      // A parameter route before a static one: Express answers /items/special with the first.
      api.get('/items/:id', { scope: 'read' }, ({ params }) => ({ by: 'param', id: (params as { id: string }).id }));
      api.get('/items/special', { scope: 'read' }, () => ({ by: 'static' }));
      api.get('/open', { scope: 'public' }, ({ req }) => ({ route: req.route?.path, params: req.params, query: req.query }));
      api.get('/rejects', { scope: 'read' }, async () => {
        throw new Error('rejected inside');
      });
      // The built-in /state comes first: a second GET /state is never reached.
      api.get('/state', { scope: 'public' }, () => ({ shadowed: true }));
    },
  });
});
afterAll(async () => {
  await droplet.stop();
  await authority.close();
});

describe('GETs of static API routes', () => {
  it('answer as routed: same body, route, params and query, with or without a query string', async () => {
    const r = await request(droplet.app).get('/open?x=1');
    expect([r.status, r.body]).toEqual([200, { route: '/open', params: {}, query: { x: '1' } }]);
    expect(r.headers['content-length']).toBe(String(Buffer.byteLength(r.text)));
    expect(r.headers['x-correlation-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('forms the router matches differently (case, trailing slash, HEAD) still reach the route', async () => {
    const token = read();
    for (const path of ['/STATE', '/state/', '/State?x=1']) {
      const r = await request(droplet.app).get(path).set(token);
      expect([path, r.status, r.body.droplet]).toEqual([path, 200, 'pathdrop']);
    }
    const head = await request(droplet.app).head('/state').set(token);
    expect(head.status).toBe(200);
  });

  it('an earlier route that matches the same path wins, as with the router', async () => {
    expect((await request(droplet.app).get('/items/special').set(read())).body).toEqual({ by: 'param', id: 'special' });
    expect((await request(droplet.app).get('/items/other').set(read())).body).toEqual({ by: 'param', id: 'other' });
    const state = await request(droplet.app).get('/state').set(read());
    expect(state.body).toMatchObject({ droplet: 'pathdrop', phase: 'created' });
    expectEnvelope(await request(droplet.app).get('/state'), 401, 'UNAUTHORIZED');
  });

  it('refuses a missing, malformed, badly signed or under-scoped token with the error envelope', async () => {
    expectEnvelope(await request(droplet.app).get('/state'), 401, 'UNAUTHORIZED');
    expectEnvelope(await request(droplet.app).get('/state').set('Authorization', 'Bearer not.a.jwt'), 401, 'UNAUTHORIZED');
    expectEnvelope(await request(droplet.app).get('/state').set('Authorization', 'Basic abc'), 401, 'UNAUTHORIZED');
    const other = await startTestAuthority();
    const forged = authority.mint({ scopes: ['read'], privateKeyPem: other.privateKeyPem });
    await other.close();
    expectEnvelope(await request(droplet.app).get('/state').set('Authorization', `Bearer ${forged}`), 401, 'UNAUTHORIZED');
    const none = authority.mint({ scopes: [] });
    expectEnvelope(await request(droplet.app).get('/state').set('Authorization', `Bearer ${none}`), 403, 'FORBIDDEN');
  });

  it('a rejected handler promise becomes the 500 envelope naming the correlation id', async () => {
    const r = await request(droplet.app).get('/rejects').set(read()).set('X-Correlation-ID', 'corr-rejects');
    expectEnvelope(r, 500, 'INTERNAL_ERROR');
    expect(r.body.error.details).toEqual({ trace_id: 'corr-rejects' });
    expect(r.text).not.toContain('rejected inside');
  });

  it('while the router is traced, requests go through the router (its route handler is traced)', async () => {
    const routes: unknown[] = [];
    const onStart = (ctx: unknown) => routes.push((ctx as { route?: unknown }).route);
    const channel = tracingChannel('express.router.request');
    channel.start.subscribe(onStart);
    try {
      const r = await request(droplet.app).get('/open');
      expect(r.body).toEqual({ route: '/open', params: {}, query: {} });
    } finally {
      channel.start.unsubscribe(onStart);
    }
    expect(routes).toContain('/open');
  });
});

describe('request log line and histogram', () => {
  it('each response has one log line with its fields, and its own series by method, route and status', async () => {
    logs.raw.length = 0;
    await request(droplet.app).get('/open?q=1').set('X-Correlation-ID', 'corr-open');
    await request(droplet.app).get('/state');
    await request(droplet.app).get('/state').set(read());
    await request(droplet.app).get('/state').set(read());
    await request(droplet.app).get('/nowhere');
    await request(droplet.app).post('/open').send({});
    const lines = logs.lines().filter((l) => l.msg === 'request');
    expect(lines.map((l) => `${l.method} ${l.path} ${l.route} ${l.status}`)).toEqual([
      'GET /open /open 200',
      'GET /state /state 401',
      'GET /state /state 200',
      'GET /state /state 200',
      'GET /nowhere unmatched 404',
      'POST /open unmatched 404',
    ]);
    expect(Object.keys(lines[0]).sort()).toEqual(
      ['level', 'time', 'droplet', 'name', 'msg', 'correlation_id', 'method', 'path', 'route', 'status', 'duration_ms'].sort(),
    );
    expect(lines[0].correlation_id).toBe('corr-open');
    expect(typeof lines[0].duration_ms).toBe('number');

    const text = await droplet.ctx.metrics.registry.metrics();
    const count = (labels: string) =>
      Number(new RegExp(`http_request_duration_seconds_count\\{droplet="pathdrop",${labels}\\} (\\d+)`).exec(text)?.[1] ?? 0);
    expect(count('method="GET",route="/open",status="200"')).toBeGreaterThanOrEqual(1);
    expect(count('method="GET",route="/state",status="401"')).toBeGreaterThanOrEqual(1);
    expect(count('method="GET",route="/state",status="200"')).toBeGreaterThanOrEqual(2);
    expect(count('method="GET",route="unmatched",status="404"')).toBeGreaterThanOrEqual(1);
    expect(count('method="POST",route="unmatched",status="404"')).toBe(1);

    // A reset histogram counts again from zero through the same series.
    droplet.ctx.metrics.httpDuration.reset();
    await request(droplet.app).get('/state').set(read());
    const again = await droplet.ctx.metrics.registry.metrics();
    expect(again).toMatch(/http_request_duration_seconds_count\{droplet="pathdrop",method="GET",route="\/state",status="200"\} 1\n/);
  });

  it('/health and /metrics are counted but not logged', async () => {
    logs.raw.length = 0;
    await request(droplet.app).get('/health');
    await request(droplet.app).get('/metrics');
    expect(logs.lines().filter((l) => l.msg === 'request')).toEqual([]);
  });
});

describe('Api on a bare router, with a principal function', () => {
  it('authenticates once per route: sync principal, promised principal, refusals', async () => {
    const app = express();
    const router = express.Router();
    const api = new Api(
      router,
      () => {
        throw new Error('the middleware is not used when a principal function is given');
      },
      (req) => {
        const who = req.header('x-user');
        if (who === 'sync') return { sub: 's', droplet_id: 's', scopes: ['read'], via: 'jwt' };
        if (who === 'later') return Promise.resolve({ sub: 'l', droplet_id: 'l', scopes: ['read'], via: 'jwt' });
        if (who === 'reader') return Promise.resolve({ sub: 'r', droplet_id: 'r', scopes: ['read'], via: 'jwt' });
        return Promise.reject(new Error('nobody'));
      },
    );
    api.get('/who', {}, ({ principal }) => ({ sub: principal?.sub }));
    api.delete('/who', { scope: 'admin' }, () => undefined);
    app.use((req, _res, next) => {
      req.log = pino({ level: 'silent' });
      req.correlationId = 'c';
      next();
    });
    app.use(router);
    app.use(errorMiddleware(pino({ level: 'silent' })));
    expect((await request(app).get('/who').set('x-user', 'sync')).body).toEqual({ sub: 's' });
    expect((await request(app).get('/who').set('x-user', 'later')).body).toEqual({ sub: 'l' });
    expectEnvelope(await request(app).delete('/who').set('x-user', 'reader'), 403, 'FORBIDDEN');
    expect((await request(app).get('/who')).status).toBe(500);
  });
});

describe('cached tokens', () => {
  it('a token answered from the cache is refused once it expires', async () => {
    const token = authority.mint({ scopes: ['read'], expiresInSeconds: 2 });
    const auth = { Authorization: `Bearer ${token}` };
    expect((await request(droplet.app).get('/state').set(auth)).status).toBe(200);
    expect((await request(droplet.app).get('/state').set(auth)).status).toBe(200); // from the cache
    const exp = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString()).exp as number;
    await sleep(Math.max(0, exp * 1000 - Date.now()) + 50);
    const r = await request(droplet.app).get('/state').set(auth);
    expectEnvelope(r, 401, 'UNAUTHORIZED');
    expect(r.body.error.message).toMatch(/expired/);
  });
});

describe('RuntimeStats per-second counter', () => {
  it('requests of the current second count in requests_per_minute at once, and leave it a minute later', () => {
    const clock = { t: Date.parse('2026-01-01T00:00:00.100Z') };
    const s = new RuntimeStats(() => clock.t, 60_000);
    try {
      s.recordRequest(200);
      expect(s.requestsPerMinute()).toBe(1);
      s.recordRequest(200);
      expect(s.requestsPerMinute()).toBe(2); // same second, asked again
      clock.t += 500;
      s.recordRequest(500);
      expect(s.requestsPerMinute()).toBe(3);
      clock.t += 1000; // next second: the first three are in a bucket now
      expect(s.requestsPerMinute()).toBe(3);
      s.recordRequest(200);
      expect(s.requestsPerMinute()).toBe(4);
      clock.t += 59_000; // the first second is over a minute old
      expect(s.requestsPerMinute()).toBe(1);
      s.recordRequest(200);
      expect(s.requestsPerMinute()).toBe(2);
      clock.t += 60_000;
      expect(s.requestsPerMinute()).toBe(0);
      expect(s.requestsTotal).toBe(5);
      expect(s.errorsLastHour()).toBe(1);
    } finally {
      s.stop();
    }
  });
});
