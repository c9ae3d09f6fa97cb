import type * as JestGlobals from '@jest/globals';
import type { Express } from 'express';
import request from 'supertest';
import type { RouteRecord } from '../api.js';
import type { Scope } from '../auth.js';
import { ERROR_CODES } from '../errors.js';

export interface ConformanceTarget {
  /** The droplet's Express app, or the base URL of a droplet running as its own process. */
  app: Express | string;
  /** The droplet's route table (droplet.api.routes). */
  routes: RouteRecord[];
  dropletName: string;
  /** A valid token with the given scopes. */
  token: (scopes: Scope[]) => string;
}

export const UDC_ENDPOINTS: Array<[method: 'get' | 'post', path: string, auth: boolean]> = [
  ['get', '/health', false],
  ['get', '/capabilities', false],
  ['get', '/state', true],
  ['get', '/dependencies', true],
  ['post', '/message', true],
  ['post', '/send', true],
  ['get', '/version', false],
  ['get', '/metrics', false],
  ['get', '/logs', true],
  ['get', '/events', true],
  ['get', '/proof', true],
  ['post', '/reload-config', true],
  ['post', '/shutdown', true],
  ['post', '/emergency-stop', true],
];

const STACK_PATTERN = /\bat .+\.(?:ts|js):\d+|node:internal|\/node_modules\//;

// Jest's globals, looked up when a suite runs, so that importing the testing helpers
// outside jest (benchmarks, scripts) does not load jest.
const jestGlobals = () => globalThis as unknown as typeof JestGlobals;

export function expectEnvelope(res: { status: number; body: unknown; text?: string }, status: number, code?: string): void {
  const { expect } = jestGlobals();
  expect(res.status).toBe(status);
  const body = res.body as { status: string; error: { code: string; message: string }; timestamp: string };
  expect(body.status).toBe('error');
  expect(ERROR_CODES).toContain(body.error.code);
  if (code) expect(body.error.code).toBe(code);
  expect(typeof body.error.message).toBe('string');
  expect(Number.isNaN(Date.parse(body.timestamp))).toBe(false);
  expect(res.text ?? JSON.stringify(res.body)).not.toMatch(STACK_PATTERN);
}

/**
 * A target for a droplet running elsewhere (its own process, in the mesh): the route table
 * is read back from its /openapi.json, which udc-kit builds from the same route specs.
 */
export async function conformanceTargetFromUrl(
  url: string,
  dropletName: string,
  token: (scopes: Scope[]) => string,
): Promise<ConformanceTarget> {
  const doc = (await (await fetch(`${url}/openapi.json`)).json()) as {
    paths: Record<string, Record<string, { security?: unknown[]; 'x-required-scope'?: Scope }>>;
  };
  const routes: RouteRecord[] = [];
  for (const [p, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const isPublic = Array.isArray(op.security) && op.security.length === 0;
      routes.push({
        method: method as RouteRecord['method'],
        path: p.replace(/\{([A-Za-z0-9_]+)\}/g, ':$1'),
        spec: { scope: isPublic ? 'public' : (op['x-required-scope'] ?? 'read') },
      });
    }
  }
  return { app: url, routes, dropletName, token };
}

function concretePath(path: string): string {
  return path.replace(/:([A-Za-z0-9_]+)/g, 'conformance-x').replace(/\*[A-Za-z0-9_]*/g, 'x');
}

/**
 * The UDC v1.0 conformance suite. Call it from a droplet's test file; it registers
 * jest tests that check all 14 endpoints, the envelopes, auth on every protected route
 * and the common error cases.
 */
