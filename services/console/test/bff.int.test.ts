import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { freePort, waitFor, type NatsServerHandle } from '@droplet-mesh/udc-kit/testing';
import {
  ADMIN_KEY,
  closeAll,
  operatorToken,
  registerRecord,
  startConsole,
  startExample,
  startNatsServer,
  startRegistry,
  startTicker,
  type Closer,
} from './support/mesh.js';

let nats: NatsServerHandle;
let registry: Awaited<ReturnType<typeof startRegistry>>;
let consoleApp: Awaited<ReturnType<typeof startConsole>>;
let ticker: Awaited<ReturnType<typeof startTicker>>;
const closers: Closer[] = [];
let clock = Date.now();
let clockOffset = 0;

beforeAll(async () => {
  nats = await startNatsServer();
  registry = await startRegistry(nats.url);
  closers.push(registry);
  closers.push(await startExample(nats.url, registry.url));
  ticker = await startTicker(nats.url, registry.url);
  closers.push(ticker);
  // A droplet that registered and then went away, and an app another droplet stewards.
  await registerRecord(registry.url, { id: 'ghost', url: `http://127.0.0.1:${await freePort()}`, kind: 'service' });
  await registerRecord(registry.url, { id: 'shop-web', url: ticker.url, kind: 'service', steward: 'deployer' });
  consoleApp = await startConsole(nats.url, registry.url, { now: () => Date.now() + clockOffset });
  closers.push(consoleApp);
  clock = Date.now();
}, 60_000);

afterAll(async () => {
  await closeAll(closers, nats);
});

interface Signed {
  cookie: string;
  csrf: string;
  setCookie: string;
}

async function call(path: string, init: RequestInit & { headers?: Record<string, string> } = {}) {
  return fetch(`${consoleApp.url}${path}`, { ...init, signal: AbortSignal.timeout(15_000) });
}

async function signIn(body: Record<string, unknown> = { admin_key: ADMIN_KEY }, headers: Record<string, string> = {}): Promise<Signed> {
  const res = await call('/session', {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  expect(res.status).toBe(201);
  const setCookie = res.headers.get('set-cookie') ?? '';
  const json = (await res.json()) as { csrf_token: string };
  return { cookie: setCookie.split(';')[0], csrf: json.csrf_token, setCookie };
}

const authed = (s: Signed, extra: Record<string, string> = {}) => ({ cookie: s.cookie, ...extra });
const changing = (s: Signed, extra: Record<string, string> = {}) => ({
  cookie: s.cookie,
  'x-csrf-token': s.csrf,
  'content-type': 'application/json',
  ...extra,
});

async function envelope(res: Response) {
  const body = (await res.json()) as {
    status: string;
    error: { code: string; message: string; details?: { fields?: Array<{ path: string }>; [k: string]: unknown } };
  };
  expect(body.status).toBe('error');
  return body.error;
}

describe('sign-in', () => {
  it('exchanges the admin key for an HttpOnly, SameSite=Strict session cookie; the token never reaches the browser', async () => {
    const res = await call('/session', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ admin_key: ADMIN_KEY }),
    });
    expect(res.status).toBe(201);
    const setCookie = res.headers.get('set-cookie')!;
    expect(setCookie).toMatch(/^mesh_console=[A-Za-z0-9_-]{43};/);
    expect(setCookie).toContain('HttpOnly');
    expect(setCookie).toContain('SameSite=Strict');
    expect(setCookie).toContain('Path=/');
    expect(setCookie).not.toContain('Secure'); // plain HTTP on loopback
    const maxAge = Number(/Max-Age=(\d+)/.exec(setCookie)![1]);
    expect(maxAge).toBeGreaterThan(3000);
    expect(maxAge).toBeLessThanOrEqual(3600);
    const text = await res.text();
    expect(text).not.toMatch(/eyJ/); // no JWT in the body
    const body = JSON.parse(text);
    expect(body).toMatchObject({ subject: 'operator', scopes: ['read', 'write', 'admin'] });
    expect(body.csrf_token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(res.headers.get('cache-control')).toBe('no-store');
  });

  it('marks the cookie Secure (with the __Host- prefix) when the request came over HTTPS', async () => {
    const s = await signIn({ admin_key: ADMIN_KEY }, { 'x-forwarded-proto': 'https' });
    expect(s.setCookie).toMatch(/^__Host-mesh_console=/);
    expect(s.setCookie).toContain('Secure');
    const me = await call('/session', { headers: { cookie: s.cookie } });
    expect(me.status).toBe(200);
  });

  it('accepts an operator token instead of the admin key', async () => {
    const s = await signIn({ token: await operatorToken(registry.url) });
    const me = await call('/session', { headers: authed(s) });
    expect(me.status).toBe(200);
    expect(await me.json()).toMatchObject({ subject: 'operator', csrf_token: s.csrf });
  });

  it('refuses a wrong key or a forged token with 401 in the envelope, and a bad body with 400 at the field', async () => {
    const bad = await call('/session', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ admin_key: 'wrong-key-0123456789' }),
    });
    expect(bad.status).toBe(401);
    expect((await envelope(bad)).code).toBe('UNAUTHORIZED');
    expect(bad.headers.get('set-cookie')).toBeNull();
    const forged = await call('/session', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token: 'a.b.c' }),
    });
    expect(forged.status).toBe(401);
    const both = await call('/session', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({}) });
    expect(both.status).toBe(400);
    const e = await envelope(both);
    expect(e.code).toBe('INVALID_REQUEST');
    expect(e.details?.fields?.[0].path).toBe('admin_key');
  });

  it('refuses a sign-in posted from another origin', async () => {
    const res = await call('/session', {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: 'https://evil.example' },
      body: JSON.stringify({ admin_key: ADMIN_KEY }),
    });
    expect(res.status).toBe(403);
    expect((await envelope(res)).code).toBe('FORBIDDEN');
  });

  it('limits failed sign-ins per address with 429 RATE_LIMITED', async () => {
    const strict = await startConsole(nats.url, registry.url, { env: { CONSOLE_SIGNIN_FAILURES_PER_MIN: '2' } });
    closers.push(strict);
    const attempt = () =>
      fetch(`${strict.url}/session`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ token: 'not.a.token' }),
        signal: AbortSignal.timeout(10_000),
      });
    expect((await attempt()).status).toBe(401);
    expect((await attempt()).status).toBe(401);
    const limited = await attempt();
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toMatch(/^\d+$/);
    expect((await envelope(limited)).code).toBe('RATE_LIMITED');
  });

  it('GET /session without a cookie is 401 UNAUTHORIZED', async () => {
    const res = await call('/session');
    expect(res.status).toBe(401);
    const e = await envelope(res);
    expect(e.code).toBe('UNAUTHORIZED');
    expect(e.details).toEqual({ console_session: 'missing' });
  });
});

