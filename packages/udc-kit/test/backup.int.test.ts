// GET /admin/backup and POST /admin/restore against two real nats-servers: a droplet's
// buckets leave one and arrive in the other as stored; a bucket holding state is refused
// unless forced; keys the droplet makes itself at start are merged or overwritten.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import request from 'supertest';
import { startNatsServer, startTestAuthority, type NatsServerHandle, type TestAuthority } from '../src/testing/index.js';
import { createTestDroplet, type TestDroplet } from './helpers.js';

let natsA: NatsServerHandle;
let natsB: NatsServerHandle;
let authority: TestAuthority;
let a: TestDroplet;
let b: TestDroplet;
const admin = () => ({ Authorization: `Bearer ${authority.mint({ scopes: ['admin'] })}` });
const bytes = (s: string) => new TextEncoder().encode(s);
const text = (u: Uint8Array | undefined) => (u ? new TextDecoder().decode(u) : undefined);

const backup = {
  buckets: ['things', 'keys'],
  selfMade: { things: /^boot\./ },
  merge: {
    keys: {
      keys: ['ring'],
      merge: (_k: string, incoming: Uint8Array, existing?: Uint8Array) => bytes(`${text(existing)}+${text(incoming)}`),
    },
  },
};

beforeAll(async () => {
  [natsA, natsB] = await Promise.all([startNatsServer(), startNatsServer()]);
  authority = await startTestAuthority();
  a = createTestDroplet({ env: { NATS_URL: natsA.url, ...authority.env() }, name: 'alpha', backup });
  b = createTestDroplet({ env: { NATS_URL: natsB.url, ...authority.env() }, name: 'alpha', backup });
  await a.start({ port: 0 });
  await b.start({ port: 0 });
  const things = await a.ctx.bus.kv('things');
  await things.put('item.1', bytes('{"sealed":"c2VhbGVk"}'));
  await things.put('item.2', bytes('two'));
  await things.put('gone', bytes('x'));
  await things.delete('gone');
  await (await a.ctx.bus.kv('keys')).put('ring', bytes('A'));
  // What B made itself at start.
  await (await b.ctx.bus.kv('things')).put('boot.marker', bytes('B'));
  await (await b.ctx.bus.kv('keys')).put('ring', bytes('B'));
});
afterAll(async () => {
  await a?.stop();
  await b?.stop();
  await authority?.close();
  await natsA?.stop({ removeStore: true });
  await natsB?.stop({ removeStore: true });
});

describe('/admin/backup and /admin/restore', () => {
  let dump: { buckets: Array<{ name: string; entries: Array<{ key: string; value: string }> }> };

  it('exports the live keys of each bucket, values as stored', async () => {
    const res = await request(a.app).get('/admin/backup').set(admin());
    expect(res.status).toBe(200);
    dump = res.body;
    expect(res.body).toMatchObject({ format: 'droplet-mesh-bucket-dump/1', droplet: 'alpha' });
    expect(dump.buckets.map((x) => [x.name, x.entries.map((e) => e.key)])).toEqual([
      ['things', ['item.1', 'item.2']],
      ['keys', ['ring']],
    ]);
    expect(Buffer.from(dump.buckets[0].entries[0].value, 'base64').toString()).toBe('{"sealed":"c2VhbGVk"}');
  });

  it('refuses a backup of another droplet, and a bucket it does not own', async () => {
    const other = await request(b.app)
      .post('/admin/restore')
      .set(admin())
      .send({ ...dump, droplet: 'beta' });
    expect(other.status).toBe(400);
    const foreign = await request(b.app)
      .post('/admin/restore')
      .set(admin())
      .send({ ...dump, buckets: [{ name: 'registry-keys', entries: [] }] });
    expect(foreign.status).toBe(409);
  });

  it('restores into a fresh droplet: its own start-up keys do not count as state; merged keys are merged', async () => {
    const dry = await request(b.app)
      .post('/admin/restore')
      .set(admin())
      .send({ ...dump, dry_run: true });
    expect(dry.body).toMatchObject({ dry_run: true });
    expect(await (await b.ctx.bus.kv('things')).get('item.1')).toBeNull();

    const res = await request(b.app).post('/admin/restore').set(admin()).send(dump);
    expect(res.status).toBe(200);
    expect(res.body.buckets).toEqual([
      { name: 'things', restored: 2 },
      { name: 'keys', restored: 1 },
    ]);
    const things = await b.ctx.bus.kv('things');
    expect(text((await things.get('item.1'))?.value)).toBe('{"sealed":"c2VhbGVk"}');
    expect(text((await things.get('boot.marker'))?.value)).toBe('B');
    expect(text((await (await b.ctx.bus.kv('keys')).get('ring'))?.value)).toBe('B+A');
  });

  it('a second restore is CONFLICT naming the bucket, unless force', async () => {
    const again = await request(b.app).post('/admin/restore').set(admin()).send(dump);
    expect(again.status).toBe(409);
    expect(again.body.error.details.buckets).toEqual(['things']);
    const forced = await request(b.app)
      .post('/admin/restore')
      .set(admin())
      .send({ ...dump, force: true });
    expect(forced.status).toBe(200);
  });
});
