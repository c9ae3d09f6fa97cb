import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import type { RegistryRecordInput } from '@droplet-mesh/udc-kit';
import {
  expectEnvelope,
  freePort,
  startNatsServer,
  startTestAuthority,
  type NatsServerHandle,
  type TestAuthority,
} from '@droplet-mesh/udc-kit/testing';
import type { DeployerDroplet } from '../src/app.js';
import { cleanDocker, getViaNginx, testImages, uniqueProject, waitDeployment, type TestImages } from './helpers.js';
import { startProxyManager, type Proc } from './process-helpers.js';
import { createProject, recordingRegistry, startTestDeployer } from './deployer-harness.js';

// Undeploy against the real Docker Engine, NATS and a real proxy-manager with nginx.
const project = uniqueProject('ud');
const domain = `${project}.mesh.test`;
const target = `app-${project}-web-prod`;
let nats: NatsServerHandle;
let authority: TestAuthority;
let images: TestImages;
let proxy: Proc | undefined;
let droplet: DeployerDroplet;
let pmUrl: string;
let proxyHttpPort: number;
let auth: Record<string, string>;
const tmp = mkdtempSync(join(tmpdir(), 'deployer-undeploy-'));

const records = new Map<string, RegistryRecordInput>();

const viaNginx = () => getViaNginx(proxyHttpPort, domain);

const api = () => ({
  get: (p: string) => request(droplet.app).get(p).set(auth),
  post: (p: string, b: object) => request(droplet.app).post(p).set(auth).send(b),
  del: (p: string) => request(droplet.app).delete(p).set(auth),
});

async function deploy(image: string) {
  const res = await api().post('/deployments', { project, service: 'web', environment: 'prod', source: { image } });
  expect(res.status).toBe(202);
  const d = await waitDeployment(droplet.app, auth, res.body.id, 90_000);
  if (d.status !== 'succeeded') throw new Error(`deploy ${d.status}: ${d.reason}\n${proxy?.output().slice(-2000)}`);
  return d;
}

async function containersOfProject(): Promise<string[]> {
  const list = await images.docker.listContainers({ all: true, filters: { label: ['mesh.managed=true', `mesh.project=${project}`] } });
  return list.map((c) => c.Names[0]);
}

beforeAll(async () => {
  images = await testImages();
  nats = await startNatsServer();
  authority = await startTestAuthority();
  const pmPort = await freePort();
  pmUrl = `http://127.0.0.1:${pmPort}`;
  proxyHttpPort = await freePort();
  proxy = await startProxyManager({
    port: pmPort,
    httpPort: proxyHttpPort,
    httpsPort: await freePort(),
    natsUrl: nats.url,
    dataDir: join(tmp, 'proxy'),
    env: { ...authority.env() },
  });
  droplet = await startTestDeployer({
    natsUrl: nats.url,
    authority,
    dataDir: join(tmp, 'data'),
    env: { DRAIN_S: '0' },
    registry: recordingRegistry(records, () => authority.mint({ sub: 'deployer', scopes: ['read', 'write'] })),
  });
  auth = { Authorization: `Bearer ${authority.mint({ scopes: ['read', 'write'] })}` };
  await createProject(droplet.app, auth, project, { services: [{ name: 'web', type: 'web', domain, health_path: '/health' }] });
}, 180_000);

afterAll(async () => {
  await droplet?.deployer.idle();
  await droplet?.stop();
  await proxy?.stop();
  await authority?.close();
  await nats?.stop({ removeStore: true });
  if (images) await cleanDocker(images.docker, project);
  rmSync(tmp, { recursive: true, force: true });
}, 60_000);

