import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import {
  freePort,
  startNatsServer,
  startTestAuthority,
  waitFor,
  type NatsServerHandle,
  type TestAuthority,
} from '@droplet-mesh/udc-kit/testing';
import { createDeployerDroplet, type DeployerDroplet } from '../src/app.js';
import {
  HTTPD,
  cleanDocker,
  httpText,
  masterKey,
  portRange,
  quiet,
  testImages,
  uniqueProject,
  waitDeployment,
  type TestImages,
} from './helpers.js';
import { DEPLOYER_MAIN, runNode, waitHealthy, type Proc } from './process-helpers.js';

const project = uniqueProject('rc');
let nats: NatsServerHandle;
let authority: TestAuthority;
let images: TestImages;
let proc: Proc | undefined;
let replica: DeployerDroplet | undefined;
let url: string;
let env: Record<string, string>;
const tmp = mkdtempSync(join(tmpdir(), 'deployer-rc-'));

async function call(method: string, path: string, body?: unknown) {
  const r = await fetch(`${url}${path}`, {
    method,
    headers: { Authorization: `Bearer ${authority.mint({ scopes: ['read', 'write'] })}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  return { status: r.status, body: (await r.json().catch(() => undefined)) as Record<string, any> };
}

async function startDeployer(): Promise<void> {
  proc = runNode(DEPLOYER_MAIN, env);
  await waitHealthy(url, proc);
}

beforeAll(async () => {
  images = await testImages();
  nats = await startNatsServer();
  authority = await startTestAuthority();
  const port = await freePort();
  url = `http://127.0.0.1:${port}`;
  env = {
    PORT: String(port),
    NATS_URL: nats.url,
    LOG_LEVEL: 'warn',
    DEPLOYER_MASTER_KEY: masterKey(),
    DEPLOY_PORT_RANGE: portRange(),
    DRAIN_S: '0',
    DATA_DIR: join(tmp, 'data'),
    ...authority.env(),
  };
  await startDeployer();
}, 120_000);

afterAll(async () => {
  await replica?.deployer.idle();
  await replica?.stop();
  await proc?.stop();
  await authority?.close();
  await nats?.stop({ removeStore: true });
  if (images) await cleanDocker(images.docker, project);
  rmSync(tmp, { recursive: true, force: true });
}, 60_000);

describe('a deployer killed mid-deploy', () => {
  it('finds the deploy interrupted on restart, removes what it started, and the previous version keeps serving', async () => {
    expect((await call('POST', '/projects', { name: project })).status).toBe(201);
    expect((await call('POST', `/projects/${project}/environments`, { name: 'prod' })).status).toBe(201);
    expect((await call('POST', `/projects/${project}/services`, { name: 'web', type: 'web' })).status).toBe(201);
    const first = await call('POST', '/deployments', { project, service: 'web', environment: 'prod', source: { image: images.v1 } });
    expect(first.status).toBe(202);
    await waitFor(
      'first deploy',
      async () => (await call('GET', `/deployments/${first.body.id}`)).body.status === 'succeeded',
      30_000,
      100,
    );
    const release = (await call('GET', `/services/app-${project}-web-prod`)).body;
    const port = release.containers[0].port;
    expect((await httpText(`http://127.0.0.1:${port}/`)).trim()).toBe('version-1');

    // The next version takes a while to become healthy: kill -9 while the deployer waits for it.
    expect((await call('PATCH', `/projects/${project}/services/web`, { command: `sleep 30; ${HTTPD}` })).status).toBe(200);
    const second = await call('POST', '/deployments', { project, service: 'web', environment: 'prod', source: { image: images.v2 } });
    expect(second.status).toBe(202);
    await waitFor('the health step', async () => (await call('GET', `/deployments/${second.body.id}`)).body.step === 'health', 30_000, 50);
    const started = await images.docker.listContainers({ all: true, filters: { label: [`mesh.deployment=${second.body.id}`] } });
    expect(started).toHaveLength(1);
    proc!.child.kill('SIGKILL');
    await new Promise((r) => proc!.child.once('exit', r));
    expect((await httpText(`http://127.0.0.1:${port}/`)).trim()).toBe('version-1');

    await startDeployer();
    const after = (await call('GET', `/deployments/${second.body.id}`)).body;
    expect(after.status).toBe('interrupted');
    expect(after.reason).toMatch(/health/);
    expect(await images.docker.listContainers({ all: true, filters: { label: [`mesh.deployment=${second.body.id}`] } })).toHaveLength(0);
    const still = (await call('GET', `/services/app-${project}-web-prod`)).body;
    expect(still.deployment_id).toBe(first.body.id);
    expect((await httpText(`http://127.0.0.1:${port}/`)).trim()).toBe('version-1');
    // Nothing was lost across the restart: history and configuration are in KV.
    expect((await call('GET', `/deployments?project=${project}`)).body.pagination.total).toBe(2);
    expect((await call('GET', `/projects/${project}/services/web`)).body.command).toMatch(/sleep 30/);
  }, 120_000);

  it('a replica queued behind a killed replica takes over its lease, cleans up its deploy, then runs its own', async () => {
    // The process deployer runs a deploy that hangs in its health step; another replica queues one behind it.
    replica = await createDeployerDroplet({ env: { ...env, PORT: '0', DATA_DIR: join(tmp, 'replica') }, logDestination: quiet() });
    await replica.start();
    const auth = { Authorization: `Bearer ${authority.mint({ scopes: ['read', 'write'] })}` };
    const stuck = await call('POST', '/deployments', { project, service: 'web', environment: 'prod', source: { image: images.v1 } });
    expect(stuck.status).toBe(202);
    await waitFor('the health step', async () => (await call('GET', `/deployments/${stuck.body.id}`)).body.step === 'health', 30_000, 50);
    const queued = await request(replica.app)
      .post('/deployments')
      .set(auth)
      .send({ project, service: 'web', environment: 'prod', source: { image: images.v2 } });
    expect(queued.status).toBe(202);
    expect(queued.body.queue_position).toBe(1);
    // It will run with the service's config as it is when its turn comes: healthy at once.
    expect((await call('PATCH', `/projects/${project}/services/web`, { command: HTTPD })).status).toBe(200);
    proc!.child.kill('SIGKILL');
    await new Promise((r) => proc!.child.once('exit', r));

    const done = await waitDeployment(replica.app, auth, queued.body.id, 60_000);
    expect(done.status).toBe('succeeded');
    const dead = (await request(replica.app).get(`/deployments/${stuck.body.id}`).set(auth)).body;
    expect(dead.status).toBe('interrupted');
    expect(dead.reason).toMatch(/health/);
    expect(Date.parse(done.started_at as string)).toBeGreaterThanOrEqual(Date.parse(dead.finished_at));
    expect(await images.docker.listContainers({ all: true, filters: { label: [`mesh.deployment=${stuck.body.id}`] } })).toHaveLength(0);
    const release = (await request(replica.app).get(`/services/app-${project}-web-prod`).set(auth)).body;
    expect(release.deployment_id).toBe(queued.body.id);
    expect((await httpText(`http://127.0.0.1:${release.containers[0].port}/`)).trim()).toBe('version-2');
  }, 120_000);
});
