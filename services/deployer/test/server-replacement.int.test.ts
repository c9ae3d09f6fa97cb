import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
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
import { cleanDocker, getViaNginx, testImages, uniqueProject, waitDeployment, type TestImages } from './helpers.js';
import { startProxyManager, type Proc } from './process-helpers.js';
import { createProject, startTestDeployer } from './deployer-harness.js';

// A server lost or drained: its replicas move to the environment's other servers. Three real
// engines (each dockerd in its own network namespace, mutual TLS with the mesh CA), a web
// service with 3 replicas behind nginx. health-monitor's side (an engine declared down opens
// one incident, `incident.opened` for `server-engine-<id>`) is tested in health-monitor; here
// that event is published as health-monitor publishes it.
const why = namespacedEngineUnavailable();
const d = why ? describe.skip : describe;
if (why) console.warn(`server-replacement: skipped (${why})`);

const project = uniqueProject('rp');
const domain = `${project}.mesh.test`;
const target = `app-${project}-web-prod`;
let nats: NatsServerHandle;
let authority: TestAuthority;
let images: TestImages;
let proxy: Proc | undefined;
let droplet: DeployerDroplet;
let pmPort: number;
let proxyHttpPort: number;
let admin: Record<string, string>;
let writer: Record<string, string>;
const engines: NamespacedEngine[] = [];
const ids = ['a', 'b', 'c'].map((x) => `${project}-${x}`);
const tmp = mkdtempSync(join(tmpdir(), 'deployer-rp-'));

const post = (p: string, b: object, auth = writer) => request(droplet.app).post(p).set(auth).send(b);

const viaProxy = () => getViaNginx(proxyHttpPort, domain);

const release = async () =>
  (await request(droplet.app).get(`/services/${target}`).set(writer)).body as {
    deployment_id: string;
    containers: Array<{ server_id: string; address: string; port: number }>;
  };

async function upstreams(): Promise<string[]> {
  const route = await request(`http://127.0.0.1:${pmPort}`)
    .get(`/proxies/${target}`)
    .set({ Authorization: `Bearer ${authority.mint({ scopes: ['read'] })}` });
  return (route.body.upstreams as Array<{ host: string; port: number }>).map((u) => `${u.host}:${u.port}`).sort();
}

beforeAll(async () => {
  if (why) return;
  images = await testImages();
  nats = await startNatsServer();
  authority = await startTestAuthority();
  pmPort = await freePort();
  proxyHttpPort = await freePort();
  proxy = await startProxyManager({
    port: pmPort,
    httpPort: proxyHttpPort,
    httpsPort: await freePort(),
    natsUrl: nats.url,
    dataDir: join(tmp, 'proxy'),
    env: { ...authority.env() },
  });
  droplet = await startTestDeployer({ natsUrl: nats.url, authority, dataDir: join(tmp, 'data') });
  writer = { Authorization: `Bearer ${authority.mint({ scopes: ['read', 'write'] })}` };
  admin = { Authorization: `Bearer ${authority.mint({ scopes: ['read', 'write', 'admin'] })}` };
  await createProject(droplet.app, writer, project, {
    services: [{ name: 'web', type: 'web', domain, health_path: '/health', replicas: 3 }],
  });
  // The three engines start together (each is slow to start; one set for the whole file).
  engines.push(
    ...(await Promise.all(
      ids.map((id) =>
        startNamespacedEngine({
          tls: async (address) => {
            const res = await post('/mesh-ca/engine-certificates', { server_id: id, addresses: [address] }, admin);
            return { ca: res.body.ca, cert: res.body.cert, key: res.body.key };
          },
        }),
      ),
    )),
  );
  for (const [i, e] of engines.entries()) {
    await copyImages(images.docker, e.docker, [images.v1]);
    const res = await post('/servers', { id: ids[i], docker_host: e.dockerHost, tls: 'mesh', environments: [`${project}/prod`] }, admin);
    expect(res.status).toBe(201);
  }
  const dep = await post('/deployments', { project, service: 'web', environment: 'prod', source: { image: images.v1 } });
  expect((await waitDeployment(droplet.app, writer, dep.body.id, 150_000)).status).toBe('succeeded');
}, 300_000);

afterAll(async () => {
  await droplet?.deployer.idle();
  await droplet?.stop();
  await proxy?.stop();
  await authority?.close();
  await nats?.stop();
  await Promise.allSettled(engines.map((e) => e.stop()));
  if (images) await cleanDocker(images.docker, project);
  rmSync(tmp, { recursive: true, force: true });
}, 120_000);

