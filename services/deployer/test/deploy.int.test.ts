import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import * as tar from 'tar';
import { errors } from '@nats-io/transport-node';
import { startNatsServer, startTestAuthority, waitFor, type NatsServerHandle, type TestAuthority } from '@droplet-mesh/udc-kit/testing';
import type { DeployerDroplet } from '../src/app.js';
import { HTTPD, capture, cleanDocker, httpText, parseSse, testImages, uniqueProject, waitDeployment, type TestImages } from './helpers.js';
import { startTestDeployer } from './deployer-harness.js';

const SECRET = 'sup3r-s3cret-value-4f1c9a';
const project = uniqueProject('dt');
let nats: NatsServerHandle;
let authority: TestAuthority;
let droplet: DeployerDroplet;
let images: TestImages;
const logs = capture();
const tmp = mkdtempSync(join(tmpdir(), 'deployer-int-'));
const responses: string[] = [];
let auth: Record<string, string>;

/** Every response body this suite saw, to prove the secret never leaves. */
const api = () => {
  const app = droplet.app;
  const keep = <T extends { text?: string; body?: unknown }>(r: T) => (responses.push(r.text ?? JSON.stringify(r.body)), r);
  return {
    get: async (path: string) => keep(await request(app).get(path).set(auth)),
    post: async (path: string, body?: object) =>
      keep(
        await request(app)
          .post(path)
          .set(auth)
          .send(body ?? {}),
      ),
    put: async (path: string, body: object) => keep(await request(app).put(path).set(auth).send(body)),
    patch: async (path: string, body: object) => keep(await request(app).patch(path).set(auth).send(body)),
  };
};
const sse = (req: request.Test) =>
  req.buffer(true).parse((res, cb) => {
    let d = '';
    res.on('data', (c: Buffer) => (d += String(c)));
    res.on('end', () => cb(null, d));
  });

async function serving(service: string, env = 'prod'): Promise<{ port: number; text: string; deployment_id: string; image: string }> {
  const r = await api().get(`/services/app-${project}-${service}-${env}`);
  expect(r.status).toBe(200);
  const port = r.body.containers[0].port as number;
  return { port, text: await httpText(`http://127.0.0.1:${port}/`), deployment_id: r.body.deployment_id, image: r.body.image };
}

async function deploy(
  service: string,
  source: object,
  env = 'prod',
): Promise<{ id: string; body: Awaited<ReturnType<typeof waitDeployment>> }> {
  const res = await api().post('/deployments', { project, service, environment: env, source });
  expect(res.status).toBe(202);
  return { id: res.body.id, body: await waitDeployment(droplet.app, auth, res.body.id) };
}

beforeAll(async () => {
  images = await testImages();
  nats = await startNatsServer();
  authority = await startTestAuthority();
  droplet = await startTestDeployer({
    natsUrl: nats.url,
    authority,
    dataDir: join(tmp, 'data'),
    env: { LOG_LEVEL: 'debug', DRAIN_S: '0', NODE_BASE_IMAGE: images.nodeBase, UPLOAD_LIMIT_MB: '1', KEEP_IMAGES: '3' },
    registry: 'none',
    logDestination: logs,
  });
  auth = { Authorization: `Bearer ${authority.mint({ scopes: ['read', 'write'] })}` };
  const a = api();
  expect((await a.post('/projects', { name: project })).status).toBe(201);
  for (const env of ['prod', 'uat'])
    expect((await a.post(`/projects/${project}/environments`, { name: env, env: { GREETING: 'hello' } })).status).toBe(201);
  expect((await a.post(`/projects/${project}/services`, { name: 'web', type: 'web', health_path: '/health' })).status).toBe(201);
  expect((await a.put(`/projects/${project}/environments/prod/secrets/API_SECRET`, { value: SECRET })).status).toBe(200);
}, 180_000);

afterAll(async () => {
  await droplet?.deployer.idle();
  await droplet?.stop();
  await authority?.close();
  await nats?.stop({ removeStore: true });
  if (images) await cleanDocker(images.docker, project);
  rmSync(tmp, { recursive: true, force: true });
}, 60_000);

