import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import { freePort, startNatsServer, startTestAuthority, type NatsServerHandle, type TestAuthority } from '@droplet-mesh/udc-kit/testing';
import type { DeployerDroplet } from '../src/app.js';
import { uniqueProject } from './helpers.js';
import { startTestDeployer } from './deployer-harness.js';

// Provisioning a server hands out its engine key and creates machines: the admin scope, or
// the orchestrator by its registry identity (a droplet's token is read+write; its stacks
// provision their servers through this route). Any other droplet's write token is refused.
const prefix = uniqueProject('pc');
const tmp = mkdtempSync(join(tmpdir(), 'deployer-pc-'));
let nats: NatsServerHandle;
let authority: TestAuthority;
let droplet: DeployerDroplet;
const as = (sub: string, scopes: Array<'read' | 'write' | 'admin'> = ['read', 'write']) => ({
  Authorization: `Bearer ${authority.mint({ sub, scopes })}`,
});

beforeAll(async () => {
  nats = await startNatsServer();
  authority = await startTestAuthority();
  const port = await freePort();
  droplet = await startTestDeployer({
    natsUrl: nats.url,
    authority,
    dataDir: join(tmp, 'data'),
    port,
    env: { DRAIN_S: undefined },
    registry: 'none',
  });
}, 60_000);

afterAll(async () => {
  await droplet?.stop();
  await authority?.close();
  await nats?.stop();
  rmSync(tmp, { recursive: true, force: true });
}, 30_000);

describe('who may provision a server', () => {
  it("another droplet's write token is refused (403), on the route and its seed alias; nothing is issued", async () => {
    for (const path of ['/servers/provision', '/infra/servers/provision']) {
      const res = await request(droplet.app)
        .post(path)
        .set(as('console'))
        .send({ name: `${prefix}-x` });
      expect(res.status).toBe(403);
      expect(res.body.error.code).toBe('FORBIDDEN');
      expect(JSON.stringify(res.body)).not.toMatch(/PRIVATE KEY|token/i);
    }
    // A look-alike of the orchestrator's id is someone else.
    expect(
      (
        await request(droplet.app)
          .post('/servers/provision')
          .set(as('orchestrator.evil'))
          .send({ name: `${prefix}-x` })
      ).status,
    ).toBe(403);
    // The orchestrator's identity with read only is not enough either.
    expect(
      (
        await request(droplet.app)
          .post('/servers/provision')
          .set(as('orchestrator', ['read']))
          .send({ name: `${prefix}-x` })
      ).status,
    ).toBe(403);
    expect((await request(droplet.app).get(`/servers/provision/${prefix}-x`).set(as('console'))).status).toBe(404);
  });

  it('the orchestrator (by identity, read+write) and an admin may', async () => {
    const byOrchestrator = await request(droplet.app)
      .post('/servers/provision')
      .set(as('orchestrator'))
      .send({ name: `${prefix}-o` });
    expect(byOrchestrator.status).toBe(201);
    expect(byOrchestrator.body.certificate ?? byOrchestrator.body.cert).toMatch(/BEGIN CERTIFICATE/);
    const byAdmin = await request(droplet.app)
      .post('/servers/provision')
      .set(as('operator', ['read', 'write', 'admin']))
      .send({ name: `${prefix}-a` });
    expect(byAdmin.status).toBe(201);
  });
});
