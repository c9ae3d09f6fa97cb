import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import jwt from 'jsonwebtoken';
import request from 'supertest';
import { z } from 'zod';
import { baseConfigShape, Bus, createDroplet, heartbeatSubject } from '@droplet-mesh/udc-kit';
import { expectEnvelope, startNatsServer, waitFor, type NatsServerHandle } from '@droplet-mesh/udc-kit/testing';
import { ADMIN_KEY, quiet, startRegistry } from './support.js';

// The Multi-Cloud Manager seed named droplets like hosts: `drop4.fullpotential.ai`.
const DOTTED = 'drop4.fullpotential.ai';
let nats: NatsServerHandle;
let reg: Awaited<ReturnType<typeof startRegistry>>;
let bus: Bus;

beforeAll(async () => {
  nats = await startNatsServer();
  reg = await startRegistry(nats.url, { LIVENESS_TICK_MS: '50' });
  bus = await Bus.connect({ url: nats.url, name: 'dotted-test' });
}, 60_000);

afterAll(async () => {
  await bus?.close();
  await reg?.droplet.stop();
  await nats?.stop({ removeStore: true });
});

const operator = async () =>
  (await request(reg.droplet.app).post('/auth/token?droplet_id=operator').set('X-Registry-Key', ADMIN_KEY)).body.token as string;

