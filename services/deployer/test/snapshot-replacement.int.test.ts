import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request as httpRequest, type Server as HttpServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import { startAllEmulators, type AllEmulators } from '@droplet-mesh/cloud-emulators';
import { copyImages, namespacedEngineUnavailable, startNamespacedEngine, type NamespacedEngine } from '@droplet-mesh/docker-testing';
import {
  freePort,
  startNatsServer,
  startTestAuthority,
  waitFor,
  type NatsServerHandle,
  type TestAuthority,
} from '@droplet-mesh/udc-kit/testing';
import type { DeployerDroplet } from '../src/app.js';
import { INCIDENT_OPENED_SUBJECT, SERVER_TARGET_PREFIX } from '../src/deploy/server-replacement.js';
import { cleanDocker, testImages, uniqueProject, waitDeployment, type TestImages } from './helpers.js';
import { MCM_MAIN, runNode, waitHealthy, type Proc } from './process-helpers.js';
import { startTestDeployer } from './deployer-harness.js';

// on_server_loss: replace_from_snapshot. A cloud server (Hetzner emulator) whose instance has
// snapshots is declared down: its replicas move to the environment's other server first, a
// replacement is created from the newest snapshot with fresh user_data, the machine is played
// here from that user_data (a dockerd in its own network namespace with the certificate and
// token it carries; the image is on it, as a snapshot of a server that ran it holds it), it
// reports ready and the services run on it, every step on the incident's timeline (a stand-in
// for health-monitor records incident.note). Then the replacement itself is lost: its
// instance has no snapshot, so the timeline says so and the move stands.
const why = namespacedEngineUnavailable();
const d = why ? describe.skip : describe;
if (why) console.warn(`snapshot-replacement: skipped (${why})`);
const cloudInit = spawnSync('sh', ['-c', 'command -v cloud-init'], { encoding: 'utf8' }).stdout.trim();

const project = uniqueProject('sr');
const target = `app-${project}-web-prod`;
const [A, LOST] = [`${project}-a`, `${project}-s`];
const REPLACEMENT = `${LOST}-r1`;
let nats: NatsServerHandle;
let authority: TestAuthority;
let images: TestImages;
let emus: AllEmulators;
let mcm: Proc | undefined;
let droplet: DeployerDroplet;
let admin: Record<string, string>;
let writer: Record<string, string>;
let recorder: HttpServer | undefined;
const engines: NamespacedEngine[] = [];
/** Bodies of the POSTs multi-cloud-manager sent to the emulated Hetzner. */
const creates: Array<Record<string, unknown>> = [];
/** What the deployer wrote on incident timelines (health-monitor's incident.note). */
const notes: Array<{ target_id: string; event: string; detail: Record<string, unknown> }> = [];
const tmp = mkdtempSync(join(tmpdir(), 'deployer-sr-'));
const post = (p: string, b: object, auth = admin) => request(droplet.app).post(p).set(auth).send(b);
const hetzner = (method: string, path: string, body?: object) =>
  fetch(`${emus.hetzner.url}/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${emus.hetzner.token}`, 'content-type': 'application/json' },
    ...(body ? { body: JSON.stringify(body) } : {}),
  }).then((r) => r.json() as Promise<Record<string, { id: number; status?: string }>>);
/** A snapshot of the instance; the emulator answers 423 locked while an earlier action of the server still runs, as Hetzner does. */
async function snapshotOf(instanceId: number, description: string): Promise<number> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const r = await hetzner('POST', `/servers/${instanceId}/actions/create_image`, { type: 'snapshot', description });
    if (r.image) return r.image.id;
    if (Date.now() > deadline) throw new Error(`no snapshot of ${instanceId}: ${JSON.stringify(r)}`);
    await new Promise((res) => setTimeout(res, 200));
  }
}
const release = async () =>
  (await request(droplet.app).get(`/services/${target}`).set(writer)).body as {
    deployment_id: string;
    image: string;
    containers: Array<{ server_id: string }>;
  };
const timeline = (server: string) => notes.filter((n) => n.target_id === `${SERVER_TARGET_PREFIX}${server}`);