describe('forwarding /api/<droplet>/<path>', () => {
  let s: Signed;
  beforeAll(async () => {
    s = await signIn();
  });

  it('finds the droplet through the registry and calls it with the session token, never the cookie', async () => {
    const res = await call('/api/ticker/whoami', { headers: authed(s) });
    expect(res.status).toBe(200);
    // Forwarded answers can never run as a page of the console's origin.
    expect(res.headers.get('content-security-policy')).toContain('sandbox');
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(await res.json()).toEqual({ sub: 'operator', cookie: null });
    const reg = await call('/api/registry/droplets?kind=service&per_page=50', { headers: authed(s) });
    expect(reg.status).toBe(200);
    const ids = ((await reg.json()) as { items: Array<{ id: string }> }).items.map((d) => d.id);
    expect(ids).toEqual(expect.arrayContaining(['registry', 'example', 'ticker', 'ghost']));
  });

  it("answers its own health for the overview's console row, and forwards nothing else to itself", async () => {
    const own = await call('/api/console/health', { headers: authed(s) });
    expect(own.status).toBe(200);
    expect(await own.json()).toMatchObject({ droplet: 'console', status: 'active' });
    expect((await call('/api/console/health')).status).toBe(401);
    expect((await call('/api/console/session', { headers: authed(s) })).status).toBe(404);
  });

  it('refuses without a session', async () => {
    const res = await call('/api/example/version');
    expect(res.status).toBe(401);
    expect((await envelope(res)).code).toBe('UNAUTHORIZED');
  });

  it('requires the CSRF token on every change, and forwards the JSON body and Idempotency-Key with it', async () => {
    const none = await call('/api/ticker/things', {
      method: 'POST',
      headers: authed(s, { 'content-type': 'application/json' }),
      body: '{"a":1}',
    });
    expect(none.status).toBe(403);
    expect((await envelope(none)).details).toEqual({ csrf: 'invalid' });
    const wrong = await call('/api/ticker/things', {
      method: 'POST',
      headers: changing(s, { 'x-csrf-token': 'x'.repeat(43) }),
      body: '{"a":1}',
    });
    expect(wrong.status).toBe(403);
    const other = await signIn();
    const crossed = await call('/api/ticker/things', {
      method: 'POST',
      headers: changing(s, { 'x-csrf-token': other.csrf }),
      body: '{"a":1}',
    });
    expect(crossed.status).toBe(403);
    const ok = await call('/api/ticker/things', { method: 'POST', headers: changing(s, { 'idempotency-key': 'k-1' }), body: '{"a":1}' });
    expect(ok.status).toBe(201);
    expect(await ok.json()).toEqual({ got: { a: 1 }, idem: 'k-1' });
  });

  it('streams a multipart upload through untouched', async () => {
    const form = new FormData();
    const archive = Buffer.alloc(3 * 1024 * 1024, 7);
    form.append('project', 'shop');
    form.append('source', new Blob([archive]), 'app.tar.gz');
    const req = new Request(`${consoleApp.url}/api/ticker/upload`, { method: 'POST', body: form });
    const body = Buffer.from(await req.arrayBuffer());
    const type = req.headers.get('content-type')!;
    const res = await call('/api/ticker/upload', {
      method: 'POST',
      headers: { cookie: s.cookie, 'x-csrf-token': s.csrf, 'content-type': type },
      body,
    });
    expect(res.status).toBe(200);
    const got = (await res.json()) as { bytes: number; sha256: string; type: string };
    expect(got).toEqual({ bytes: body.length, sha256: createHash('sha256').update(body).digest('hex'), type });
  });

  it('passes a droplet validation error through in its UDC envelope, field paths included', async () => {
    const res = await call('/api/example/echo', { method: 'POST', headers: changing(s), body: JSON.stringify({ text: '' }) });
    expect(res.status).toBe(400);
    const e = await envelope(res);
    expect(e.code).toBe('INVALID_REQUEST');
    expect(e.details?.fields?.[0].path).toBe('text');
    const ok = await call('/api/example/echo', { method: 'POST', headers: changing(s), body: JSON.stringify({ text: 'hi' }) });
    expect(await ok.json()).toEqual({ echo: 'hi' });
  });

  it('a droplet that is down is a 503 DEPENDENCY_UNAVAILABLE envelope naming it', async () => {
    const res = await call('/api/ghost/health', { headers: authed(s) });
    expect(res.status).toBe(503);
    const e = await envelope(res);
    expect(e.code).toBe('DEPENDENCY_UNAVAILABLE');
    expect(e.message).toContain("'ghost'");
    expect(e.details).toEqual({ droplet: 'ghost' });
  });

  it('unknown droplets, apps other droplets steward and hostile paths are refused', async () => {
    const unknown = await call('/api/nobody/health', { headers: authed(s) });
    expect(unknown.status).toBe(404);
    expect((await envelope(unknown)).code).toBe('NOT_FOUND');
    const app = await call('/api/shop-web/whoami', { headers: authed(s) });
    expect(app.status).toBe(404);
    // One of the mesh's own droplets that is not registered is down, not unknown.
    const deployer = await call('/api/deployer/deployments', { headers: authed(s) });
    expect(deployer.status).toBe(503);
    expect(await envelope(deployer)).toMatchObject({ code: 'DEPENDENCY_UNAVAILABLE', details: { droplet: 'deployer', registered: false } });
    for (const p of ['/api/example/%2e%2e/x', '/api/example/a/%2E%2e/b', '/api/Example/health', '/api/example/%00']) {
      const res = await call(p, { headers: authed(s) });
      expect([400, 404]).toContain(res.status);
      expect((await envelope(res)).code).toMatch(/INVALID_REQUEST|NOT_FOUND/);
    }
  });

  it('streams server-sent events as they come, not at the end', async () => {
    const started = Date.now();
    const res = await call('/api/ticker/ticks?n=3&every_ms=400', { headers: authed(s, { accept: 'text/event-stream' }) });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const reader = res.body!.getReader();
    const first = await reader.read();
    const firstAt = Date.now() - started;
    expect(new TextDecoder().decode(first.value)).toContain('event: tick');
    let rest = '';
    for (;;) {
      const r = await reader.read();
      if (r.done) break;
      rest += new TextDecoder().decode(r.value);
    }
    const total = Date.now() - started;
    expect(rest).toContain('"i":3');
    // The first event arrived well before the stream ended (3 × 400 ms).
    expect(total - firstAt).toBeGreaterThanOrEqual(600);
  });

  it('ends a forwarded stream when the session is signed out', async () => {
    const own = await signIn();
    const res = await call('/api/ticker/forever', { headers: authed(own) });
    const reader = res.body!.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toContain('hello');
    const out = await call('/session', { method: 'DELETE', headers: changing(own) });
    expect(out.status).toBe(204);
    const end = await Promise.race([
      (async () => {
        for (;;) if ((await reader.read()).done) return 'ended';
      })().catch(() => 'ended'),
      new Promise((r) => setTimeout(() => r('still open'), 10_000)),
    ]);
    expect(end).toBe('ended');
  });
});

