import { describe, expect, it } from '@jest/globals';
import request from 'supertest';
import type { RegistryRecordInput } from '@droplet-mesh/udc-kit';
import { expectEnvelope, waitFor } from '@droplet-mesh/udc-kit/testing';
import { uniqueProject, waitDeployment } from './helpers.js';
import { deployerSuite, recordingRegistry } from './deployer-harness.js';

// Every replica of a web service is registered on its own, so health-monitor checks each one
// and a replica that hangs is restarted alone. Real Docker Engine and NATS; the registry is a
// recording fake (what the deployer asks of it is what is tested).
const project = uniqueProject('rr');
const target = `app-${project}-web-prod`;
const records = new Map<string, RegistryRecordInput>();
const suite = deployerSuite(project, {
  deployer: ({ authority }) => ({
    env: { DRAIN_S: '0' },
    registry: recordingRegistry(records, () => authority.mint({ sub: 'deployer', scopes: ['read', 'write'] })),
  }),
  services: [{ name: 'web', type: 'web', health_path: '/health', replicas: 3 }],
});

const api = () => ({
  get: (p: string) => request(suite.droplet.app).get(p).set(suite.auth),
  post: (p: string, b: object) => request(suite.droplet.app).post(p).set(suite.auth).send(b),
  patch: (p: string, b: object) => request(suite.droplet.app).patch(p).set(suite.auth).send(b),
  del: (p: string) => request(suite.droplet.app).delete(p).set(suite.auth),
});

async function succeeded(res: request.Response) {
  expect(res.status).toBe(202);
  const d = await waitDeployment(suite.droplet.app, suite.auth, res.body.id, 90_000);
  expect(d.status).toBe('succeeded');
}

async function startedAt(containerId: string): Promise<string> {
  return (await suite.images.docker.getContainer(containerId).inspect()).State.StartedAt;
}

const ids = () => [...records.keys()].sort();

async function diedEvents(): Promise<Array<{ container: string; target_id: string; record_id?: string }>> {
  const r = await api().get('/events?type=service.container_died&limit=1000');
  expect(r.status).toBe(200);
  return (r.body.events as Array<{ data: { container: string; target_id: string; record_id?: string } }>).map((e) => e.data);
}

describe('a registry record per replica', () => {
  it('registers each replica at its own address; the first is the target itself', async () => {
    await succeeded(await api().post('/deployments', { project, service: 'web', environment: 'prod', source: { image: suite.images.v1 } }));
    const { containers } = (await api().get(`/services/${target}`)).body as { containers: Array<{ name: string; port: number }> };
    expect(containers).toHaveLength(3);
    expect(ids()).toEqual([target, `${target}.r2`, `${target}.r3`]);
    containers.forEach((c, i) => {
      const r = records.get(i === 0 ? target : `${target}.r${i + 1}`)!;
      expect(r.url).toBe(`http://127.0.0.1:${c.port}`);
      expect(r.health_path).toBe('/health');
      expect(r.metadata).toMatchObject({ project, service: 'web', environment: 'prod', replica: i + 1, replicas: 3, container: c.name });
    });
  }, 120_000);

  it('a replica’s record id restarts that replica alone (what health-monitor asks)', async () => {
    const { containers } = (await api().get(`/services/${target}`)).body as { containers: Array<{ container_id: string; name: string }> };
    const before = await Promise.all(containers.map((c) => startedAt(c.container_id)));
    const reply = await api().post('/message', {
      source: 'health-monitor',
      target: 'deployer',
      message_type: 'command',
      payload: { action: 'restart', target_id: `${target}.r2`, project, service: 'web', environment: 'prod' },
    });
    expect(reply.body.result).toBe('success');
    expect(reply.body.data.containers.map((c: { name: string }) => c.name)).toEqual([containers[1].name]);
    const after = await Promise.all(containers.map((c) => startedAt(c.container_id)));
    expect(after[0]).toBe(before[0]);
    expect(after[1]).not.toBe(before[1]);
    expect(after[2]).toBe(before[2]);
  }, 60_000);

  it('a replica the service does not have is a 404; a malformed one a 400', async () => {
    expectEnvelope(await api().post(`/services/${target}.r9/restart`, {}), 404, 'NOT_FOUND');
    expectEnvelope(await api().post(`/services/${target}.x2/restart`, {}), 400, 'INVALID_REQUEST');
    expectEnvelope(await api().get(`/services/${target}.r2`), 400, 'INVALID_REQUEST');
  });

  it('the death of a replica’s container names that replica’s record (health-monitor opens the incident there)', async () => {
    const { containers } = (await api().get(`/services/${target}`)).body as { containers: Array<{ container_id: string; name: string }> };
    await suite.images.docker.getContainer(containers[2].container_id).kill();
    await waitFor('the died event', async () => (await diedEvents()).some((e) => e.container === containers[2].name), 10_000, 100);
    expect((await diedEvents()).find((e) => e.container === containers[2].name)).toMatchObject({
      target_id: target,
      record_id: `${target}.r3`,
    });
    await waitFor(
      'the replica running again',
      async () => (await suite.images.docker.getContainer(containers[2].container_id).inspect()).State.Running,
      10_000,
      100,
    );
  }, 60_000);

  it('scaling down removes the records of the replicas that are gone', async () => {
    await succeeded(await api().post(`/services/${target}/scale`, { replicas: 1 }));
    expect(ids()).toEqual([target]);
    expect(records.get(target)!.metadata).toMatchObject({ replica: 1, replicas: 1 });
  }, 120_000);

  it('a web service that becomes a worker loses its records; back to web, they return', async () => {
    const path = `/projects/${project}/services/web`;
    const deploy = () => api().post('/deployments', { project, service: 'web', environment: 'prod', source: { image: suite.images.v1 } });
    expect((await api().patch(path, { type: 'worker' })).status).toBe(200);
    await succeeded(await deploy());
    expect(ids()).toEqual([]);
    expect((await api().patch(path, { type: 'web' })).status).toBe(200);
    await succeeded(await deploy());
    expect(ids()).toEqual([target]);
  }, 180_000);

  it('undeploying removes every replica’s record', async () => {
    await succeeded(await api().post(`/services/${target}/scale`, { replicas: 2 }));
    expect(ids()).toEqual([target, `${target}.r2`]);
    const res = await api().del(`/projects/${project}/services/web/deployment?environment=prod`);
    expect(res.status).toBe(200);
    expect(res.body.undeployed).toEqual([expect.objectContaining({ target_id: target, registry: 'removed' })]);
    expect(ids()).toEqual([]);
  }, 120_000);
});
