import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Bus, meshNatsUsers, renderNatsAuthorization } from '@droplet-mesh/udc-kit';
import { startNatsServer, waitFor, type NatsServerHandle } from '@droplet-mesh/udc-kit/testing';
import { SessionSealer } from '../src/session-seal.js';
import { SESSION_BUCKET, SESSION_BUCKET_MAX_AGE_MS, SessionStore } from '../src/sessions.js';

// The session store on a real nats-server with the mesh's authorization: the console's own
// NATS user (its bucket in udc-kit's permission table), two stores as two console replicas.

const passwords = Object.fromEntries(meshNatsUsers(() => '').map((u) => [u.user, `p${randomBytes(12).toString('hex')}`]));
let nats: NatsServerHandle;
const buses: Bus[] = [];
const stores: SessionStore[] = [];
const SECRET = 'session-store-test-secret-0123456789';
// A JWT-looking token: a leak would show as this text in the bucket.
const TOKEN = `eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJvcGVyYXRvciJ9.${randomBytes(32).toString('base64url')}`;

async function consoleBus(): Promise<Bus> {
  const bus = await Bus.connect({ url: nats.url, name: 'console', user: 'console', pass: passwords.console });
  buses.push(bus);
  return bus;
}

async function replica(opts: { now?: () => number; max?: number; secret?: string } = {}): Promise<SessionStore> {
  const bus = await consoleBus();
  const store = new SessionStore({ maxSessions: opts.max ?? 100, now: opts.now });
  await store.attach(
    await bus.kv(SESSION_BUCKET, { history: 1, ttlMs: SESSION_BUCKET_MAX_AGE_MS }),
    new SessionSealer(opts.secret ?? SECRET),
  );
  stores.push(store);
  return store;
}

beforeAll(async () => {
  nats = await startNatsServer({ config: renderNatsAuthorization(meshNatsUsers((name) => passwords[name])) });
}, 30_000);

afterAll(async () => {
  for (const s of stores) s.stop();
  for (const b of buses) await b.close().catch(() => undefined);
  await nats?.stop({ removeStore: true });
});

const input = (expiresAt: number, token = TOKEN) => ({ token, subject: 'operator', scopes: ['read', 'write', 'admin'], expiresAt });