describe('undeploy through a real proxy-manager and nginx', () => {
  const history: string[] = [];

  it('a deployed service, environment and project cannot be deleted (409)', async () => {
    history.push((await deploy(images.v1)).id, (await deploy(images.v2)).id);
    expect(await viaNginx()).toEqual({ status: 200, body: 'version-2' });
    expect(records.has(target)).toBe(true);
    expectEnvelope(await api().del(`/projects/${project}/services/web`), 409, 'CONFLICT');
    expectEnvelope(await api().del(`/projects/${project}/environments/prod`), 409, 'CONFLICT');
    expectEnvelope(await api().del(`/projects/${project}`), 409, 'CONFLICT');
  }, 240_000);

  it('is refused with 409 while a deploy of the service is queued or running, and touches nothing', async () => {
    const res = await api().post('/deployments', { project, service: 'web', environment: 'prod', source: { image: images.v2 } });
    expect(res.status).toBe(202);
    const refused = await api().del(`/projects/${project}/services/web/deployment?environment=prod`);
    expectEnvelope(refused, 409, 'CONFLICT');
    const d = await waitDeployment(droplet.app, auth, res.body.id, 90_000);
    expect(d.status).toBe('succeeded');
    history.push(d.id);
    expect(await viaNginx()).toEqual({ status: 200, body: 'version-2' });
  }, 120_000);

  it('bad input is a 4xx in the UDC envelope', async () => {
    expectEnvelope(await api().del(`/projects/${project}/services/web/deployment?environment=NOT%20OK`), 400, 'INVALID_REQUEST');
    expectEnvelope(await api().del(`/projects/${project}/services/nope/deployment`), 404, 'NOT_FOUND');
    expectEnvelope(await api().del(`/projects/${project}/services/web/deployment?environment=uat`), 404, 'NOT_FOUND');
    const readOnly = { Authorization: `Bearer ${authority.mint({ scopes: ['read'] })}` };
    expectEnvelope(await request(droplet.app).delete(`/projects/${project}/services/web/deployment`).set(readOnly), 403, 'FORBIDDEN');
  });

  it('removes the route, the containers, the registry record and the release; keeps the history', async () => {
    expect((await containersOfProject()).length).toBeGreaterThan(0);
    const res = await api().del(`/projects/${project}/services/web/deployment?environment=prod`);
    expect(res.status).toBe(200);
    expect(res.body.undeployed).toHaveLength(1);
    expect(res.body.undeployed[0]).toMatchObject({
      target_id: target,
      environment: 'prod',
      deployment_id: history[history.length - 1],
      route: 'deleted',
      registry: 'removed',
      history_kept: true,
    });
    expect(res.body.undeployed[0].containers_removed.length).toBeGreaterThan(0);

    expect(await containersOfProject()).toEqual([]);
    const route = await fetch(`${pmUrl}/proxies/${target}`, {
      headers: { Authorization: `Bearer ${authority.mint({ scopes: ['read'] })}` },
      signal: AbortSignal.timeout(5000),
    });
    expect(route.status).toBe(404);
    expect((await viaNginx()).body).not.toBe('version-2');
    expect(records.has(target)).toBe(false);
    expectEnvelope(await api().get(`/services/${target}`), 404, 'NOT_FOUND');

    const kept = await api().get(`/deployments?project=${project}`);
    expect(kept.body.items.map((d: { id: string }) => d.id).sort()).toEqual([...history].sort());
    expect((await api().get(`/deployments/${history[0]}`)).status).toBe(200);

    // A second undeploy finds nothing to do.
    expectEnvelope(await api().del(`/projects/${project}/services/web/deployment`), 404, 'NOT_FOUND');
  }, 120_000);

  it('then the service, the environment and the project can be deleted', async () => {
    expect((await api().del(`/projects/${project}/services/web`)).status).toBe(204);
    expect((await api().del(`/projects/${project}/environments/prod`)).status).toBe(204);
    expect((await api().del(`/projects/${project}`)).status).toBe(204);
    expectEnvelope(await api().get(`/projects/${project}`), 404, 'NOT_FOUND');
    // The history outlives the project.
    expect((await api().get(`/deployments?project=${project}`)).body.items).toHaveLength(history.length);
  });

  it("a deleted project takes its environments' secrets and its registry credentials with it", async () => {
    const other = `${project}-gone`;
    const put = (p: string, b: object) => request(droplet.app).put(p).set(auth).send(b);
    const make = async () => {
      expect((await api().post('/projects', { name: other })).status).toBe(201);
      expect((await api().post(`/projects/${other}/environments`, { name: 'uat' })).status).toBe(201);
    };
    await make();
    expect((await put(`/projects/${other}/environments/uat/secrets/API_TOKEN`, { value: 's3cret-value' })).status).toBe(200);
    expect((await put(`/projects/${other}/registries/registry.example.test`, { username: 'u', password: 'p4ssword' })).status).toBe(200);
    expect((await api().del(`/projects/${other}`)).status).toBe(204);
    // A project made again under the name starts clean: nothing of the old one is inherited.
    await make();
    expect((await api().get(`/projects/${other}/environments/uat/secrets`)).body.items).toEqual([]);
    expect((await api().get(`/projects/${other}/registries`)).body.items).toEqual([]);
  });
});
