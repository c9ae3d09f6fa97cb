import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import express from 'express';
import pino from 'pino';
import request from 'supertest';
import { z } from 'zod';
import { Api, paginate, paginationQuery, reply } from '../src/api.js';
import { Unauthorized } from '../src/errors.js';
import { errorMiddleware } from '../src/error-middleware.js';
import { expectEnvelope, startTestAuthority, type TestAuthority } from '../src/testing/index.js';
import { captureStream, createTestDroplet, type TestDroplet } from './helpers.js';

let authority: TestAuthority;
let droplet: TestDroplet;
const logs = captureStream();
const bearer = (scopes: ('read' | 'write' | 'admin')[] = ['read', 'write', 'admin']) => ({
  Authorization: `Bearer ${authority.mint({ scopes })}`,
});

beforeAll(async () => {
  authority = await startTestAuthority();
  droplet = createTestDroplet({ env: { ...authority.env() }, logDestination: logs.stream });
});
afterAll(async () => {
  await droplet.stop();
  await authority.close();
});

describe('route specs', () => {
  it('validates the body: 400 INVALID_REQUEST naming each failing field', async () => {
    const res = await request(droplet.app).post('/echo').set(bearer()).send({ text: '', count: 9, extra: true });
    expectEnvelope(res, 400, 'INVALID_REQUEST');
    expect(res.body.error.details.location).toBe('body');
    expect(res.body.error.details.fields.map((f: { path: string }) => f.path).sort()).toEqual(['count', 'text']);
  });

  it('validates a missing body as an empty object', async () => {
    const res = await request(droplet.app).post('/echo').set(bearer());
    expectEnvelope(res, 400, 'INVALID_REQUEST');
    expect(res.body.error.details.fields[0].path).toBe('text');
  });

  it('validates the query and the path params', async () => {
    const q = await request(droplet.app)
      .get('/things/abc?verbose=perhaps')
      .set(bearer(['read']));
    expectEnvelope(q, 400, 'INVALID_REQUEST');
    expect(q.body.error.details).toMatchObject({ location: 'query', fields: [{ path: 'verbose' }] });
    const p = await request(droplet.app)
      .get('/things/ABC1')
      .set(bearer(['read']));
    expectEnvelope(p, 400, 'INVALID_REQUEST');
    expect(p.body.error.details).toMatchObject({ location: 'path', fields: [{ path: 'id' }] });
  });

  it('returns a plain value as JSON with 200, or the spec status', async () => {
    const ok = await request(droplet.app)
      .get('/things/abc?verbose=true')
      .set(bearer(['read']));
    expect(ok.status).toBe(200);
    expect(ok.body).toEqual({ id: 'abc', verbose: true });
    const created = await request(droplet.app)
      .post('/things')
      .set(bearer(['write']))
      .send({ name: 'n' });
    expect(created.status).toBe(201);
    expect(created.body).toEqual({ created: 'n' });
  });

  it('answers 204 with no body when a handler returns nothing', async () => {
    const res = await request(droplet.app)
      .delete('/things/abc')
      .set(bearer(['admin']));
    expect(res.status).toBe(204);
    expect(res.text).toBe('');
  });

  it('reply() chooses the status, body and headers', async () => {
    const res = await request(droplet.app)
      .put('/teapot')
      .set(bearer(['write']));
    expect(res.status).toBe(418);
    expect(res.body).toEqual({ short: 'and stout' });
    expect(res.headers['x-teapot']).toBe('yes');
    const empty = await request(droplet.app)
      .patch('/empty-reply')
      .set(bearer(['write']));
    expect(empty.status).toBe(202);
    expect(empty.text).toBe('');
  });

  it('thrown typed errors become their envelope', async () => {
    expectEnvelope(
      await request(droplet.app)
        .get('/things/missing')
        .set(bearer(['read'])),
      404,
      'NOT_FOUND',
    );
  });

  it('an unexpected throw is a 500 with the correlation id and no internals; the stack is logged', async () => {
    const res = await request(droplet.app)
      .get('/boom')
      .set(bearer(['read']))
      .set('X-Correlation-ID', 'boom-1');
    expectEnvelope(res, 500, 'INTERNAL_ERROR');
    expect(res.body.error.details).toEqual({ trace_id: 'boom-1' });
    expect(res.text).not.toContain('kaboom');
    const line = logs.lines().find((l) => l.correlation_id === 'boom-1' && l.msg === 'unexpected error') as { err?: { stack?: string } };
    expect(line?.err?.stack).toContain('kaboom');
  });

  it('scope defaults to read, public skips auth, write and admin are enforced', async () => {
    expectEnvelope(await request(droplet.app).get('/things/abc'), 401, 'UNAUTHORIZED');
    expect(
      (
        await request(droplet.app)
          .get('/things/abc')
          .set(bearer(['read']))
      ).status,
    ).toBe(200);
    expect((await request(droplet.app).post('/login').send({ user: 'u', password: 'p' })).status).toBe(200);
    expectEnvelope(
      await request(droplet.app)
        .post('/things')
        .set(bearer(['read']))
        .send({ name: 'n' }),
      403,
      'FORBIDDEN',
    );
    expectEnvelope(
      await request(droplet.app)
        .delete('/things/abc')
        .set(bearer(['write'])),
      403,
      'FORBIDDEN',
    );
  });

  it('auth runs before validation: an unauthenticated bad body is 401, not 400', async () => {
    expectEnvelope(await request(droplet.app).post('/echo').send({ text: 42 }), 401, 'UNAUTHORIZED');
  });

  it('records every route with its spec', () => {
    const have = droplet.api.routes.map((r) => `${r.method} ${r.path} ${r.spec.scope ?? 'read'}`);
    expect(have).toEqual(
      expect.arrayContaining([
        'post /echo write',
        'get /things/:id read',
        'delete /things/:id admin',
        'post /login public',
        'get /health public',
      ]),
    );
  });
});

