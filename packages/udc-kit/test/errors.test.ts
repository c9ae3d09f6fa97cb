import { describe, expect, it, test } from '@jest/globals';
import express from 'express';
import request from 'supertest';
import { z } from 'zod';
import pino from 'pino';
import {
  Conflict,
  DependencyUnavailable,
  ERROR_CODES,
  errorEnvelope,
  fieldErrors,
  Forbidden,
  InternalError,
  InvalidRequest,
  NotFound,
  PayloadTooLarge,
  RateLimited,
  UdcError,
  Unauthorized,
  Unprocessable,
} from '../src/errors.js';
import { errorMiddleware } from '../src/error-middleware.js';
import { expectEnvelope } from '../src/testing/index.js';
import { captureStream } from './helpers.js';

describe('typed errors → envelope', () => {
  test.each([
    [new InvalidRequest('bad'), 400, 'INVALID_REQUEST'],
    [new Unprocessable('nginx -t refused it'), 422, 'INVALID_REQUEST'],
    [new PayloadTooLarge(), 413, 'INVALID_REQUEST'],
    [new Unauthorized(), 401, 'UNAUTHORIZED'],
    [new Forbidden(), 403, 'FORBIDDEN'],
    [new NotFound(), 404, 'NOT_FOUND'],
    [new Conflict('exists'), 409, 'CONFLICT'],
    [new RateLimited('slow down', 2.2), 429, 'RATE_LIMITED'],
    [new DependencyUnavailable('nats down'), 503, 'DEPENDENCY_UNAVAILABLE'],
    [new InternalError(), 500, 'INTERNAL_ERROR'],
  ])('%p has status %i and code %s', (err, status, code) => {
    expect(err).toBeInstanceOf(UdcError);
    expect(err.httpStatus).toBe(status);
    expect(err.code).toBe(code);
    const env = err.toEnvelope();
    expect(env.status).toBe('error');
    expect(env.error.code).toBe(code);
    expect(env.error.message).toBe(err.message);
    expect(Number.isNaN(Date.parse(env.timestamp))).toBe(false);
    expect(ERROR_CODES).toContain(env.error.code);
    expect(JSON.stringify(env)).not.toContain('stack');
  });

  it('names each error after its class', () => {
    expect(new NotFound().name).toBe('NotFound');
    expect(new RateLimited('x', 1).name).toBe('RateLimited');
  });

  it('Unauthorized carries WWW-Authenticate; RateLimited a rounded-up Retry-After and details', () => {
    expect(new Unauthorized().headers).toEqual({ 'WWW-Authenticate': 'Bearer' });
    const rl = new RateLimited('slow down', 2.2, { bucket: 'x' });
    expect(rl.headers['Retry-After']).toBe('3');
    expect(rl.details).toEqual({ retry_after_seconds: 2.2, bucket: 'x' });
    expect(new RateLimited('x', 0).headers['Retry-After']).toBe('1');
  });

  it('omits details when there are none and keeps them when given', () => {
    expect('details' in errorEnvelope('NOT_FOUND', 'x').error).toBe(false);
    expect(errorEnvelope('CONFLICT', 'x', { id: 1 }).error.details).toEqual({ id: 1 });
  });

  it('fieldErrors gives one entry per zod issue, with the dotted path', () => {
    const r = z.object({ a: z.object({ b: z.number() }), c: z.string() }).safeParse({ a: { b: 'x' } });
    expect(r.success).toBe(false);
    const f = fieldErrors(r.error!.issues);
    expect(f.fields.map((x) => x.path).sort()).toEqual(['a.b', 'c']);
    expect(f.fields.every((x) => typeof x.message === 'string' && x.message.length > 0)).toBe(true);
    expect(fieldErrors([{ path: [], message: 'root' }]).fields[0].path).toBe('(root)');
  });
});

describe('errorMiddleware', () => {
  function appThrowing(thrower: () => unknown) {
    const cap = captureStream();
    const logger = pino({}, cap.stream);
    const app = express();
    app.use(express.json({ limit: '1kb' }));
    app.use((req, _res, next) => {
      req.correlationId = 'corr-err-1';
      next();
    });
    app.post('/x', () => {
      throw thrower();
    });
    app.get('/x', () => {
      throw thrower();
    });
    app.use(errorMiddleware(logger));
    return { app, cap };
  }

  it('sends a UdcError as its envelope with its headers', async () => {
    const { app } = appThrowing(() => new RateLimited('slow', 5));
    const res = await request(app).get('/x');
    expectEnvelope(res, 429, 'RATE_LIMITED');
    expect(res.headers['retry-after']).toBe('5');
  });

  it('turns a ZodError into 400 INVALID_REQUEST with the fields', async () => {
    const { app } = appThrowing(() => z.object({ n: z.number() }).parse({ n: 'x' }));
    const res = await request(app).get('/x');
    expectEnvelope(res, 400, 'INVALID_REQUEST');
    expect(res.body.error.details.fields[0].path).toBe('n');
  });

  it('turns malformed JSON into 400 and an oversized body into 413', async () => {
    const { app } = appThrowing(() => new Error('unreachable'));
    const bad = await request(app).post('/x').set('Content-Type', 'application/json').send('{"a":');
    expectEnvelope(bad, 400, 'INVALID_REQUEST');
    const big = await request(app)
      .post('/x')
      .set('Content-Type', 'application/json')
      .send(JSON.stringify({ a: 'x'.repeat(5000) }));
    expectEnvelope(big, 413, 'INVALID_REQUEST');
    const enc = await request(app).post('/x').set('Content-Type', 'application/json; charset=klingon').send('{}');
    expect(enc.status).toBe(415);
    expectEnvelope(enc, 415, 'INVALID_REQUEST');
  });

  it('hides an unexpected error behind 500 INTERNAL_ERROR with the trace id; the stack goes to the log only', async () => {
    const { app, cap } = appThrowing(() => new Error('db password=hunter2 at /srv/x.ts:1'));
    const res = await request(app).get('/x');
    expectEnvelope(res, 500, 'INTERNAL_ERROR');
    expect(res.body.error.details).toEqual({ trace_id: 'corr-err-1' });
    expect(res.text).not.toContain('hunter2');
    const logged = cap.lines().find((l) => l.msg === 'unexpected error') as { err: { stack: string; message: string } };
    expect(logged.err.stack).toContain('Error: db password');
  });

  it('logs 5xx UdcErrors but not 4xx ones', async () => {
    const a = appThrowing(() => new DependencyUnavailable('nats down'));
    await request(a.app).get('/x');
    expect(a.cap.lines().some((l) => l.msg === 'nats down')).toBe(true);
    const b = appThrowing(() => new NotFound('nope'));
    await request(b.app).get('/x');
    expect(b.cap.raw).toHaveLength(0);
  });
});
