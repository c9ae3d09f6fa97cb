import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Docker from 'dockerode';
import request from 'supertest';
import { startNatsServer, startTestAuthority, waitFor, type NatsServerHandle, type TestAuthority } from '@droplet-mesh/udc-kit/testing';
import type { DeployerDroplet } from '../src/app.js';
import { cleanDocker, testImages, uniqueProject, waitDeployment, type TestImages } from './helpers.js';
import { createProject, startTestDeployer } from './deployer-harness.js';

/**
 * Issue 16, item 2: an app container that dies without the deployer stopping it is started
 * again from the Docker Engine's events (not from health-monitor's polls), and reported.
 * What the deployer (or an operator) stops on purpose stays stopped. Against the real
 * Docker Engine. The kill → serving times are printed, never asserted.
 */
const project = uniqueProject('cr');
const target = `app-${project}-web-prod`;
let nats: NatsServerHandle;
let authority: TestAuthority;
let droplet: DeployerDroplet;
let images: TestImages;
let auth: Record<string, string>;
const tmp = mkdtempSync(join(tmpdir(), 'deployer-crash-'));
const figures: Record<string, number> = {};

const api = {
  get: (path: string) => request(droplet.app).get(path).set(auth),
  post: (path: string, body: object = {}) => request(droplet.app).post(path).set(auth).send(body),
  del: (path: string) => request(droplet.app).delete(path).set(auth),
};

async function answers(port: number, text: string): Promise<boolean> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(1000) });
    return (await res.text()).trim() === text;
  } catch {
    return false;
  }
}

/** ms from now until the app answers `text` on `port` (fails after 30 s). */
async function untilServing(port: number, text: string, started = Date.now()): Promise<number> {
  await waitFor(`the app answers on ${port}`, () => answers(port, text), 30_000, 25);
  return Date.now() - started;
}

async function deploy(image: string): Promise<string> {
  const res = await api.post('/deployments', { project, service: 'web', environment: 'prod', source: { image } });
  expect(res.status).toBe(202);
  expect((await waitDeployment(droplet.app, auth, res.body.id, 120_000)).status).toBe('succeeded');
  return res.body.id as string;
}

async function current(): Promise<{ id: string; name: string; port: number; deployment_id: string }> {
  const r = await api.get(`/services/${target}`);
  expect(r.status).toBe(200);
  const c = r.body.containers[0];
  return { id: c.container_id, name: c.name, port: c.port, deployment_id: r.body.deployment_id };
}

type RestartEvent = { container: string; died_at: string; restarted_by: string; restart_ms: number; engine_start_ms: number };
async function restartEvents(): Promise<RestartEvent[]> {
  const r = await api.get('/events?type=service.container_restarted&limit=1000');
  expect(r.status).toBe(200);
  return (r.body.events as Array<{ data: RestartEvent }>).map((e) => e.data);
}

const running = async (docker: Docker, id: string) =>
  docker
    .getContainer(id)
    .inspect()
    .then(
      (i) => i.State.Running || i.State.Restarting,
      () => false,
    );

/** Let the engine's events reach the deployer (and any wrong restart happen) before asserting that nothing came back. */
const settle = () => new Promise((r) => setTimeout(r, 3_000));

beforeAll(async () => {
  images = await testImages();
  nats = await startNatsServer();
  authority = await startTestAuthority();
  droplet = await startTestDeployer({
    natsUrl: nats.url,
    authority,
    dataDir: join(tmp, 'data'),
    env: {
      LOG_LEVEL: undefined,
      DRAIN_S: '0',
      CRASH_RESTART: process.env.CRASH_RESTART ?? 'true',
      NODE_BASE_IMAGE: images.nodeBase,
    },
    registry: 'none',
  });
  auth = { Authorization: `Bearer ${authority.mint({ scopes: ['read', 'write'] })}` };
  await createProject(droplet.app, auth, project, { services: [{ name: 'web', type: 'web', health_path: '/health' }] });
}, 180_000);

afterAll(async () => {
  console.log('crash restart figures (ms, this machine, under its load):', figures);
  await droplet?.deployer.idle();
  await droplet?.stop();
  await authority?.close();
  await nats?.stop({ removeStore: true });
  if (images) await cleanDocker(images.docker, project);
  rmSync(tmp, { recursive: true, force: true });
}, 60_000);

