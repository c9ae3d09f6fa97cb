// fast-check throws random bodies, queries and headers at every route of a started droplet
// (real nats-server behind /send): never a 500, never a crash, always an envelope or a 2xx.
import { Agent, request as httpRequest } from 'node:http';
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import fc from 'fast-check';
import { ERROR_CODES } from '../src/errors.js';
import type { Scope } from '../src/auth.js';
import { startNatsServer, startTestAuthority, type NatsServerHandle, type TestAuthority } from '../src/testing/index.js';
import { captureStream, createTestDroplet, type TestDroplet } from './helpers.js';

let nats: NatsServerHandle;
let authority: TestAuthority;
let droplet: TestDroplet;
let disposable: TestDroplet;
let disposableServer: Server;
let url: string;
let disposableUrl: string;
const agent = new Agent({ keepAlive: true, maxSockets: 4 });
const exit = jest.fn();
const logs = captureStream();

/** The logged cause of a 500, so a failure report says what broke. */
function causeOf(text: string): string {
  const trace = /"trace_id":"([^"]+)"/.exec(text)?.[1];
  const line = trace && logs.lines().find((l) => l.correlation_id === trace && l.err);
  return line ? ` [logged: ${JSON.stringify((line.err as { stack?: string }).stack ?? line.err).slice(0, 600)}]` : '';
}