describe('the web app', () => {
  it('is served with a strict Content-Security-Policy, gzip, and a first load under 150 KB of gzipped JavaScript', async () => {
    const res = await call('/', { headers: { 'accept-encoding': 'gzip' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    const csp = res.headers.get('content-security-policy')!;
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(res.headers.get('x-frame-options')).toBe('DENY');
    const html = await res.text();
    const script = /<script type="module" crossorigin src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    expect(script).toBeDefined();
    const js = await fetch(`${consoleApp.url}${script}`, { headers: { 'accept-encoding': 'gzip' }, signal: AbortSignal.timeout(10_000) });
    expect(js.status).toBe(200);
    expect(js.headers.get('content-encoding')).toBe('gzip');
    expect(js.headers.get('cache-control')).toContain('immutable');
    expect(consoleApp.web().scriptBytesGzipped()).toBeLessThan(150 * 1024);
    expect((await call('/assets/nope.js')).status).toBe(404);
    expect((await call('/assets/..%2f..%2fpackage.json')).status).toBe(404);
  });
});

/** What a new /live stream sends until `until` appears (or `ms` pass). */
async function readLive(s: Signed, until: string, ms: number): Promise<string> {
  const res = await call('/live', { headers: authed(s) });
  expect(res.status).toBe(200);
  const reader = res.body!.getReader();
  let text = '';
  const deadline = Date.now() + ms;
  while (!text.includes(until) && Date.now() < deadline) {
    const r = await Promise.race([
      reader.read(),
      new Promise<{ done: true; value: undefined }>((ok) => setTimeout(() => ok({ done: true, value: undefined }), deadline - Date.now())),
    ]);
    if (r.done) break;
    text += new TextDecoder().decode(r.value);
  }
  await reader.cancel();
  return text;
}

describe('live events and the session lifecycle', () => {
  it("streams droplets' events from NATS on /live", async () => {
    const s = await signIn();
    const res = await call('/live', { headers: authed(s) });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    let text = new TextDecoder().decode((await reader.read()).value);
    expect(text).toContain('event: ready');
    await registerRecord(registry.url, { id: 'late-comer', url: 'http://127.0.0.1:9', kind: 'service' });
    const deadline = Date.now() + 10_000;
    while (!text.includes('droplet.registered') && Date.now() < deadline) {
      const r = await Promise.race([
        reader.read(),
        new Promise<{ done: true; value: undefined }>((ok) => setTimeout(() => ok({ done: true, value: undefined }), 10_000)),
      ]);
      if (r.done) break;
      text += new TextDecoder().decode(r.value);
    }
    expect(text).toContain('"droplet":"registry","type":"droplet.registered"');
    expect(text).toContain('late-comer');
    await reader.cancel();
  });

  it('a new /live stream starts with the events that came before it (backfill), oldest first, before any live one', async () => {
    await registerRecord(registry.url, { id: 'early-bird-1', url: 'http://127.0.0.1:9', kind: 'service' });
    await registerRecord(registry.url, { id: 'early-bird-2', url: 'http://127.0.0.1:9', kind: 'service' });
    await waitFor(
      'the console to see both events',
      async () => {
        const text = await readLive(await signIn(), 'early-bird-2', 2000);
        return text.includes('early-bird-2');
      },
      10_000,
      100,
    );
    const text = await readLive(await signIn(), 'early-bird-2', 5000);
    const ready = text.indexOf('event: ready');
    const first = text.indexOf('event: backfill\ndata: {"droplet":"registry","type":"droplet.registered"');
    expect(ready).toBeGreaterThanOrEqual(0);
    expect(first).toBeGreaterThan(ready);
    expect(text.indexOf('early-bird-1')).toBeGreaterThan(first);
    expect(text.indexOf('early-bird-2')).toBeGreaterThan(text.indexOf('early-bird-1'));
  });

  it('sign-out needs the CSRF token; afterwards the old cookie is refused everywhere', async () => {
    const s = await signIn();
    const noCsrf = await call('/session', { method: 'DELETE', headers: authed(s) });
    expect(noCsrf.status).toBe(403);
    const out = await call('/session', { method: 'DELETE', headers: changing(s) });
    expect(out.status).toBe(204);
    expect(out.headers.get('set-cookie')).toContain('Max-Age=0');
    for (const [path, method] of [
      ['/session', 'GET'],
      ['/api/example/version', 'GET'],
      ['/live', 'GET'],
      ['/api/example/echo', 'POST'],
    ] as const) {
      const res = await call(path, { method, headers: changing(s), body: method === 'POST' ? '{"text":"x"}' : undefined });
      expect(res.status).toBe(401);
    }
  });

  it('a session expires with its token', async () => {
    const s = await signIn();
    expect((await call('/api/example/version', { headers: authed(s) })).status).toBe(200);
    clockOffset = 3601_000;
    try {
      const res = await call('/api/example/version', { headers: authed(s) });
      expect(res.status).toBe(401);
      expect((await call('/session', { headers: authed(s) })).status).toBe(401);
    } finally {
      clockOffset = 0;
    }
    expect(Date.now()).toBeGreaterThanOrEqual(clock);
  });
});
