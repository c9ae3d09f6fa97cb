import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { waitFor, type NatsServerHandle } from '@droplet-mesh/udc-kit/testing';
import { SESSION_SECRET_FILE } from '../src/session-secret.js';
import { ADMIN_KEY, closeAll, startConsole, startExample, startNatsServer, startRegistry, type Closer } from './support/mesh.js';

// Sessions kept in NATS: a console restarted on the same NATS and DATA_DIR (a new app
// instance, as after a crash) keeps every signed-in browser, and two replicas sharing the
// bucket and the secret see one set of sessions.

let nats: NatsServerHandle;
let registry: Awaited<ReturnType<typeof startRegistry>>;
const closers: Closer[] = [];
const dataDir = mkdtempSync(join(tmpdir(), 'console-sessions-'));

// No CONSOLE_SESSION_SECRET: the secret is generated into DATA_DIR once and reused.
const replica = async () => {
  const c = await startConsole(nats.url, registry.url, { env: { DATA_DIR: dataDir, CONSOLE_SESSION_SECRET: '' } });
  closers.push(c);
  return c;
};

const get = (base: string, path: string, cookie: string) =>
  fetch(`${base}${path}`, { headers: { cookie }, signal: AbortSignal.timeout(10_000) });

beforeAll(async () => {
  nats = await startNatsServer();
  registry = await startRegistry(nats.url);
  closers.push(registry);
  closers.push(await startExample(nats.url, registry.url));
}, 60_000);

afterAll(async () => {
  await closeAll(closers, nats);
  rmSync(dataDir, { recursive: true, force: true });
});

async function signIn(base: string): Promise<{ cookie: string; csrf: string }> {
  const res = await fetch(`${base}/session`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ admin_key: ADMIN_KEY }),
  });
  expect(res.status).toBe(201);
  return { cookie: (res.headers.get('set-cookie') ?? '').split(';')[0], csrf: ((await res.json()) as { csrf_token: string }).csrf_token };
}

describe('console sessions in NATS', () => {
  it('survive a console restart: the same cookie still works, with the same CSRF token', async () => {
    const first = await replica();
    const s = await signIn(first.url);
    expect((await get(first.url, '/api/example/version', s.cookie)).status).toBe(200);
    await first.close();
    expect(statSync(join(dataDir, SESSION_SECRET_FILE)).mode & 0o777).toBe(0o600);

    const restarted = await replica();
    const me = await get(restarted.url, '/session', s.cookie);
    expect(me.status).toBe(200);
    expect(await me.json()).toMatchObject({ subject: 'operator', csrf_token: s.csrf });
    expect((await get(restarted.url, '/api/example/version', s.cookie)).status).toBe(200);
    // A change with the CSRF token from before the restart.
    const echo = await fetch(`${restarted.url}/api/example/echo`, {
      method: 'POST',
      headers: { cookie: s.cookie, 'x-csrf-token': s.csrf, 'content-type': 'application/json' },
      body: JSON.stringify({ text: 'after restart' }),
    });
    expect(echo.status).toBe(200);
  });

  it('are shared by replicas: signed in on one, used on the other; signed out on one, refused by the other and its live stream closed', async () => {
    const a = await replica();
    const b = await replica();
    const s = await signIn(a.url);
    expect((await get(b.url, '/api/example/version', s.cookie)).status).toBe(200);

    // A live stream held open on B...
    const live = await get(b.url, '/live', s.cookie);
    expect(live.status).toBe(200);
    const reader = live.body!.getReader();
    const streamEnded = (async () => {
      for (;;) if ((await reader.read()).done) return true;
    })();

    // ...and a sign-out on A.
    const out = await fetch(`${a.url}/session`, { method: 'DELETE', headers: { cookie: s.cookie, 'x-csrf-token': s.csrf } });
    expect(out.status).toBeLessThan(300);
    const refused = await get(b.url, '/api/example/version', s.cookie);
    expect(refused.status).toBe(401);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('UNAUTHORIZED');
    expect((await get(b.url, '/session', s.cookie)).status).toBe(401);
    let ended = false;
    void streamEnded.then(() => (ended = true));
    await waitFor('the live stream on the other replica to end', async () => ended, 5000, 20);
  });
});