describe('deploys against the real Docker Engine', () => {
  let first: string;

  it('deploys an image: 202, SSE progress to the final status, labelled container serving on its port', async () => {
    const res = await api().post('/deployments', { project, service: 'web', environment: 'prod', source: { image: images.v1 } });
    expect(res.status).toBe(202);
    expect(res.headers.location).toBe(`/deployments/${res.body.id}`);
    first = res.body.id;
    const stream = await sse(request(droplet.app).get(`/deployments/${first}/events`).set(auth));
    expect(stream.headers['content-type']).toMatch(/text\/event-stream/);
    const events = parseSse(stream.body as string);
    const steps = events.filter((e) => e.event === 'step').map((e) => `${e.data.step}:${e.data.step_status}`);
    expect(steps).toEqual(expect.arrayContaining(['image:succeeded', 'start:succeeded', 'health:succeeded', 'drain:succeeded']));
    expect(events.some((e) => e.event === 'log')).toBe(true);
    const last = events[events.length - 1];
    expect(last.event).toBe('status');
    expect(last.data).toMatchObject({ status: 'succeeded', percent: 100 });

    const d = (await api().get(`/deployments/${first}`)).body;
    expect(d.image).toMatch(new RegExp(`^mesh-apps/${project}-web:deploy_[0-9a-f]{8}$`));
    expect(d.digest).toMatch(/^sha256:|@sha256:/);
    expect(d.steps.every((s: { duration_ms: number }) => typeof s.duration_ms === 'number')).toBe(true);
    const now = await serving('web');
    expect(now.text.trim()).toBe('version-1');
    const [container] = await images.docker.listContainers({ filters: { label: [`mesh.deployment=${first}`] } });
    expect(container.Labels).toMatchObject({
      'mesh.managed': 'true',
      'mesh.project': project,
      'mesh.service': 'web',
      'mesh.environment': 'prod',
    });
    const img = await images.docker.getImage(d.image).inspect();
    expect(img.Config.Labels).toMatchObject({ 'mesh.managed': 'true', 'mesh.project': project });
  }, 60_000);

  it('?wait=true streams a redeploy; the old container is drained and removed', async () => {
    const before = await serving('web');
    const res = await sse(
      request(droplet.app)
        .post('/deployments?wait=true')
        .set(auth)
        .send({ project, service: 'web', environment: 'prod', source: { image: images.v2 } }),
    );
    const events = parseSse(res.body as string);
    expect(events[0].event).toBe('accepted');
    expect(events[events.length - 1].data.status).toBe('succeeded');
    const after = await serving('web');
    expect(after.text.trim()).toBe('version-2');
    expect(after.port).not.toBe(before.port);
    const old = await images.docker.listContainers({ all: true, filters: { label: [`mesh.deployment=${first}`] } });
    expect(old).toHaveLength(0);
  }, 60_000);

  it('history is filtered, paginated and newest first; rollback redeploys the exact image', async () => {
    const hist = await api().get(`/deployments?project=${project}&service=web&per_page=1`);
    expect(hist.status).toBe(200);
    expect(hist.body.pagination).toMatchObject({ page: 1, per_page: 1, total: 2, next_page: 2 });
    expect(hist.body.items[0].source.image).toBe(images.v2);
    expect(hist.body.items[0]).not.toHaveProperty('events');
    const firstImage = (await api().get(`/deployments/${first}`)).body.image;
    const rb = await api().post(`/deployments/${first}/rollback`);
    expect(rb.status).toBe(202);
    const done = await waitDeployment(droplet.app, auth, rb.body.id);
    expect(done.status).toBe('succeeded');
    expect(done.rollback_of).toBe(first);
    expect(done.source).toEqual({ kind: 'image', image: firstImage });
    const now = await serving('web');
    expect(now.text.trim()).toBe('version-1');
    expect((await api().get(`/deployments?status=succeeded&service=web&project=${project}`)).body.pagination.total).toBe(3);
  }, 60_000);

  it('a failing health check removes the new containers, keeps the route and the old version serving', async () => {
    expect((await api().patch(`/projects/${project}/services/web`, { health_timeout_s: 3 })).status).toBe(200);
    const before = await serving('web');
    const { id, body } = await deploy('web', { image: images.broken });
    expect(body.status).toBe('failed');
    expect(body.reason).toMatch(/health/);
    expect(body.steps.find((s) => s.name === 'health')?.status).toBe('failed');
    expect(body.last_log_lines?.join('\n')).toContain('failing for good');
    expect(await images.docker.listContainers({ all: true, filters: { label: [`mesh.deployment=${id}`] } })).toHaveLength(0);
    const after = await serving('web');
    expect(after).toMatchObject({ port: before.port, deployment_id: before.deployment_id });
    expect(after.text.trim()).toBe('version-1');
    await api().patch(`/projects/${project}/services/web`, { health_timeout_s: 30 });
  }, 60_000);

  it('deploys an uploaded .tar.gz of a Node project with a generated Dockerfile; secrets are injected, never shown', async () => {
    expect((await api().post(`/projects/${project}/services`, { name: 'api', type: 'web', health_path: '/healthz' })).status).toBe(201);
    const src = join(tmp, 'node-app');
    mkdirSync(src, { recursive: true });
    writeFileSync(join(src, 'package.json'), JSON.stringify({ name: 'node-app', scripts: { start: 'node server.js' } }));
    writeFileSync(
      join(src, 'server.js'),
      `const http = require('http');
console.log('booting with secret ' + process.env.API_SECRET);
http.createServer((req, res) => {
  if (req.url === '/healthz') return res.end('ok');
  res.end(JSON.stringify({ app: 'node-app', greeting: process.env.GREETING, secret_len: (process.env.API_SECRET || '').length }));
}).listen(Number(process.env.PORT));\n`,
    );
    const archive = join(tmp, 'app.tar.gz');
    await tar.c({ gzip: true, file: archive, cwd: tmp }, ['node-app']);
    const res = await request(droplet.app)
      .post('/deployments')
      .set(auth)
      .field('project', project)
      .field('service', 'api')
      .field('environment', 'prod')
      .attach('source', archive);
    responses.push(res.text);
    expect(res.status).toBe(202);
    const done = await waitDeployment(droplet.app, auth, res.body.id);
    expect(done.status).toBe('succeeded');
    expect(done.source).toMatchObject({ kind: 'upload', filename: 'app.tar.gz' });
    const body = JSON.parse((await serving('api')).text);
    expect(body).toEqual({ app: 'node-app', greeting: 'hello', secret_len: SECRET.length });
    const containerLogs = await api().get(`/services/app-${project}-api-prod/logs?tail=20`);
    expect(containerLogs.status).toBe(200);
    expect(JSON.stringify(containerLogs.body)).toContain('booting with secret [redacted]');
    const names = await api().get(`/projects/${project}/environments/prod/secrets`);
    expect(names.body.items).toEqual([{ name: 'API_SECRET', updated_at: expect.any(String) }]);
    const events = await sse(request(droplet.app).get(`/deployments/${res.body.id}/events`).set(auth));
    responses.push(events.body as string);
    expect(events.body as string).toContain('generated one for a Node project');
  }, 90_000);

  it('deploys from a local git repository (file://) with its own Dockerfile', async () => {
    expect((await api().post(`/projects/${project}/services`, { name: 'site', type: 'web', health_path: '/health' })).status).toBe(201);
    const repo = join(tmp, 'repo');
    mkdirSync(join(repo, 'www'), { recursive: true });
    writeFileSync(join(repo, 'www/index.html'), 'from-git');
    writeFileSync(join(repo, 'www/health'), 'ok');
    writeFileSync(join(repo, 'Dockerfile'), `FROM ${images.busybox}\nCOPY www /www\nCMD ${JSON.stringify(['/bin/sh', '-c', HTTPD])}\n`);
    const git = (...args: string[]) => execFileSync('git', ['-C', repo, ...args], { stdio: 'pipe' });
    execFileSync('git', ['init', '-q', '-b', 'main', repo]);
    git('add', '.');
    git('-c', 'user.email=t@example.com', '-c', 'user.name=t', 'commit', '-q', '-m', 'site');
    const { body } = await deploy('site', { git: { url: `file://${repo}`, ref: 'main' } });
    expect(body.status).toBe('succeeded');
    expect((await serving('site')).text).toBe('from-git');
    const bad = await deploy('site', { git: { url: `file://${repo}-missing`, ref: 'main' } });
    expect(bad.body.status).toBe('failed');
    expect(bad.body.reason).toMatch(/git clone failed/);
    expect((await serving('site')).text).toBe('from-git');
  }, 90_000);

  it('one deploy per service at a time: queue positions, 409 with queue=false, other services in parallel', async () => {
    const a = await api().post('/deployments', { project, service: 'web', environment: 'prod', source: { image: images.v2 } });
    const b = await api().post('/deployments', { project, service: 'web', environment: 'prod', source: { image: images.v1 } });
    const refused = await api().post('/deployments', {
      project,
      service: 'web',
      environment: 'prod',
      source: { image: images.v1 },
      queue: false,
    });
    const other = await api().post('/deployments', {
      project,
      service: 'site',
      environment: 'prod',
      source: { image: images.v1 },
      queue: false,
    });
    expect([a.body.queue_position, b.body.queue_position]).toEqual([0, 1]);
    expect(refused.status).toBe(409);
    expect(refused.body.error.code).toBe('CONFLICT');
    expect(other.status).toBe(202);
    expect(other.body.queue_position).toBe(0);
    const queued = await api().get(`/deployments/${b.body.id}`);
    expect(['queued', 'running', 'succeeded']).toContain(queued.body.status);
    for (const id of [a.body.id, b.body.id, other.body.id]) expect((await waitDeployment(droplet.app, auth, id)).status).toBe('succeeded');
    expect((await serving('web')).text.trim()).toBe('version-1');
  }, 120_000);

  it('NATS failing mid-way through a deploy request: 503, no lane entry left, the retry deploys', async () => {
    // The lane entry is written, then reading the lane fails as it does while NATS is away.
    const lanes = droplet.stores.lanes;
    const readQueue = lanes.queue.bind(lanes);
    let failed = 0;
    lanes.queue = async (target) => {
      if (failed++ === 0) throw new errors.TimeoutError();
      return readQueue(target);
    };
    try {
      const source = { image: images.v1 };
      const refused = await api().post('/deployments', { project, service: 'web', environment: 'prod', source });
      expect(refused.status).toBe(503);
      expect(refused.body.error.code).toBe('DEPENDENCY_UNAVAILABLE');
      expect(await readQueue(`app-${project}-web-prod`)).toEqual([]);
      const retried = await deploy('web', source);
      expect(retried.body.status).toBe('succeeded');
      expect((await serving('web')).deployment_id).toBe(retried.id);
    } finally {
      delete (lanes as Partial<typeof lanes>).queue;
    }
  }, 120_000);

  it('promotes the exact image from uat to prod', async () => {
    const uat = await deploy('web', { image: images.v2 }, 'uat');
    expect(uat.body.status).toBe('succeeded');
    const res = await api().post('/environments/uat/promote', { project, service: 'web', to: 'prod' });
    expect(res.status).toBe(202);
    const done = await waitDeployment(droplet.app, auth, res.body.id);
    expect(done.status).toBe('succeeded');
    expect(done.promoted_from).toBe(uat.id);
    expect(done.source).toEqual({ kind: 'image', image: uat.body.image });
    expect((await serving('web', 'prod')).text.trim()).toBe('version-2');
  }, 60_000);

  it('restart over a UDC message answers when the service is healthy again; scale rolls out replicas', async () => {
    const target = `app-${project}-web-prod`;
    const before = await serving('web');
    const reply = await request(droplet.app)
      .post('/message')
      .set(auth)
      .send({ source: 'health-monitor', target: 'deployer', message_type: 'command', payload: { action: 'restart', target_id: target } });
    expect(reply.body.result).toBe('success');
    expect(reply.body.data.containers[0]).toMatchObject({ healthy: true, port: before.port });
    expect((await httpText(`http://127.0.0.1:${before.port}/`)).trim()).toBe('version-2');
    const scaled = await api().post(`/services/${target}/scale`, { replicas: 2 });
    expect(scaled.status).toBe(202);
    expect((await waitDeployment(droplet.app, auth, scaled.body.id)).status).toBe('succeeded');
    const now = await api().get(`/services/${target}`);
    expect(now.body.containers).toHaveLength(2);
    for (const c of now.body.containers) expect((await httpText(`http://127.0.0.1:${c.port}/`)).trim()).toBe('version-2');
  }, 90_000);

  it('workers: containers replaced, no route, no port', async () => {
    expect(
      (await api().post(`/projects/${project}/services`, { name: 'jobs', type: 'worker', command: 'echo worker up; exec sleep 3600' }))
        .status,
    ).toBe(201);
    const one = await deploy('jobs', { image: images.busybox });
    expect(one.body.status).toBe('succeeded');
    const two = await deploy('jobs', { image: images.busybox });
    expect(two.body.status).toBe('succeeded');
    expect(two.body.steps.map((s) => s.name)).toEqual(['image', 'stop-old', 'start', 'running', 'remove-old']);
    const running = await images.docker.listContainers({ filters: { label: [`mesh.project=${project}`, 'mesh.service=jobs'] } });
    expect(running.map((c) => c.Labels['mesh.deployment'])).toEqual([two.id]);
  }, 60_000);

  it('refuses bad input with clear 4xx envelopes', async () => {
    const a = api();
    expect((await a.post('/deployments', { project, service: 'nope', environment: 'prod', source: { image: 'x:1' } })).status).toBe(404);
    const badSource = await a.post('/deployments', { project, service: 'web', environment: 'prod', source: { ftp: 'x' } });
    expect(badSource.status).toBe(400);
    expect(badSource.body.error.code).toBe('INVALID_REQUEST');
    expect(
      (
        await a.post('/deployments', {
          project,
          service: 'web',
          environment: 'prod',
          source: { git: { url: 'file:///x', ref: '--upload-pack=evil' } },
        })
      ).status,
    ).toBe(400);
    expect((await a.post(`/projects/${project}/services`, { name: 'w2', type: 'worker', domain: 'x.example.com' })).status).toBe(400);
    expect((await a.get('/deployments/not-a-uuid')).status).toBe(400);
    expect((await a.get('/deployments/00000000-0000-4000-8000-000000000000')).status).toBe(404);
    const notGzip = await request(droplet.app)
      .post('/deployments')
      .set(auth)
      .field('project', project)
      .field('service', 'api')
      .field('environment', 'prod')
      .attach('source', Buffer.from('plain text'), 'x.tar.gz');
    expect(notGzip.status).toBe(400);
    const big = await request(droplet.app)
      .post('/deployments')
      .set(auth)
      .field('project', project)
      .field('service', 'api')
      .field('environment', 'prod')
      .attach('source', Buffer.concat([Buffer.from([0x1f, 0x8b]), Buffer.alloc(2 * 1024 * 1024)]), 'big.tar.gz');
    expect(big.status).toBe(413);
    expect(big.body.status).toBe('error');
    const readOnly = await request(droplet.app)
      .post('/deployments')
      .set({ Authorization: `Bearer ${authority.mint({ scopes: ['read'] })}` })
      .send({});
    expect(readOnly.status).toBe(403);
  }, 30_000);

  it('the secret value appears in no API response and no log line', async () => {
    await waitFor('log flush', () => true, 1000);
    expect(responses.length).toBeGreaterThan(20);
    for (const r of responses) expect(r).not.toContain(SECRET);
    expect(logs.text().length).toBeGreaterThan(1000);
    expect(logs.text()).not.toContain(SECRET);
    const ringLogs = await request(droplet.app).get('/logs?limit=1000').set(auth);
    expect(ringLogs.text).not.toContain(SECRET);
  });
});