describe('droplet ids with dots', () => {
  let dropletKey: string;

  it('registers a dotted id and mints its token from /auth/token (400 before)', async () => {
    const reg1 = await request(reg.droplet.app)
      .post('/droplets')
      .set('X-Registry-Key', ADMIN_KEY)
      .send({ id: DOTTED, url: 'http://127.0.0.1:9', kind: 'host', heartbeat_interval_s: 0.2 });
    expect(reg1.status).toBe(201);
    expect(reg1.body.droplet).toMatchObject({ id: DOTTED, steward: DOTTED });
    dropletKey = reg1.body.droplet_key;
    const tok = await request(reg.droplet.app).post(`/auth/token?droplet_id=${DOTTED}`).set('X-Registry-Key', dropletKey);
    expect(tok.status).toBe(200);
    expect(jwt.decode(tok.body.token)).toMatchObject({ sub: DOTTED, droplet_id: DOTTED });
    const admin = await request(reg.droplet.app).post(`/auth/token?droplet_id=${DOTTED}`).set('X-Registry-Key', ADMIN_KEY);
    expect(admin.status).toBe(200);
    const got = await request(reg.droplet.app)
      .get(`/droplets/${DOTTED}`)
      .set('Authorization', `Bearer ${await operator()}`);
    expect(got.status).toBe(200);
    expect(got.body.droplet.id).toBe(DOTTED);
  });

  it.each(['a..b', '.a', 'a.', 'A.b', 'a_b', 'a.b_c', `${'x'.repeat(64)}.ai`, `${'a.'.repeat(127)}a`, 'a b'])(
    'refuses %j as an id with 400',
    async (id) => {
      expectEnvelope(
        await request(reg.droplet.app)
          .post(`/auth/token?droplet_id=${encodeURIComponent(id)}`)
          .set('X-Registry-Key', ADMIN_KEY),
        400,
        'INVALID_REQUEST',
      );
      expectEnvelope(
        await request(reg.droplet.app)
          .post('/droplets')
          .set('X-Registry-Key', ADMIN_KEY)
          .send({ id, url: 'http://127.0.0.1:9', kind: 'host' }),
        400,
        'INVALID_REQUEST',
      );
    },
  );

  it('heartbeats over NATS on one subject token, the dots as _; an unescaped dotted subject is not heard', async () => {
    expect(heartbeatSubject(DOTTED)).toBe('registry.heartbeat.drop4_fullpotential_ai');
    expect(() => heartbeatSubject('a.*')).toThrow();
    expect(() => heartbeatSubject('a.>')).toThrow();
    await waitFor('the dotted droplet to go stale', () => reg.store().get(DOTTED)?.status !== 'active', 10_000);
    // Registered plainly, `drop4` must not be kept alive by `drop4.fullpotential.ai`'s beats, nor the other way round.
    bus.publishJson(`registry.heartbeat.${DOTTED}`, { status: 'active', metrics: { unescaped: 1 } });
    await bus.nc.flush();
    await new Promise((r) => setTimeout(r, 300));
    expect(reg.liveness().lastReportOf(DOTTED)).toBeUndefined();
    bus.publishJson(heartbeatSubject(DOTTED), { status: 'active', metrics: { escaped: 1 } });
    await waitFor('the dotted droplet to recover', () => reg.store().get(DOTTED)?.status === 'active', 10_000);
    expect(reg.liveness().lastReportOf(DOTTED)).toEqual({ status: 'active', metrics: { escaped: 1 } });
  });

  it('heartbeats over HTTP with its own token', async () => {
    const tok = (await request(reg.droplet.app).post(`/auth/token?droplet_id=${DOTTED}`).set('X-Registry-Key', dropletKey)).body.token;
    const hb = await request(reg.droplet.app).post(`/droplets/${DOTTED}/heartbeat`).set('Authorization', `Bearer ${tok}`).send({});
    expect(hb.status).toBe(200);
    expect(hb.body.droplet.id).toBe(DOTTED);
  });

  it('a droplet started with the seed env DROPLET_NAME, DROPLET_DOMAIN, STEWARD registers as that id and heartbeats', async () => {
    const env = {
      PORT: '0',
      NATS_URL: nats.url,
      REGISTRY_URL: reg.url,
      REGISTRY_KEY: ADMIN_KEY,
      DROPLET_NAME: 'drop5.fullpotential.ai',
      DROPLET_DOMAIN: 'Drop5.FullPotential.ai',
      STEWARD: 'ops.fullpotential.ai',
      HEARTBEAT_INTERVAL_S: '0.2',
      LOG_LEVEL: 'warn',
    };
    const seed = createDroplet({
      name: 'seed-droplet',
      version: '0.0.1',
      capabilities: [],
      configSchema: z.object(baseConfigShape),
      env,
      logDestination: quiet(),
    });
    expect(seed.ctx.config).toMatchObject({
      DROPLET_ID: 'drop5.fullpotential.ai',
      DROPLET_DOMAIN: 'drop5.fullpotential.ai',
      STEWARD: 'ops.fullpotential.ai',
    });
    await seed.start();
    try {
      await waitFor('the seed droplet to register', () => !!reg.store().get('drop5.fullpotential.ai'), 15_000);
      expect(reg.store().get('drop5.fullpotential.ai')).toMatchObject({
        name: 'seed-droplet',
        domain: 'drop5.fullpotential.ai',
        steward: 'ops.fullpotential.ai',
      });
      // Registered under an id that is not its name, it heartbeats over HTTP (NATS lets it publish only as its name).
      await waitFor('its heartbeat', () => reg.liveness().lastReportOf('drop5.fullpotential.ai') !== undefined, 15_000);
    } finally {
      await seed.stop({ deregister: false });
    }
  }, 40_000);

  it('DROPLET_NAME that contradicts DROPLET_ID, or a bad DROPLET_DOMAIN, is a config error naming the variable', () => {
    const base = { PORT: '0' };
    const make = (env: Record<string, string>) =>
      createDroplet({
        name: 'x',
        version: '0',
        capabilities: [],
        configSchema: z.object(baseConfigShape),
        env: { ...base, ...env },
        logDestination: quiet(),
      });
    expect(() => make({ DROPLET_NAME: 'a.b', DROPLET_ID: 'c' })).toThrow(/DROPLET_NAME/);
    expect(() => make({ DROPLET_DOMAIN: 'not a domain' })).toThrow(/DROPLET_DOMAIN/);
    expect(() => make({ STEWARD: 'a..b' })).toThrow(/STEWARD/);
  });
});
