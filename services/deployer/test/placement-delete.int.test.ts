import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import { freePort, startNatsServer, startTestAuthority, type NatsServerHandle, type TestAuthority } from '@droplet-mesh/udc-kit/testing';
import type { DeployerDroplet } from '../src/app.js';
import { uniqueProject } from './helpers.js';
import { createProject, startTestDeployer } from './deployer-harness.js';

// A placement can be removed (the orchestrator does when a stack file drops `placement:`):
// the service's next deploy is spread over its environment's servers again.
const project = uniqueProject('pd');
const tmp = mkdtempSync(join(tmpdir(), 'deployer-pd-'));
let nats: NatsServerHandle;
let authority: TestAuthority;
let droplet: DeployerDroplet;
let writer: Record<string, string>;
let reader: Record<string, string>;
const placement = `/projects/${project}/services/web/placements/prod`;

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
  writer = { Authorization: `Bearer ${authority.mint({ scopes: ['read', 'write'] })}` };
  reader = { Authorization: `Bearer ${authority.mint({ scopes: ['read'] })}` };
  await createProject(droplet.app, writer, project, { services: [{ name: 'web', type: 'web', health_path: '/health', replicas: 1 }] });
}, 60_000);

afterAll(async () => {
  await droplet?.stop();
  await authority?.close();
  await nats?.stop();
  rmSync(tmp, { recursive: true, force: true });
}, 30_000);

describe('DELETE .../placements/{environment}', () => {
  it('removes the placement (204), then it is gone (404); read-only callers are refused; an unknown one is 404', async () => {
    await request(droplet.app)
      .put(placement)
      .set(writer)
      .send({ servers: [{ server_id: 'local', replicas: 2 }] })
      .expect(200);
    expect((await request(droplet.app).get(placement).set(reader)).status).toBe(200);
    expect((await request(droplet.app).delete(placement).set(reader)).status).toBe(403);
    expect((await request(droplet.app).delete(placement).set(writer)).status).toBe(204);
    expect((await request(droplet.app).get(placement).set(reader)).status).toBe(404);
    const again = await request(droplet.app).delete(placement).set(writer);
    expect(again.status).toBe(404);
    expect(again.body.error.code).toBe('NOT_FOUND');
    expect((await request(droplet.app).delete(`/projects/${project}/services/Bad_Name/placements/prod`).set(writer)).status).toBe(400);
  });
});