/** In front of the emulator: records each create's body (the emulator keeps no user_data), then forwards. */
function recordingProxy(target: string): Promise<{ server: HttpServer; url: string }> {
  const t = new URL(target);
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      if (req.method === 'POST' && body.length > 0) creates.push({ path: req.url, ...JSON.parse(body.toString()) });
      const out = httpRequest(
        { host: t.hostname, port: t.port, method: req.method, path: req.url, headers: { ...req.headers, host: t.host } },
        (up) => {
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
        },
      );
      out.on('error', () => res.destroy());
      out.end(body);
    });
  });
  return new Promise((r) =>
    server.listen(0, '127.0.0.1', () => r({ server, url: `http://127.0.0.1:${(server.address() as { port: number }).port}` })),
  );
}

/** A mesh engine of its own, registered as `id` (its certificate issued by the mesh CA). */
async function meshEngine(id: string): Promise<NamespacedEngine> {
  const e = await startNamespacedEngine({
    tls: async (address) => {
      const res = await post('/mesh-ca/engine-certificates', { server_id: id, addresses: [address] });
      return { ca: res.body.ca, cert: res.body.cert, key: res.body.key };
    },
  });
  engines.push(e);
  await copyImages(images.docker, e.docker, [images.v1]);
  return e;
}

beforeAll(async () => {
  if (why) return;
  images = await testImages();
  nats = await startNatsServer();
  authority = await startTestAuthority();
  emus = await startAllEmulators({ seedInstances: 0, actionDurationMs: 100 });
  const proxy = await recordingProxy(emus.hetzner.url);
  recorder = proxy.server;
  const mcmPort = await freePort();
  mcm = runNode(MCM_MAIN, {
    PORT: String(mcmPort),
    NATS_URL: nats.url,
    LOG_LEVEL: 'warn',
    HETZNER_TOKEN: emus.hetzner.token,
    HETZNER_API_URL: `${proxy.url}/v1`,
    LOCAL_PROVIDER_ENABLED: 'false',
    ACTION_POLL_INTERVAL_MS: '100',
    ...authority.env(),
  });
  const port = await freePort();
  droplet = await startTestDeployer({
    natsUrl: nats.url,
    authority,
    dataDir: join(tmp, 'data'),
    port,
    env: { DEPLOYER_PUBLIC_URL: `http://127.0.0.1:${port}`, PROVISION_TIMEOUT_S: '60' },
  });
  // health-monitor's side: each incident.note recorded, answered as health-monitor does.
  droplet.ctx.bus.nc.subscribe('udc.health-monitor.message', {
    callback: (_err, m) => {
      const env = m.json<{
        trace_id: string;
        payload: { action: string; target_id: string; event: string; detail: Record<string, unknown> };
      }>();
      if (env.payload.action === 'incident.note')
        notes.push({ target_id: env.payload.target_id, event: env.payload.event, detail: env.payload.detail });
      m.respond(
        JSON.stringify({ received: true, trace_id: env.trace_id, processed_at: new Date().toISOString(), result: 'success', data: {} }),
      );
    },
  });
  admin = { Authorization: `Bearer ${authority.mint({ scopes: ['read', 'write', 'admin'] })}` };
  writer = { Authorization: `Bearer ${authority.mint({ scopes: ['read', 'write'] })}` };
  await waitHealthy(`http://127.0.0.1:${mcmPort}`, mcm, 30_000);
}, 120_000);

afterAll(async () => {
  await droplet?.deployer.idle();
  await droplet?.stop();
  await mcm?.stop();
  await new Promise<void>((r) => (recorder ? recorder.close(() => r()) : r()));
  await emus?.close();
  await authority?.close();
  await nats?.stop();
  await Promise.allSettled(engines.map((e) => e.stop()));
  if (images) await cleanDocker(images.docker, project);
  rmSync(tmp, { recursive: true, force: true });
}, 120_000);

