import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { freePort } from '@droplet-mesh/udc-kit/testing';
import type { UdcError } from '@droplet-mesh/udc-kit';
import { ProviderHttpClient } from '../src/providers/http/provider-http-client.js';
import { doErrorBody } from '../src/providers/digitalocean/digitalocean-mapping.js';
import { captureLogs, testLogger } from './helpers.js';

// A tiny real HTTP server whose behaviour each test sets: the client's own rules
// (timeouts, scrubbing, client-side rate limit) are tested here; provider behaviour
// is tested against the emulators.
let handler: (req: IncomingMessage, res: ServerResponse) => void = (_q, s) => s.end('{}');
let server: Server;
let base: string;
const TOKEN = 'tok-SECRET-abcdef0123456789';
const logs = captureLogs();

beforeAll(async () => {
  server = createServer((req, res) => handler(req, res));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

const client = (extra: Partial<ConstructorParameters<typeof ProviderHttpClient>[0]> = {}) =>
  new ProviderHttpClient({
    provider: 'digitalocean',
    baseUrl: base,
    token: TOKEN,
    timeoutMs: 300,
    logger: testLogger(logs.stream),
    parseError: doErrorBody,
    random: () => 0,
    ...extra,
  });

async function caught(p: Promise<unknown>): Promise<UdcError> {
  return p.then(
    () => {
      throw new Error('expected an error');
    },
    (e: unknown) => e as UdcError,
  );
}

describe('ProviderHttpClient', () => {
  it('times out every call; a GET is retried, then DEPENDENCY_UNAVAILABLE 504', async () => {
    let hits = 0;
    handler = () => void hits++; // never answers
    const c = client({ maxRetries: 1 });
    const err = await caught(c.get('/v2/account'));
    await c.close();
    expect(err.code).toBe('DEPENDENCY_UNAVAILABLE');
    expect(err.httpStatus).toBe(504);
    expect(hits).toBe(2);
  });

  it('an unreachable API is DEPENDENCY_UNAVAILABLE 503', async () => {
    const c = client({ baseUrl: `http://127.0.0.1:${await freePort()}`, maxRetries: 0 });
    const err = await caught(c.get('/v2/account'));
    await c.close();
    expect(err.httpStatus).toBe(503);
    expect(err.details).toMatchObject({ provider: 'digitalocean', operation: 'GET /v2/account' });
  });

  it('sends the token only in the Authorization header and scrubs it from provider messages', async () => {
    let auth: string | undefined;
    handler = (req, res) => {
      auth = req.headers.authorization;
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ id: 'bad_request', message: `token ${TOKEN} is not allowed here`, request_id: 'req-1' }));
    };
    const c = client();
    const err = await caught(c.call('POST', '/v2/droplets', { body: { name: 'x' } }));
    await c.close();
    expect(auth).toBe(`Bearer ${TOKEN}`);
    expect(err.code).toBe('INVALID_REQUEST');
    expect(err.details).toMatchObject({
      provider_code: 'bad_request',
      request_id: 'req-1',
      provider_message: 'token [redacted] is not allowed here',
    });
    expect(JSON.stringify({ m: err.message, d: err.details })).not.toContain(TOKEN);
    expect(logs.text()).not.toContain(TOKEN);
  });

  it('a 429 asking for longer than the maximum wait is RATE_LIMITED with Retry-After', async () => {
    handler = (_req, res) => {
      res.writeHead(429, { 'retry-after': '120', 'content-type': 'application/json' });
      res.end(JSON.stringify({ id: 'too_many_requests', message: 'API rate limit exceeded.' }));
    };
    const c = client({ maxRateLimitWaitMs: 1000 });
    const err = await caught(c.get('/v2/droplets'));
    await c.close();
    expect(err.code).toBe('RATE_LIMITED');
    expect(err.headers['Retry-After']).toBe('120');
  });

  it('keeps a client-side rate limit (Vultr: under 30 requests per second)', async () => {
    const at: number[] = [];
    handler = (_req, res) => {
      at.push(Date.now());
      res.end('{}');
    };
    const c = client({ maxRequestsPerSecond: 10 });
    await Promise.all(Array.from({ length: 15 }, () => c.get('/v2/account')));
    await c.close();
    expect(at).toHaveLength(15);
    // No 1 s window may hold more than 10 requests.
    for (let i = 10; i < at.length; i++) expect(at[i] - at[i - 10]).toBeGreaterThanOrEqual(950);
  });
});
