import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import request from 'supertest';
import { meshNatsUsers, renderNatsAuthorization } from '@droplet-mesh/udc-kit';
import { startNatsServer, startTestAuthority, type NatsServerHandle, type TestAuthority } from '@droplet-mesh/udc-kit/testing';
import { createOrchestratorDroplet, type OrchestratorDroplet } from '../src/app.js';
import { quiet } from './support/mesh.js';

// The mesh's NATS permission table lets the orchestrator's user write only the `orchestrator` bucket:
// everything it keeps (stacks, plans, applies, leases) must live there.
let nats: NatsServerHandle;
let authority: TestAuthority;
let made: OrchestratorDroplet;

beforeAll(async () => {
  nats = await startNatsServer({ config: renderNatsAuthorization(meshNatsUsers((name) => `pw-${name}`)) });
  authority = await startTestAuthority();
  made = await createOrchestratorDroplet({
    env: {
      PORT: '0',
      NATS_URL: nats.url,
      NATS_USER: 'orchestrator',
      NATS_PASSWORD: 'pw-orchestrator',
      LOG_LEVEL: 'warn',
      ...authority.env(),
    },
    logDestination: quiet(),
  });
  await made.droplet.start();
}, 60_000);

afterAll(async () => {
  await made?.droplet.stop();
  await authority?.close();
  await nats?.stop({ removeStore: true });
});

describe('under the mesh NATS permissions', () => {
  it('plans, stores and reads stacks as the orchestrator user', async () => {
    const auth = { Authorization: `Bearer ${authority.mint({ scopes: ['read', 'write'] })}` };
    const p = await request(made.droplet.app)
      .post('/stacks/empty/plan')
      .set(auth)
      .set('content-type', 'application/yaml')
      .send('version: 1\n');
    expect(p.status).toBe(201);
    expect(p.body.steps).toEqual([]);
    const a = await request(made.droplet.app).post('/stacks/empty/apply?wait=true').set(auth).send({ plan_id: p.body.id });
    expect(a.status).toBe(200);
    expect(a.body.status).toBe('succeeded');
    const s = await request(made.droplet.app).get('/stacks/empty').set(auth);
    expect(s.body).toMatchObject({ name: 'empty', status: 'applied', last_apply: { id: a.body.id } });
    const list = await request(made.droplet.app).get('/stacks/empty/applies').set(auth);
    expect(list.body.items).toEqual([expect.objectContaining({ id: a.body.id, status: 'succeeded', steps: 0 })]);
  });

  it('old plans and applies are pruned; the last apply of each stack stays', async () => {
    const auth = { Authorization: `Bearer ${authority.mint({ scopes: ['read', 'write'] })}` };
    const plan = () =>
      request(made.droplet.app).post('/stacks/empty/plan').set(auth).set('content-type', 'application/yaml').send('version: 1\n');
    const old = await plan();
    const applied = await plan();
    const a = await request(made.droplet.app).post('/stacks/empty/apply?wait=true').set(auth).send({ plan_id: applied.body.id });
    expect(a.body.status).toBe('succeeded');
    await new Promise((r) => setTimeout(r, 50));
    const pruned = await made.orchestrator().prune(10);
    expect(pruned.plans).toBeGreaterThanOrEqual(2); // the unapplied one and the first test's
    expect((await request(made.droplet.app).get(`/stacks/empty/plans/${old.body.id}`).set(auth)).status).toBe(404);
    expect((await request(made.droplet.app).get(`/stacks/empty/plans/${applied.body.id}`).set(auth)).status).toBe(200);
    expect((await request(made.droplet.app).get(`/stacks/empty/applies/${a.body.id}`).set(auth)).status).toBe(200);
  });
});