export function udcConformanceSuite(label: string, setup: () => Promise<ConformanceTarget>, teardown?: () => Promise<void>): void {
  const { describe, it, expect, beforeAll, afterAll } = jestGlobals();
  describe(`UDC v1.0 conformance: ${label}`, () => {
    let t: ConformanceTarget;
    beforeAll(async () => {
      t = await setup();
    });
    afterAll(async () => {
      await teardown?.();
    });
    const auth = (scopes: Scope[] = ['read', 'write', 'admin']) => ({ Authorization: `Bearer ${t.token(scopes)}` });

    it('serves all 14 UDC endpoints', () => {
      const have = new Set(t.routes.map((r) => `${r.method} ${r.path}`));
      for (const [m, p] of UDC_ENDPOINTS) expect(have).toContain(`${m} ${p}`);
    });

    it('GET /health answers without auth with a UDC status and dependency detail', async () => {
      const res = await request(t.app).get('/health');
      expect([200, 503]).toContain(res.status);
      expect(['active', 'inactive', 'error']).toContain(res.body.status);
      expect(Array.isArray(res.body.dependencies)).toBe(true);
      expect(res.body.dependencies.map((d: { name: string }) => d.name)).toContain('nats');
    });

    it('GET /capabilities, /version and /metrics answer without auth', async () => {
      const caps = await request(t.app).get('/capabilities');
      expect(caps.status).toBe(200);
      expect(caps.body.droplet).toBe(t.dropletName);
      expect(caps.body.udc_version).toBe('1.0');
      expect(Array.isArray(caps.body.capabilities)).toBe(true);
      const ver = await request(t.app).get('/version');
      expect(ver.status).toBe(200);
      expect(typeof ver.body.version).toBe('string');
      const met = await request(t.app).get('/metrics');
      expect(met.status).toBe(200);
      expect(met.text).toContain('http_request_duration_seconds');
      expect(met.text).toContain('process_cpu_user_seconds_total');
    });

    it('every protected route refuses a missing or bad token with 401 in the envelope', async () => {
      const protectedRoutes = t.routes.filter((r) => (r.spec.scope ?? 'read') !== 'public');
      expect(protectedRoutes.length).toBeGreaterThanOrEqual(10);
      for (const r of protectedRoutes) {
        const path = concretePath(r.path);
        const none = await request(t.app)[r.method](path).send({});
        expectEnvelope(none, 401, 'UNAUTHORIZED');
        const bad = await request(t.app)[r.method](path).set('Authorization', 'Bearer not.a.jwt').send({});
        expectEnvelope(bad, 401, 'UNAUTHORIZED');
      }
    });

    it('routes needing a scope refuse a token without it with 403', async () => {
      const readOnly = auth(['read']);
      for (const r of t.routes.filter((x) => x.spec.scope === 'admin' || x.spec.scope === 'write')) {
        const res = await request(t.app)[r.method](concretePath(r.path)).set(readOnly).send({});
        expectEnvelope(res, 403, 'FORBIDDEN');
      }
    });

    it('GET /state reports real process figures', async () => {
      const res = await request(t.app)
        .get('/state')
        .set(auth(['read']));
      expect(res.status).toBe(200);
      for (const k of ['cpu_percent', 'memory_mb', 'uptime_seconds', 'requests_total', 'requests_per_minute', 'errors_last_hour'])
        expect(typeof res.body[k]).toBe('number');
      expect(res.body.memory_mb).toBeGreaterThan(1);
      expect(res.body.requests_total).toBeGreaterThan(0);
      expect(Number.isNaN(Date.parse(res.body.last_restart))).toBe(false);
    });

    it('GET /dependencies, /logs, /events and /proof answer', async () => {
      const deps = await request(t.app)
        .get('/dependencies')
        .set(auth(['read']));
      expect(deps.status).toBe(200);
      expect(Array.isArray(deps.body.dependencies)).toBe(true);
      const logs = await request(t.app)
        .get('/logs?limit=5&level=info')
        .set(auth(['read']));
      expect(logs.status).toBe(200);
      expect(logs.body.logs.length).toBeLessThanOrEqual(5);
      const badLogs = await request(t.app)
        .get('/logs?limit=nope')
        .set(auth(['read']));
      expectEnvelope(badLogs, 400, 'INVALID_REQUEST');
      const events = await request(t.app)
        .get('/events?limit=5')
        .set(auth(['read']));
      expect(events.status).toBe(200);
      expect(Array.isArray(events.body.events)).toBe(true);
      const proof = await request(t.app)
        .get('/proof')
        .set(auth(['read']));
      expect(proof.status).toBe(200);
      expect(proof.body.sha256).toMatch(/^[0-9a-f]{64}$/);
    });

    it('POST /message dispatches, reports unknown actions and validates the envelope', async () => {
      const ping = await request(t.app)
        .post('/message')
        .set(auth(['read']))
        .send({
          source: 'conformance',
          target: t.dropletName,
          message_type: 'query',
          payload: { action: 'ping' },
          timestamp: new Date().toISOString(),
          trace_id: 'conf-1',
        });
      expect(ping.status).toBe(200);
      expect(ping.body).toMatchObject({ received: true, trace_id: 'conf-1', result: 'success' });
      const unknown = await request(t.app)
        .post('/message')
        .set(auth())
        .send({ source: 'conformance', target: t.dropletName, message_type: 'command', payload: { action: 'no-such-action' } });
      expect(unknown.status).toBe(200);
      expect(unknown.body.result).toBe('error');
      expect(unknown.body.error.code).toBe('NOT_FOUND');
      const invalid = await request(t.app).post('/message').set(auth()).send({ source: 'x', message_type: 'shout' });
      expectEnvelope(invalid, 400, 'INVALID_REQUEST');
      expect(JSON.stringify(invalid.body.error.details)).toContain('message_type');
    });

    it('errors: malformed JSON 400, body over the limit 413, unknown route 404, all enveloped', async () => {
      const malformed = await request(t.app).post('/message').set(auth()).set('Content-Type', 'application/json').send('{"source": ');
      expectEnvelope(malformed, 400, 'INVALID_REQUEST');
      const big = await request(t.app)
        .post('/message')
        .set(auth())
        .set('Content-Type', 'application/json')
        .send(
          JSON.stringify({ source: 'x', target: t.dropletName, message_type: 'query', payload: { blob: 'x'.repeat(12 * 1024 * 1024) } }),
        );
      expectEnvelope(big, 413);
      const missing = await request(t.app).get('/no/such/route/here');
      expectEnvelope(missing, 404, 'NOT_FOUND');
    });

    it('echoes X-Correlation-ID and serves an OpenAPI document', async () => {
      const res = await request(t.app).get('/version').set('X-Correlation-ID', 'conformance-corr-1');
      expect(res.headers['x-correlation-id']).toBe('conformance-corr-1');
      const gen = await request(t.app).get('/version');
      expect(gen.headers['x-correlation-id']).toMatch(/^[0-9a-f-]{36}$/);
      const doc = await request(t.app).get('/openapi.json');
      expect(doc.status).toBe(200);
      expect(doc.body.openapi).toMatch(/^3\./);
      expect(Object.keys(doc.body.paths)).toContain('/health');
    });

    it('POST /reload-config with the admin scope re-validates the configuration', async () => {
      const res = await request(t.app)
        .post('/reload-config')
        .set(auth(['admin']));
      expect(res.status).toBe(200);
      expect(res.body.reloaded).toBe(true);
    });
  });
}