d('on_server_loss: replace_from_snapshot', () => {
  it('a lost cloud server with snapshots: moved first, then a replacement from the newest snapshot (valid user_data) reports ready and runs the services; the timeline has each step', async () => {
    expect((await post('/projects', { name: project }, writer)).status).toBe(201);
    expect((await post(`/projects/${project}/environments`, { name: 'prod' }, writer)).status).toBe(201);
    const policy = await request(droplet.app)
      .put(`/projects/${project}/environments/prod/server-loss-policy`)
      .set(admin)
      .send({ on_server_loss: 'replace_from_snapshot' });
    expect(policy.status).toBe(200);
    expect(
      (await post(`/projects/${project}/services`, { name: 'web', type: 'web', health_path: '/health', replicas: 2 }, writer)).status,
    ).toBe(201);
    // The lost server is a Hetzner machine with two snapshots; the other server has no instance.
    const made = await hetzner('POST', '/servers', {
      name: LOST,
      server_type: 'cx22',
      image: 'debian-12',
      location: 'nbg1',
      labels: { 'droplet-mesh': 'true', 'mesh-server': LOST },
    });
    const instanceId = made.server.id;
    const older = await snapshotOf(instanceId, 'older');
    await new Promise((r) => setTimeout(r, 300));
    const newest = await snapshotOf(instanceId, 'newest');
    expect(newest).not.toBe(older);
    const [ea, es] = await Promise.all([meshEngine(A), meshEngine(LOST)]);
    const env = [`${project}/prod`];
    expect((await post('/servers', { id: A, docker_host: ea.dockerHost, tls: 'mesh', environments: env })).status).toBe(201);
    const lostRes = await post('/servers', {
      id: LOST,
      docker_host: es.dockerHost,
      address: es.address,
      tls: 'mesh',
      instance_id: `hetzner:${instanceId}`,
      environments: env,
    });
    expect(lostRes.status).toBe(201);
    const dep = await post('/deployments', { project, service: 'web', environment: 'prod', source: { image: images.v1 } }, writer);
    expect((await waitDeployment(droplet.app, writer, dep.body.id, 60_000)).status).toBe('succeeded');
    expect(new Set((await release()).containers.map((c) => c.server_id))).toEqual(new Set([A, LOST]));

    es.kill();
    droplet.ctx.bus.publishJson(INCIDENT_OPENED_SUBJECT, { id: 'inc-s', target_id: `${SERVER_TARGET_PREFIX}${LOST}`, status: 'open' });
    // The replacement's create: the newest snapshot as its image, in the lost instance's region and size.
    let create: Record<string, unknown> | undefined;
    await waitFor(
      'the replacement created at Hetzner',
      () => (create = creates.find((c) => c.path === '/v1/servers' && c.name === REPLACEMENT)) !== undefined,
      20_000,
      100,
    );
    expect(create).toMatchObject({ image: String(newest), server_type: 'cx22', location: 'nbg1' });
    const userData = String(create!.user_data);
    expect(userData).toMatch(/^#cloud-config\n/);
    if (cloudInit) {
      const file = join(tmp, 'user-data.yaml');
      writeFileSync(file, userData);
      const schema = spawnSync(cloudInit, ['schema', '--config-file', file], { encoding: 'utf8', timeout: 60_000 });
      expect(`${schema.status} ${schema.stdout}${schema.stderr}`).toMatch(/^0 .*Valid/s);
    }
    const config = JSON.parse(
      execFileSync('python3', ['-c', 'import sys, json, yaml; print(json.dumps(yaml.safe_load(sys.stdin.read())))'], {
        input: userData,
        encoding: 'utf8',
        timeout: 30_000,
      }),
    ) as { write_files: Array<{ path: string; content: string }> };
    const file = (path: string) => {
      const f = config.write_files.find((w) => w.path === path);
      if (!f) throw new Error(`no ${path} in the user_data`);
      return f.content;
    };
    const token = file('/etc/droplet-mesh/callback-token').trim();
    const callbackUrl = /--data "\$BODY" '([^']+)'/.exec(file('/usr/local/sbin/droplet-mesh-report'))?.[1];
    expect(callbackUrl).toMatch(new RegExp(`/servers/provision/${REPLACEMENT}/ready$`));
    // Serving first: before the replacement exists, both replicas run on the server left.
    await waitFor(
      'the replicas moved to the server left',
      async () => timeline(LOST).some((n) => n.event === 'replicas.moved' && !n.detail.onto),
      60_000,
      200,
    );
    const firstMove = timeline(LOST).find((n) => n.event === 'replicas.moved' && !n.detail.onto)!;
    expect(firstMove.detail.deployments).toEqual([expect.objectContaining({ target_id: target, status: 'succeeded', servers: [A] })]);
    // The machine boots from the snapshot (which holds the image) and runs its fresh user_data.
    const engine = await startNamespacedEngine({
      tls: {
        ca: file('/etc/droplet-mesh/tls/ca.pem'),
        cert: file('/etc/droplet-mesh/tls/server-cert.pem'),
        key: file('/etc/droplet-mesh/tls/server-key.pem'),
      },
    });
    engines.push(engine);
    // The snapshot was taken while the lost server ran the service: it holds the deploy image
    // (without a mesh registry a redeploy finds its image only on a server that has it).
    await copyImages(ea.docker, engine.docker, [(await release()).image]);
    const ready = await fetch(callbackUrl!, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ server_id: REPLACEMENT, engine_port: 2376, address: engine.address }),
    });
    expect(ready.status).toBe(201);
    await waitFor(
      'the services moved onto the replacement',
      async () => timeline(LOST).some((n) => n.event === 'replicas.moved' && n.detail.onto === REPLACEMENT),
      60_000,
      200,
    );
    const after = await release();
    expect(new Set(after.containers.map((c) => c.server_id))).toEqual(new Set([A, REPLACEMENT]));
    expect(await engine.docker.listContainers({ filters: { label: [`mesh.project=${project}`] } })).toHaveLength(1);
    const events = timeline(LOST).map((n) => n.event);
    expect(events).toEqual(expect.arrayContaining(['replicas.moving', 'replacement.provisioning', 'replacement.ready', 'replicas.moved']));
    expect(events.indexOf('replacement.provisioning')).toBeLessThan(events.indexOf('replacement.ready'));
    expect(timeline(LOST).find((n) => n.event === 'replacement.provisioning')!.detail).toMatchObject({
      replacement_id: REPLACEMENT,
      provider: 'hetzner',
      region: 'nbg1',
      size: 'cx22',
      snapshot: { id: String(newest) },
    });
    const moved = timeline(LOST).find((n) => n.event === 'replicas.moved' && n.detail.onto === REPLACEMENT)!;
    expect(moved.detail.deployments).toEqual([
      expect.objectContaining({ target_id: target, status: 'succeeded', servers: expect.arrayContaining([REPLACEMENT]) }),
    ]);
    // The lost server leaves the spread, replaced; the replacement serves its environments.
    expect((await request(droplet.app).get(`/servers/${LOST}`).set(writer)).body).toMatchObject({
      draining: true,
      replaced_by: REPLACEMENT,
    });
    expect((await request(droplet.app).get(`/servers/${REPLACEMENT}`).set(writer)).body).toMatchObject({
      environments: env,
      instance_id: expect.stringMatching(/^hetzner:\d+$/),
    });
  }, 150_000);

  it('a lost server whose instance has no snapshot: the timeline says so and the move stands', async () => {
    const replacement = engines[engines.length - 1];
    const createsBefore = creates.length;
    replacement.kill();
    droplet.ctx.bus.publishJson(INCIDENT_OPENED_SUBJECT, {
      id: 'inc-r',
      target_id: `${SERVER_TARGET_PREFIX}${REPLACEMENT}`,
      status: 'open',
    });
    await waitFor(
      'the replacement failed on the timeline',
      async () => timeline(REPLACEMENT).some((n) => n.event === 'replacement.failed'),
      20_000,
      200,
    );
    expect(timeline(REPLACEMENT).find((n) => n.event === 'replacement.failed')!.detail).toMatchObject({
      reason: expect.stringMatching(/^no snapshot of instance hetzner:\d+ at hetzner$/),
      fallback: 'move',
    });
    await waitFor('the replicas moved', async () => timeline(REPLACEMENT).some((n) => n.event === 'replicas.moved'), 60_000, 200);
    expect((await release()).containers.map((c) => c.server_id)).toEqual([A, A]);
    // Nothing was created at the provider.
    expect(creates.slice(createsBefore).filter((c) => c.path === '/v1/servers')).toEqual([]);
  }, 90_000);
});
