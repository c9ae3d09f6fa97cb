import { describe, expect, it } from '@jest/globals';
import request from 'supertest';
import { httpText, parseSse, uniqueProject } from './helpers.js';
import { deployerSuite } from './deployer-harness.js';

// The Deploy API seed's routes, answered by the unified handlers, against the real Docker Engine.
const project = uniqueProject('ia');
const suite = deployerSuite(project, {
  deployer: () => ({ env: { DRAIN_S: '0' }, registry: 'none' }),
  services: [{ name: 'web', type: 'web', health_path: '/health' }],
});

const sse = (req: request.Test) =>
  req
    .timeout(120_000)
    .buffer(true)
    .parse((res, cb) => {
      let d = '';
      res.on('data', (c: Buffer) => (d += String(c)));
      res.on('end', () => cb(null, d));
    });

async function servingText(): Promise<string> {
  const r = await request(suite.droplet.app).get(`/services/app-${project}-web-prod`).set(suite.auth);
  expect(r.status).toBe(200);
  return httpText(`http://127.0.0.1:${r.body.containers[0].port}/`);
}

describe('the Deploy API seed routes on the deployer', () => {
  const deployed: string[] = [];

  it('POST /infra/deploy streams the deploy as Server-Sent Events to its final status', async () => {
    const res = await sse(
      request(suite.droplet.app)
        .post('/infra/deploy')
        .set(suite.auth)
        .send({ project, service: 'web', environment: 'prod', source: { image: suite.images.v1 } }),
    );
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/text\/event-stream/);
    const events = parseSse(res.body as string);
    expect(events[0].event).toBe('accepted');
    const last = events[events.length - 1];
    expect(last.event).toBe('status');
    expect(last.data.status).toBe('succeeded');
    deployed.push(events[0].data.id as string);
    expect(await servingText()).toBe('version-1');
  }, 150_000);

  it('POST /api/v1/infra/deploy is the same route under the dashboard prefix', async () => {
    const res = await sse(
      request(suite.droplet.app)
        .post('/api/v1/infra/deploy')
        .set(suite.auth)
        .send({ project, service: 'web', environment: 'prod', source: { image: suite.images.v2 } }),
    );
    const events = parseSse(res.body as string);
    expect(events[events.length - 1].data.status).toBe('succeeded');
    deployed.push(events[0].data.id as string);
    expect(await servingText()).toBe('version-2');
  }, 150_000);

  it('GET /infra/deployments/history and /api/v1/infra/deployments/history list the deploys newest first', async () => {
    for (const p of ['/infra/deployments/history', '/api/v1/infra/deployments/history']) {
      const r = await request(suite.droplet.app).get(`${p}?project=${project}`).set(suite.auth);
      expect(r.status).toBe(200);
      expect(r.body.items.map((d: { id: string }) => d.id)).toEqual([...deployed].reverse());
    }
  });

  it('GET /infra/snapshots lists the successful deploys one can roll back to', async () => {
    const r = await request(suite.droplet.app).get(`/infra/snapshots?project=${project}`).set(suite.auth);
    expect(r.status).toBe(200);
    expect(r.body.items.every((d: { status: string }) => d.status === 'succeeded')).toBe(true);
    expect(r.body.items).toHaveLength(2);
  });

  it('POST /infra/deployments/rollback by service goes back to the previous good deploy, as SSE', async () => {
    const res = await sse(
      request(suite.droplet.app).post('/infra/deployments/rollback').set(suite.auth).send({ project, service: 'web', environment: 'prod' }),
    );
    expect(res.status).toBe(200);
    const events = parseSse(res.body as string);
    expect(events[0].event).toBe('accepted');
    expect(events[0].data.rollback_of).toBe(deployed[0]);
    expect(events[events.length - 1].data.status).toBe('succeeded');
    expect(await servingText()).toBe('version-1');
  }, 150_000);

  it('a rollback without a target is a 400 in the UDC envelope; an unknown deployment a 404', async () => {
    const bad = await request(suite.droplet.app).post('/api/v1/infra/deployments/rollback').set(suite.auth).send({ project });
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe('INVALID_REQUEST');
    const missing = await request(suite.droplet.app)
      .post('/infra/deployments/rollback')
      .set(suite.auth)
      .send({ deployment_id: '00000000-0000-4000-8000-000000000000' });
    expect(missing.status).toBe(404);
  });

  it('GET /infra/servers lists the servers; POST /infra/servers/provision is POST /servers/provision (admin)', async () => {
    const list = await request(suite.droplet.app).get('/api/v1/infra/servers').set(suite.auth);
    expect(list.status).toBe(200);
    expect(list.body.items.map((s: { id: string }) => s.id)).toContain('local');
    expect((await request(suite.droplet.app).post('/infra/servers/provision').set(suite.auth).send({ name: 'x' })).status).toBe(403);
    const admin = { Authorization: `Bearer ${suite.authority.mint({ scopes: ['read', 'write', 'admin'] })}` };
    const bad = await request(suite.droplet.app).post('/infra/servers/provision').set(admin).send({ name: 'x', provider: 'local' });
    expect(bad.status).toBe(400);
    expect(JSON.stringify(bad.body.error)).toMatch(/region and size/);
    // Without a provider: the certificate and one-time token for a machine made by hand, as the unified route gives.
    const prov = await request(suite.droplet.app)
      .post('/api/v1/infra/servers/provision')
      .set(admin)
      .send({ name: `${project}-byhand` });
    expect(prov.status).toBe(201);
    expect(prov.body).toMatchObject({ server_id: `${project}-byhand`, callback_path: `/servers/provision/${project}-byhand/ready` });
    const seen = await request(suite.droplet.app).get(`/servers/${project}-byhand`).set(suite.auth);
    expect(seen.body).toMatchObject({ id: `${project}-byhand`, status: 'waiting', provisioning: true });
  });

  it('GET|POST /infra/deploy-configs save and list deploy configs like /deploy-configs', async () => {
    const created = await request(suite.droplet.app)
      .post('/api/v1/infra/deploy-configs')
      .set(suite.auth)
      .send({ name: `${project}-cfg`, project, service: 'web', environment: 'prod', source: { image: suite.images.v1 } });
    expect(created.status).toBe(201);
    const bad = await request(suite.droplet.app).post('/infra/deploy-configs').set(suite.auth).send({ name: 'Not A Name!' });
    expect(bad.status).toBe(400);
    const listed = await request(suite.droplet.app).get('/infra/deploy-configs').set(suite.auth);
    expect(listed.status).toBe(200);
    expect(listed.body.items.map((c: { name: string }) => c.name)).toContain(`${project}-cfg`);
    const unified = await request(suite.droplet.app).get(`/deploy-configs/${project}-cfg`).set(suite.auth);
    expect(unified.status).toBe(200);
  });

  it('the OpenAPI documents every alias, naming its unified twin', async () => {
    const spec = (await request(suite.droplet.app).get('/openapi.json')).body;
    for (const prefix of ['/infra', '/api/v1/infra']) {
      expect(spec.paths[`${prefix}/deploy`].post.summary).toMatch(/Alias of POST \/deployments/);
      expect(spec.paths[`${prefix}/deployments/history`].get.summary).toMatch(/Alias of GET \/deployments/);
      expect(spec.paths[`${prefix}/deployments/rollback`].post.summary).toMatch(/Alias of POST \/deployments\/\{id\}\/rollback/);
      expect(spec.paths[`${prefix}/servers`].get.summary).toMatch(/Alias of GET \/servers/);
      expect(spec.paths[`${prefix}/servers/provision`].post.summary).toMatch(/POST \/servers/);
      expect(spec.paths[`${prefix}/snapshots`].get.summary).toMatch(/Alias of GET \/deployments\?status=succeeded/);
      expect(spec.paths[`${prefix}/deploy-configs`].get.summary).toMatch(/Alias of GET \/deploy-configs/);
      expect(spec.paths[`${prefix}/deploy-configs`].post.summary).toMatch(/Alias of POST \/deploy-configs/);
    }
  });
});