interface Sent {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string;
}
interface Got {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

function send(base: string, r: Sent): Promise<Got> {
  return new Promise((resolve, reject) => {
    // Always frame the body: Node sends a GET/DELETE body unframed otherwise, and the server
    // would read it as the next request on the keep-alive connection.
    const headers = r.body === undefined ? r.headers : { ...r.headers, 'content-length': String(Buffer.byteLength(r.body)) };
    const req = httpRequest(`${base}${r.path}`, { method: r.method, headers, agent, timeout: 20_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer in 20 s: ${r.method} ${r.path}`)));
    req.on('error', reject);
    req.end(r.body);
  });
}

const STACK = /\bat .+\.(?:ts|js):\d+|node:internal|node_modules/;

/** The property itself: what any answer to any request must look like. */
function checkAnswer(r: Sent, got: Got): void {
  const where = `${r.method} ${r.path} → ${got.status} ${got.text.slice(0, 300)}`;
  if (got.status >= 500 && !(got.status === 503 && (r.path.startsWith('/send') || r.path.startsWith('/health'))))
    throw new Error(`server error: ${where}${causeOf(got.text)}`);
  if (STACK.test(got.text)) throw new Error(`stack trace in the response: ${where}`);
  if (got.status < 400 || r.method === 'HEAD') return;
  if (r.path.startsWith('/health')) return; // 503 with the health report is the contract
  let body: { status?: string; error?: { code?: string; message?: string }; timestamp?: string };
  try {
    body = JSON.parse(got.text);
  } catch {
    throw new Error(`error without a JSON envelope: ${where}`);
  }
  if (
    body.status !== 'error' ||
    !ERROR_CODES.includes(body.error?.code as never) ||
    typeof body.error?.message !== 'string' ||
    Number.isNaN(Date.parse(body.timestamp ?? ''))
  ) {
    throw new Error(`error without the UDC envelope: ${where}`);
  }
}

// ---- generators ----
const KNOWN_FIELDS = [
  'text',
  'count',
  'name',
  'user',
  'password',
  'type',
  'level',
  'data',
  'action',
  'detail',
  'source',
  'target',
  'message_type',
  'payload',
  'trace_id',
  'timestamp',
  'priority',
  'timeout_ms',
  'retry_count',
  'delay_seconds',
  'reason',
];
// Values the schemas know, plus the usual fuzzing dictionary (whitespace, wildcards, NUL, unicode, traversal).
const KNOWN_VALUES = [
  'testdrop',
  'peer',
  'query',
  'command',
  'status',
  'event',
  'echo',
  'ping',
  'later',
  'explode',
  'info',
  'warn',
  'error',
  'high',
  'low',
  '',
  'x'.repeat(2000),
  '2026-01-01T00:00:00Z',
  'Bad Name',
  ' ',
  'a b',
  'a\tb',
  '*',
  '>',
  'a.>',
  '\u0000',
  'é',
  '../..',
  '%s%n',
];
const KNOWN_QUERY = ['level', 'since', 'limit', 'type', 'verbose', 'ms', 'page', 'per_page'];

const fieldValue = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.constantFrom<unknown>(...KNOWN_VALUES),
  fc.integer({ min: -5, max: 5 }),
  fc.constant({ action: 'echo', text: 'hi' }),
);
const bodyArb: fc.Arbitrary<{ contentType?: string; body?: string }> = fc.oneof(
  fc.constant({}),
  fc.jsonValue({ maxDepth: 4 }).map((v) => ({ contentType: 'application/json', body: JSON.stringify(v) })),
  fc
    .dictionary(fc.constantFrom(...KNOWN_FIELDS), fieldValue, { maxKeys: 8 })
    .map((v) => ({ contentType: 'application/json', body: JSON.stringify(v) })),
  fc
    .tuple(
      fc.string({ maxLength: 200 }),
      fc.constantFrom(
        'application/json',
        'text/plain',
        'application/x-www-form-urlencoded',
        'application/json; charset=utf-16',
        'application/json; charset=nope',
        'multipart/form-data; boundary=x',
        'gibberish',
      ),
    )
    .map(([b, ct]) => ({ contentType: ct, body: b })),
  fc
    .constantFrom(
      '{',
      '{"text":',
      '[1,2',
      'null',
      '"str"',
      '123',
      'true',
      '{"__proto__":{"admin":true}}',
      '{"constructor":{"prototype":{"x":1}}}',
    )
    .map((b) => ({ contentType: 'application/json', body: b })),
);

const queryArb = fc.oneof(
  fc.constant(''),
  fc
    .array(
      fc.tuple(
        fc.oneof(fc.constantFrom(...KNOWN_QUERY), fc.string({ maxLength: 10 })),
        fc.oneof(
          fc.string({ maxLength: 30 }),
          fc.constantFrom('warn', 'debug', '0', '-1', '1001', '5', 'true', '2026-01-01T00:00:00Z', 'route.'),
        ),
      ),
      { maxLength: 5 },
    )
    .map((pairs) => `?${new URLSearchParams(pairs).toString()}`),
  fc.constantFrom(
    '?%',
    '?%E0%A4%A',
    '?limit=%FF',
    '?a[b][c]=1',
    '?limit[]=1',
    '?level=warn&level=error',
    '?since=' + encodeURIComponent('2026-13-45T99:99:99Z'),
    '?' + 'a=1&'.repeat(500),
  ),
);

const tokenChars = fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789-_'.split(''));
const headerName = fc
  .string({ unit: tokenChars, minLength: 1, maxLength: 20 })
  .filter(
    (n) =>
      !['host', 'content-length', 'transfer-encoding', 'connection', 'expect', 'upgrade', 'te', 'trailer', 'keep-alive'].includes(n) &&
      !n.startsWith('proxy-'),
  );
const headerValue = fc.string({
  unit: fc.constantFrom(...Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i))),
  maxLength: 60,
});
const scopesArb = fc.subarray<Scope>(['read', 'write', 'admin']);

type AuthChoice = { kind: 'none' } | { kind: 'valid'; scopes: Scope[] } | { kind: 'raw'; value: string };
const authArb: fc.Arbitrary<AuthChoice> = fc.oneof(
  { weight: 1, arbitrary: fc.constant<AuthChoice>({ kind: 'none' }) },
  { weight: 3, arbitrary: scopesArb.map<AuthChoice>((scopes) => ({ kind: 'valid', scopes })) },
  { weight: 1, arbitrary: headerValue.map<AuthChoice>((v) => ({ kind: 'raw', value: v })) },
  {
    weight: 1,
    arbitrary: fc.constantFrom<AuthChoice>(
      { kind: 'raw', value: 'Bearer not.a.jwt' },
      { kind: 'raw', value: 'Bearer ' + 'a'.repeat(9000) },
      { kind: 'raw', value: 'Basic Zm9vOmJhcg==' },
    ),
  },
);

const headersArb = fc.record({
  auth: authArb,
  correlation: fc.option(fc.oneof(headerValue, fc.constant('x'.repeat(300))), { nil: undefined }),
  encoding: fc.option(fc.constantFrom('gzip', 'deflate', 'br', 'identity', 'x-unknown'), { nil: undefined, freq: 6 }),
  extra: fc.dictionary(headerName, headerValue, { maxKeys: 4 }),
});

const methodArb = (own: string) =>
  fc.oneof(
    { weight: 6, arbitrary: fc.constant(own.toUpperCase()) },
    { weight: 1, arbitrary: fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS') },
  );
const segment = fc.oneof(
  fc.constantFrom('abc', 'missing', 'ABC', '..', '%2F', '%00', '%E0%A4', 'x'.repeat(300)),
  fc.string({ maxLength: 20 }).map(encodeURIComponent),
);

function requestArb(paths: { method: string; path: string }[]): fc.Arbitrary<Sent> {
  return fc
    .constantFrom(...paths)
    .chain((route) =>
      fc.record({
        method: methodArb(route.method),
        path: fc.array(segment, { minLength: 3, maxLength: 3 }).map((segs) => {
          let i = 0;
          return route.path.replace(/:[A-Za-z0-9_]+/g, () => segs[i++]);
        }),
        query: queryArb,
        headers: headersArb,
        body: bodyArb,
      }),
    )
    .map(({ method, path, query, headers, body }) => {
      const h: Record<string, string> = { ...headers.extra };
      if (headers.auth.kind === 'valid') h.authorization = `Bearer ${authority.mint({ scopes: headers.auth.scopes })}`;
      if (headers.auth.kind === 'raw') h.authorization = headers.auth.value;
      if (headers.correlation !== undefined) h['x-correlation-id'] = headers.correlation;
      if (headers.encoding) h['content-encoding'] = headers.encoding;
      const withBody = body.body !== undefined && method !== 'GET' && method !== 'HEAD';
      if (withBody && body.contentType) h['content-type'] = body.contentType;
      return { method, path: `${path}${query}`, headers: h, body: withBody ? body.body : undefined };
    });
}

beforeAll(async () => {
  nats = await startNatsServer();
  authority = await startTestAuthority();
  const env = { NATS_URL: nats.url, ...authority.env(), BODY_LIMIT: '64kb' };
  droplet = createTestDroplet({ env, exit, logDestination: logs.stream });
  url = (await droplet.start({ port: 0 })).url;
  // /shutdown and /emergency-stop get their own droplet, served but never started, so a
  // valid random shutdown cannot take the main one down mid-run.
  disposable = createTestDroplet({ env, exit, logDestination: logs.stream });
  disposableServer = createServer(disposable.app);
  await new Promise<void>((r) => disposableServer.listen(0, '127.0.0.1', () => r()));
  disposableUrl = `http://127.0.0.1:${(disposableServer.address() as { port: number }).port}`;
});

afterAll(async () => {
  agent.destroy();
  await droplet?.stop();
  await disposable?.stop();
  await new Promise<void>((r) => (disposableServer ? disposableServer.close(() => r()) : r()));
  await authority?.close();
  await nats?.stop({ removeStore: true });
});

const LIFECYCLE = new Set(['post /shutdown', 'post /emergency-stop']);
/** Test routes that fail on purpose (a handler bug → 500, a 418 reply). */
const DELIBERATE = new Set(['get /boom', 'put /teapot']);

describe('random requests at every route', () => {
  it('never get a 500, a stack trace or a bare error', async () => {
    const paths = [
      ...droplet.api.routes
        .filter((r) => !LIFECYCLE.has(`${r.method} ${r.path}`) && !DELIBERATE.has(`${r.method} ${r.path}`))
        .map((r) => ({ method: r.method, path: r.path })),
      { method: 'get', path: '/docs/' },
      { method: 'get', path: '/docs/swagger-ui.css' },
      { method: 'get', path: '/redoc' },
      { method: 'get', path: '/no/such/:route' },
    ];
    expect(paths.length).toBeGreaterThanOrEqual(25);
    await fc.assert(
      fc.asyncProperty(requestArb(paths), async (r) => checkAnswer(r, await send(url, r))),
      { numRuns: 800, seed: Number(process.env.FC_SEED ?? Date.now() % 2 ** 31) },
    );
    // Still alive and healthy afterwards.
    const health = await send(url, { method: 'GET', path: '/health', headers: {} });
    expect(health.status).toBe(200);
    expect(JSON.parse(health.text).status).toBe('active');
  }, 50_000);

  it('/shutdown and /emergency-stop too', async () => {
    const paths = [
      { method: 'post', path: '/shutdown' },
      { method: 'post', path: '/emergency-stop' },
    ];
    await fc.assert(
      fc.asyncProperty(requestArb(paths), async (r) => checkAnswer(r, await send(disposableUrl, r))),
      { numRuns: 150 },
    );
  }, 30_000);
});