describe('Api on a bare router', () => {
  it('works with any authenticate middleware', async () => {
    const app = express();
    app.use(express.json());
    const router = express.Router();
    const api = new Api(router, (req, _res, next) => {
      if (req.header('x-user') !== 'ok') throw new Unauthorized();
      req.principal = { sub: 'u', droplet_id: 'u', scopes: ['read'], via: 'jwt' };
      next();
    });
    api.get('/who', {}, ({ principal }) => ({ sub: principal?.sub }));
    api.post('/r', { scope: 'public', body: z.object({ n: z.number() }) }, ({ body }) => reply(207, { n: body.n * 2 }));
    app.use((req, _res, next) => {
      req.log = pino({ level: 'silent' });
      req.correlationId = 'c';
      next();
    });
    app.use(router);
    app.use(errorMiddleware(pino({ level: 'silent' })));
    expect((await request(app).get('/who').set('x-user', 'ok')).body).toEqual({ sub: 'u' });
    expectEnvelope(await request(app).get('/who'), 401, 'UNAUTHORIZED');
    const r = await request(app).post('/r').send({ n: 2 });
    expect([r.status, r.body]).toEqual([207, { n: 4 }]);
  });
});

describe('pagination', () => {
  it('pages through a list and says where the next page is', () => {
    const items = Array.from({ length: 5 }, (_, i) => i);
    expect(paginate(items, paginationQuery.parse({ page: '2', per_page: '2' }))).toEqual({
      items: [2, 3],
      pagination: { page: 2, per_page: 2, total: 5, next_page: 3 },
    });
    expect(paginate(items, paginationQuery.parse({ page: '3', per_page: '2' })).pagination.next_page).toBeNull();
    expect(paginationQuery.parse({})).toEqual({ page: 1, per_page: 50 });
    expect(paginationQuery.safeParse({ per_page: '500' }).success).toBe(false);
  });
});