d('moving replicas off a server', () => {
  it('a server declared down: its replica runs again on the two left within 60 s, the route drops it, nginx keeps serving', async () => {
    const before = await release();
    expect(new Set(before.containers.map((c) => c.server_id))).toEqual(new Set(ids));
    const results: Array<{ status: number; body: string }> = [];
    let running = true;
    const loop = (async () => {
      while (running) {
        results.push(await viaProxy());
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const lost = engines[2];
    const started = Date.now();
    try {
      lost.kill();
      // What health-monitor publishes once its quorum declares the engine down (once per incident).
      droplet.ctx.bus.publishJson(INCIDENT_OPENED_SUBJECT, { id: 'inc-1', target_id: `${SERVER_TARGET_PREFIX}${ids[2]}`, status: 'open' });
      await waitFor(
        'three replicas on the two servers left',
        async () => {
          const r = await release();
          return r.deployment_id !== before.deployment_id && r.containers.length === 3 && r.containers.every((c) => c.server_id !== ids[2]);
        },
        60_000,
        250,
      );
    } finally {
      running = false;
      await loop;
    }
    const moved = Date.now() - started;
    expect(moved).toBeLessThan(60_000);
    const after = await release();
    expect(new Set(after.containers.map((c) => c.server_id))).toEqual(new Set(ids.slice(0, 2)));
    expect((await upstreams()).some((u) => u.startsWith(`${lost.address}:`))).toBe(false);
    expect(await upstreams()).toEqual(after.containers.map((c) => `${c.address}:${c.port}`).sort());
    // nginx passed over the dead upstream: no request failed while the replicas moved.
    expect(results.length).toBeGreaterThan(10);
    expect(results.filter((r) => r.status !== 200 || r.body !== 'version-1')).toEqual([]);
    // The move is one deploy, asked for by health-monitor's event.
    const dep = (await request(droplet.app).get(`/deployments/${after.deployment_id}`).set(writer)).body;
    expect(dep.requested_by).toBe('health-monitor');
    // The same incident told again (another replica, a repeated event) moves nothing more.
    droplet.ctx.bus.publishJson(INCIDENT_OPENED_SUBJECT, { id: 'inc-1', target_id: `${SERVER_TARGET_PREFIX}${ids[2]}`, status: 'open' });
    await new Promise((r) => setTimeout(r, 1500));
    expect((await release()).deployment_id).toBe(after.deployment_id);
  }, 120_000);

  it('drain moves every replica off a server (its redeploy places nothing there); removing a server that runs services drains it first, then removes it', async () => {
    const res = await post(`/servers/${ids[1]}/drain`, {});
    expect(res.status).toBe(202);
    expect(res.body.server).toMatchObject({ id: ids[1], draining: true });
    // One deployment per service with a replica there.
    expect(res.body.moves).toEqual([{ target_id: target, deployment_id: expect.any(String) }]);
    const moved = await waitDeployment(droplet.app, writer, res.body.moves[0].deployment_id, 120_000);
    expect(moved.status).toBe('succeeded');
    expect((moved.containers as Array<{ server_id: string }>).map((c) => c.server_id)).toEqual([ids[0], ids[0], ids[0]]);
    expect(await engines[1].docker.listContainers({ all: true, filters: { label: [`mesh.project=${project}`] } })).toHaveLength(0);
    for (let i = 0; i < 4; i++) expect(await viaProxy()).toEqual({ status: 200, body: 'version-1' });
    // Taken back: it takes replicas at the next deploy again; nothing moves now.
    const back = await post(`/servers/${ids[1]}/drain`, { draining: false });
    expect(back.status).toBe(202);
    expect(back.body.server.draining).toBeUndefined();
    expect(back.body.moves).toEqual([]);
    // Spread over both again (each holds the image now), then removing one that runs services
    // drains it first (its replicas onto the server left), then removes it.
    const again = await post('/deployments', { project, service: 'web', environment: 'prod', source: { image: images.v1 } });
    expect((await waitDeployment(droplet.app, writer, again.body.id, 120_000)).status).toBe('succeeded');
    expect(new Set((await release()).containers.map((c) => c.server_id))).toEqual(new Set([ids[0], ids[1]]));
    const removing = await request(droplet.app).delete(`/servers/${ids[0]}`).set(writer);
    expect(removing.status).toBe(202);
    expect(removing.body.server).toMatchObject({ id: ids[0], draining: true, removal: { status: 'draining' } });
    expect(removing.body.moves).toEqual([{ target_id: target, deployment_id: expect.any(String) }]);
    const during = (await request(droplet.app).get(`/servers/${ids[0]}`).set(writer)).body;
    expect(during.removal?.status ?? 'removed').toMatch(/draining|removed/);
    const off = await waitDeployment(droplet.app, writer, removing.body.moves[0].deployment_id, 120_000);
    expect({ status: off.status, reason: off.reason }).toEqual({ status: 'succeeded', reason: undefined });
    expect((off.containers as Array<{ server_id: string }>).map((c) => c.server_id)).toEqual([ids[1], ids[1], ids[1]]);
    await waitFor(
      'the drained server removed',
      async () => (await request(droplet.app).get(`/servers/${ids[0]}`).set(writer)).status === 404,
      15_000,
      200,
    );
    expect(await engines[0].docker.listContainers({ all: true, filters: { label: [`mesh.project=${project}`] } })).toHaveLength(0);
    for (let i = 0; i < 4; i++) expect(await viaProxy()).toEqual({ status: 200, body: 'version-1' });
    // A server running nothing (the lost one, its replica moved) goes at once.
    expect((await request(droplet.app).delete(`/servers/${ids[2]}`).set(writer)).status).toBe(204);
  }, 240_000);
});
