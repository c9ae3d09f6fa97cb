import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import { startNatsServer, startTestAuthority, waitFor, type NatsServerHandle, type TestAuthority } from '@droplet-mesh/udc-kit/testing';
import { createDeployerDroplet, type DeployerDroplet } from '../src/app.js';
import {
  HTTPD,
  cleanDocker,
  httpText,
  masterKey,
  parseSse,
  portRange,
  quiet,
  testImages,
  uniqueProject,
  waitDeployment,
  type DeploymentBody,
  type TestImages,
} from './helpers.js';

// Two deployer replicas on one nats-server (one KV bucket) and one Docker Engine.
const project = uniqueProject('rp');
let nats: NatsServerHandle;
let authority: TestAuthority;
let images: TestImages;
let a: DeployerDroplet;
let b: DeployerDroplet;
let auth: Record<string, string>;
const tmp = mkdtempSync(join(tmpdir(), 'deployer-rp-'));

beforeAll(async () => {
  images = await testImages();
  nats = await startNatsServer();
  authority = await startTestAuthority();
  const env = {
    PORT: '0',
    NATS_URL: nats.url,
    LOG_LEVEL: 'warn',
    DEPLOYER_MASTER_KEY: masterKey(),
    DEPLOY_PORT_RANGE: portRange(),
    DRAIN_S: '0',
    ...authority.env(),
  };
  a = await createDeployerDroplet({ env: { ...env, DATA_DIR: join(tmp, 'a') }, logDestination: quiet() });
  b = await createDeployerDroplet({ env: { ...env, DATA_DIR: join(tmp, 'b') }, logDestination: quiet() });
  await a.start();
  await b.start();
  auth = { Authorization: `Bearer ${authority.mint({ scopes: ['read', 'write'] })}` };
  const post = (p: string, body: object) => request(a.app).post(p).set(auth).send(body);
  expect((await post('/projects', { name: project })).status).toBe(201);
  expect((await post(`/projects/${project}/environments`, { name: 'prod' })).status).toBe(201);
  // Each deploy takes a couple of seconds to turn healthy: long enough to queue behind.
  const command = `sleep 2; ${HTTPD}`;
  expect((await post(`/projects/${project}/services`, { name: 'web', type: 'web', health_path: '/health', command })).status).toBe(201);
}, 120_000);

afterAll(async () => {
  await a?.deployer.idle();
  await b?.deployer.idle();
  await a?.stop();
  await b?.stop();
  await authority?.close();
  await nats?.stop({ removeStore: true });
  if (images) await cleanDocker(images.docker, project);
  rmSync(tmp, { recursive: true, force: true });
}, 60_000);

const deployTo = (replica: DeployerDroplet, image: string, extra: object = {}) =>
  request(replica.app)
    .post('/deployments')
    .set(auth)
    .send({ project, service: 'web', environment: 'prod', source: { image }, ...extra });

const span = (d: DeploymentBody) => {
  const steps = d.steps as unknown as Array<{ started_at: string; finished_at: string }>;
  return { start: Math.min(...steps.map((s) => Date.parse(s.started_at))), end: Math.max(...steps.map((s) => Date.parse(s.finished_at))) };
};

describe('one deploy per service at a time, across replicas', () => {
  it('two deploys of one service sent to different replicas run one after the other; the queue is visible on both; queue=false is refused', async () => {
    const first = await deployTo(a, images.v1);
    expect(first.status).toBe(202);
    expect(first.body.queue_position).toBe(0);
    const second = await deployTo(b, images.v2);
    expect(second.status).toBe(202);
    expect(second.body.queue_position).toBe(1);
    // Progress of the second deploy, streamed by the replica that does not run it.
    const stream = request(a.app)
      .get(`/deployments/${second.body.id}/events`)
      .set(auth)
      .buffer(true)
      .parse((res, cb) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += String(c)));
        res.on('end', () => cb(null, text));
      });
    const streamed = stream.then((r) => r.body as string);

    await waitFor(
      'the first deploy to run',
      async () => (await request(b.app).get(`/deployments/${first.body.id}`).set(auth)).body.status === 'running',
      20_000,
      50,
    );
    for (const replica of [a, b]) {
      const waiting = await request(replica.app).get(`/deployments/${second.body.id}`).set(auth);
      expect(waiting.body).toMatchObject({ status: 'queued', queue_position: 1 });
      const running = await request(replica.app).get(`/deployments/${first.body.id}`).set(auth);
      expect(running.body).toMatchObject({ status: 'running', queue_position: 0 });
    }
    const refused = await deployTo(b, images.v1, { queue: false });
    expect(refused.status).toBe(409);
    expect(refused.body.error).toMatchObject({ code: 'CONFLICT', details: { running: first.body.id, queued: 1 } });

    const one = await waitDeployment(b.app, auth, first.body.id, 60_000);
    const two = await waitDeployment(a.app, auth, second.body.id, 60_000);
    expect([one.status, two.status]).toEqual(['succeeded', 'succeeded']);
    // No overlap: every step of the second starts after the last step of the first ended.
    expect(span(two).start).toBeGreaterThanOrEqual(span(one).end);
    expect(Date.parse(two.started_at as string)).toBeGreaterThanOrEqual(Date.parse(one.finished_at as string));
    expect(two.previous_deployment_id).toBe(first.body.id);

    const events = parseSse(await streamed);
    expect(events.filter((e) => e.event === 'status').map((e) => e.data.status)).toEqual(['queued', 'running', 'succeeded']);
    const release = (await request(b.app).get(`/services/app-${project}-web-prod`).set(auth)).body;
    expect(release.deployment_id).toBe(second.body.id);
    expect((await httpText(`http://127.0.0.1:${release.containers[0].port}/`)).trim()).toBe('version-2');
    // The lane is empty again: a queue=false deploy is accepted on either replica.
    const after = await deployTo(a, images.v2, { queue: false });
    expect(after.status).toBe(202);
    expect((await waitDeployment(a.app, auth, after.body.id, 60_000)).status).toBe('succeeded');
  }, 120_000);
});