describe('crash recovery from Docker events', () => {
  it('docker kill of a released app container: the deployer starts it again at once and reports it', async () => {
    await deploy(images.v1);
    const c = await current();
    expect(await answers(c.port, 'version-1')).toBe(true);

    const killedAt = Date.now();
    await images.docker.getContainer(c.id).kill({ signal: 'SIGKILL' });
    figures.docker_kill_to_serving = await untilServing(c.port, 'version-1', killedAt);
    // The same container (same port, same route) runs again; the engine's policy does not restart a `docker kill`ed one: the deployer did.
    expect(await running(images.docker, c.id)).toBe(true);
    await waitFor('the restart event', async () => (await restartEvents()).some((e) => e.container === c.name), 10_000, 100);
    const event = (await restartEvents()).find((e) => e.container === c.name);
    expect(event).toMatchObject({ restarted_by: 'deployer' });
    // The death itself is announced before the restart (health-monitor opens its incident from it), with the same died_at.
    const died = await api.get('/events?type=service.container_died&limit=1000');
    const diedEvent = (died.body.events as Array<{ data: { container: string; died_at: string; exit_code: number } }>).find(
      (e) => e.data.container === c.name,
    );
    expect(diedEvent?.data).toMatchObject({ target_id: target, record_id: target, exit_code: 137, died_at: event?.died_at });
    figures.docker_kill_die_to_started = event?.restart_ms ?? -1;
    figures.docker_kill_engine_start_call = event?.engine_start_ms ?? -1;
  }, 180_000);

  it('kill -9 of the app process inside its container: the app answers again and the death is reported', async () => {
    const c = await current();
    const before = (await restartEvents()).length;
    const exec = await images.docker.getContainer(c.id).exec({
      Cmd: ['/bin/sh', '-c', 'kill -9 $(pidof httpd)'],
      User: '65534',
      AttachStdout: true,
      AttachStderr: true,
    });
    const killedAt = Date.now();
    const out = await exec.start({ hijack: true, stdin: false });
    await new Promise((r) => (out.on('end', r), out.on('close', r), out.resume()));
    figures.process_kill9_to_serving = await untilServing(c.port, 'version-1', killedAt);
    await waitFor('the restart event', async () => (await restartEvents()).length > before, 10_000, 100);
  }, 60_000);

  it('baseline: docker restart of the same container (the deployer leaves a stop it did not make alone)', async () => {
    const c = await current();
    const before = (await restartEvents()).length;
    const started = Date.now();
    await images.docker.getContainer(c.id).restart({ t: 10 });
    figures.docker_restart_to_serving = await untilServing(c.port, 'version-1', started);
    await settle();
    expect((await restartEvents()).length).toBe(before);
  }, 60_000);

  it('a container stopped on purpose stays stopped: operator docker stop, rollback, scale down, undeploy', async () => {
    const before = (await restartEvents()).length;

    // An operator's `docker stop` (a graceful stop) is left alone.
    const c1 = await current();
    await images.docker.getContainer(c1.id).stop({ t: 10 });
    await settle();
    expect(await running(images.docker, c1.id)).toBe(false);
    await images.docker.getContainer(c1.id).start();
    await untilServing(c1.port, 'version-1');

    // A new version: the old container drains and stops.
    const second = await deploy(images.v2);
    await settle();
    expect(await running(images.docker, c1.id)).toBe(false);

    // Rollback to the first version: the v2 container stops.
    const c2 = await current();
    expect(c2.deployment_id).toBe(second);
    const rb = await api.post(`/deployments/${c1.deployment_id}/rollback`);
    expect(rb.status).toBe(202);
    expect((await waitDeployment(droplet.app, auth, rb.body.id, 120_000)).status).toBe('succeeded');
    await settle();
    expect(await running(images.docker, c2.id)).toBe(false);

    // Scale to 2 and back to 1: the replicas of the larger release stop.
    const up = await api.post(`/services/${target}/scale`, { replicas: 2 });
    expect((await waitDeployment(droplet.app, auth, up.body.id, 120_000)).status).toBe('succeeded');
    const two = (await api.get(`/services/${target}`)).body.containers as Array<{ container_id: string }>;
    expect(two).toHaveLength(2);
    const down = await api.post(`/services/${target}/scale`, { replicas: 1 });
    expect((await waitDeployment(droplet.app, auth, down.body.id, 120_000)).status).toBe('succeeded');
    await settle();
    for (const c of two) expect(await running(images.docker, c.container_id)).toBe(false);

    // Undeploy: nothing of the service runs afterwards.
    const last = await current();
    expect((await api.del(`/projects/${project}/services/web/deployment`)).status).toBe(200);
    await settle();
    expect(await running(images.docker, last.id)).toBe(false);
    const left = await images.docker.listContainers({ filters: { label: [`mesh.project=${project}`] } });
    expect(left).toEqual([]);

    expect((await restartEvents()).length).toBe(before);
  }, 600_000);
});