describe('SessionStore in NATS KV', () => {
  it('keeps only sha256(cookie) as the key and the token and CSRF token sealed: a raw read of the bucket shows neither', async () => {
    const store = await replica();
    const { cookie, session } = await store.create(input(Date.now() + 60_000));
    expect(cookie).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const kv = await (await consoleBus()).kv(SESSION_BUCKET);
    const keys: string[] = [];
    for await (const k of await kv.keys()) keys.push(k);
    expect(keys).toContain(session.key);
    expect(keys.join()).not.toContain(cookie);
    const raw = (await kv.get(session.key))!.string();
    expect(raw).not.toContain(TOKEN);
    expect(raw).not.toContain(TOKEN.split('.')[2]);
    expect(raw).not.toContain(session.csrf);
    expect(raw).not.toContain(cookie);
    expect(JSON.parse(raw)).toMatchObject({ v: 1, subject: 'operator', sealed: expect.any(String) });
    expect((await store.get(cookie))?.token).toBe(TOKEN);
  });

  it('another replica with the same secret opens the session; a sign-out there is refused here at once and closes its streams', async () => {
    const a = await replica();
    const b = await replica();
    const { cookie } = await a.create(input(Date.now() + 60_000));
    const onB = await b.get(cookie);
    expect(onB).toMatchObject({ token: TOKEN, subject: 'operator' });
    const onA = (await a.get(cookie))!;
    let closedOnA = 0;
    onA.onEnd.add(() => closedOnA++);
    expect(onB!.csrf).toBe(onA.csrf);
    expect(await b.destroy(cookie)).toBe(true);
    // The watch ends A's open streams without a request...
    await waitFor('A ends the session signed out on B', async () => closedOnA === 1, 5000, 20);
    // ...and a lookup reads the bucket.
    expect(await a.get(cookie)).toBeUndefined();
  });

  it('a replica with another secret refuses the cookie (it cannot open the token) and leaves the entry alone', async () => {
    const a = await replica();
    const stranger = await replica({ secret: 'another-console-secret-0123456789' });
    const { cookie } = await a.create(input(Date.now() + 60_000));
    expect(await stranger.get(cookie)).toBeUndefined();
    expect((await a.get(cookie))?.token).toBe(TOKEN);
  });

  it('an altered entry does not open (the seal is bound to its key and expiry)', async () => {
    const a = await replica();
    const { cookie, session } = await a.create(input(Date.now() + 60_000));
    const other = await a.create(input(Date.now() + 60_000, 'other-token'));
    const kv = await (await consoleBus()).kv(SESSION_BUCKET);
    const victim = JSON.parse((await kv.get(session.key))!.string());
    const donor = JSON.parse((await kv.get(other.session.key))!.string());
    // Someone with write access to the bucket extends the expiry, or moves a sealed token onto another key.
    await kv.put(session.key, JSON.stringify({ ...victim, expires_at: victim.expires_at + 3600_000 }));
    const fresh = await replica();
    expect(await fresh.get(cookie)).toBeUndefined();
    await kv.put(session.key, JSON.stringify({ ...victim, sealed: donor.sealed }));
    expect(await fresh.get(cookie)).toBeUndefined();
  });

  it('a session ends with its token: refused, its streams closed and its entry deleted', async () => {
    const now = { t: Date.now() };
    const a = await replica({ now: () => now.t });
    const { cookie, session } = await a.create(input(now.t + 60_000));
    let ended = 0;
    (await a.get(cookie))!.onEnd.add(() => ended++);
    now.t += 60_000;
    expect(await a.get(cookie)).toBeUndefined();
    expect(ended).toBe(1);
    const kv = await (await consoleBus()).kv(SESSION_BUCKET);
    expect((await kv.get(session.key))?.operation).not.toBe('PUT');
    // sweep() does it without a lookup.
    const b = await a.create(input(now.t + 1000));
    now.t += 1000;
    await a.sweep();
    expect((await kv.get(b.session.key))?.operation).not.toBe('PUT');
  });

  it('gives every session its own CSRF token and signs the oldest out beyond the limit', async () => {
    const a = await replica({ max: 2 });
    const x = await a.create(input(Date.now() + 60_000, 'x'));
    const y = await a.create(input(Date.now() + 60_000, 'y'));
    expect(x.session.csrf).not.toBe(y.session.csrf);
    await a.create(input(Date.now() + 60_000, 'z'));
    expect(await a.get(x.cookie)).toBeUndefined();
    expect((await a.get(y.cookie))?.token).toBe('y');
    expect(a.size).toBeLessThanOrEqual(2);
  });

  it('NATS gone: a lookup is a 503 DEPENDENCY_UNAVAILABLE, never a 500 or a session', async () => {
    const a = await replica();
    const { cookie } = await a.create(input(Date.now() + 60_000));
    await nats.stop();
    try {
      await expect(a.get(cookie)).rejects.toMatchObject({ httpStatus: 503, code: 'DEPENDENCY_UNAVAILABLE' });
    } finally {
      await nats.restart();
    }
    await waitFor('the bucket to answer again', async () => (await a.get(cookie).catch(() => undefined))?.token === TOKEN, 15_000, 200);
  }, 30_000);

  it('stop() closes streams but keeps the sessions for the next start', async () => {
    const a = await replica();
    const { cookie } = await a.create(input(Date.now() + 60_000));
    let ended = 0;
    (await a.get(cookie))!.onEnd.add(() => ended++);
    a.stop();
    expect(ended).toBe(1);
    const next = await replica();
    expect((await next.get(cookie))?.token).toBe(TOKEN);
  });
});
