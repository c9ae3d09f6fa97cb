import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server as NetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import { copyImages, namespacedEngineUnavailable, startNamespacedEngine, type NamespacedEngine } from '@droplet-mesh/docker-testing';
import { freePort, startNatsServer, startTestAuthority, type NatsServerHandle, type TestAuthority } from '@droplet-mesh/udc-kit/testing';
import type { DeployerDroplet } from '../src/app.js';
import { createMeshCa, issueCertificate, issuedBy } from '../src/domain/mesh-ca.js';
import { cleanDocker, getViaNginx, testImages, uniqueProject, waitDeployment, type TestImages } from './helpers.js';
import { startProxyManager, type Proc } from './process-helpers.js';
import { createProject, startTestDeployer } from './deployer-harness.js';

// Real servers on one machine: Docker Engines each in its own network namespace, reached
// only over mutual TLS with the mesh CA the deployer holds sealed. Deploys land on them,
// replicas spread over an environment's servers, and nginx upstreams point at every one.
const why = namespacedEngineUnavailable();
const d = why ? describe.skip : describe;
if (why) console.warn(`mesh-servers: skipped (${why})`);

const project = uniqueProject('ms');
const domain = `${project}.mesh.test`;
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
const extras: NamespacedEngine[] = [];
let plain: NetServer | undefined;
const tmp = mkdtempSync(join(tmpdir(), 'deployer-ms-'));

const post = (p: string, b: object, auth = writer) => request(droplet.app).post(p).set(auth).send(b);

/** One GET through nginx for the domain (a fresh connection each time). */
const viaProxy = () => getViaNginx(proxyHttpPort, domain);

/** A namespaced engine whose server certificate the deployer's mesh CA issued for its address. */
async function meshEngine(id: string, withAddress: boolean): Promise<NamespacedEngine> {
  const e = await startNamespacedEngine({
    tls: async (address) => {
      // With its address as a SAN, or only its identity name (as for a machine not created yet).
      const res = await post('/mesh-ca/engine-certificates', { server_id: id, addresses: withAddress ? [address] : [] }, admin);
      if (res.status !== 201) throw new Error(`engine certificate: ${res.status} ${JSON.stringify(res.body)}`);
      return { ca: res.body.ca, cert: res.body.cert, key: res.body.key };
    },
  });
  engines.push(e);
  await copyImages(images.docker, e.docker, [images.v1, images.v2]);
  return e;
}

async function deploy(service: string, image: string) {
  const res = await post('/deployments', { project, service, environment: 'prod', source: { image } });
  expect(res.status).toBe(202);
  return waitDeployment(droplet.app, writer, res.body.id, 150_000);
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
    services: [
      { name: 'single', type: 'web', health_path: '/health' },
      { name: 'web', type: 'web', domain, health_path: '/health', replicas: 3 },
    ],
  });
  for (const id of ['ns1', 'ns2', 'ns3']) await meshEngine(`${project}-${id}`, id === 'ns1');
}, 300_000);

afterAll(async () => {
  await droplet?.deployer.idle();
  await droplet?.stop();
  await proxy?.stop();
  await authority?.close();
  await nats?.stop();
  await Promise.allSettled([...engines, ...extras].map((e) => e.stop()));
  await new Promise<void>((r) => (plain ? plain.close(() => r()) : r()));
  if (images) await cleanDocker(images.docker, project);
  rmSync(tmp, { recursive: true, force: true });
}, 120_000);

d('real servers over mutual TLS with the mesh CA', () => {
  it('the mesh CA signs engine certificates; its key is stored sealed, never in the clear', async () => {
    const ca = await request(droplet.app).get('/mesh-ca').set(writer);
    expect(ca.status).toBe(200);
    expect(ca.body.certificate).toMatch(/BEGIN CERTIFICATE/);
    const issued = await post('/mesh-ca/engine-certificates', { server_id: 'x', addresses: ['10.9.9.9'] }, admin);
    expect(issued.status).toBe(201);
    expect(issuedBy(issued.body.cert, ca.body.certificate)).toBe(true);
    // Only the admin scope gets certificates.
    expect((await post('/mesh-ca/engine-certificates', { server_id: 'x', addresses: ['10.9.9.9'] })).status).toBe(403);
    const kv = await droplet.ctx.bus.kv('deployer');
    const raw = (await kv.get('meshca.current'))!.string();
    expect(raw).not.toMatch(/PRIVATE KEY/);
    expect(JSON.parse(raw).key_sealed.ciphertext).toBeTruthy();
  });

  it('registers a namespaced engine with tls "mesh" and a deploy lands there, not on the host engine', async () => {
    const e = engines[0];
    const id = `${project}-ns1`;
    const res = await post('/servers', { id, docker_host: e.dockerHost, tls: 'mesh', environments: ['prod'] }, admin);
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ id, docker_host: e.dockerHost, address: e.address, tls: true });
    expect(JSON.stringify(res.body)).not.toMatch(/PRIVATE KEY|BEGIN CERT/);
    const placed = await request(droplet.app)
      .put(`/projects/${project}/services/single/placements/prod`)
      .set(writer)
      .send({ servers: [{ server_id: id, replicas: 1 }] });
    expect(placed.status).toBe(200);
    const dep = await deploy('single', images.v1);
    expect(dep.status).toBe('succeeded');
    const containers = dep.containers as Array<{ server_id: string; address: string; port: number; container_id: string }>;
    expect(containers).toHaveLength(1);
    expect(containers[0]).toMatchObject({ server_id: id, address: e.address });
    // The container runs in the namespaced engine, and the host's engine has none of this service.
    const inNs = await e.docker.listContainers({ filters: { label: [`mesh.project=${project}`, 'mesh.service=single'] } });
    expect(inNs.map((c) => c.Id)).toEqual([containers[0].container_id]);
    const onHost = await images.docker.listContainers({
      all: true,
      filters: { label: [`mesh.project=${project}`, 'mesh.service=single'] },
    });
    expect(onHost).toHaveLength(0);
    const body = await fetch(`http://${e.address}:${containers[0].port}/`, { signal: AbortSignal.timeout(3000) }).then((r) => r.text());
    expect(body.trim()).toBe('version-1');
  }, 180_000);

  it('refuses an engine whose certificate is not from the mesh CA', async () => {
    const foreign = await createMeshCa();
    const rogue = await startNamespacedEngine({
      tls: async (address) => {
        const cert = await issueCertificate(foreign, { kind: 'server', commonName: 'rogue', addresses: [address] });
        // It even accepts the deployer's client certificate: the deployer must still refuse it.
        const meshCa = (await request(droplet.app).get('/mesh-ca').set(writer)).body.certificate as string;
        return { ca: meshCa, cert: cert.cert, key: cert.key };
      },
    });
    extras.push(rogue);
    const res = await post('/servers', { id: `${project}-rogue`, docker_host: rogue.dockerHost, tls: 'mesh' }, admin);
    expect(res.status).toBe(422);
    // The TLS handshake itself fails: the engine's certificate does not chain to the mesh CA.
    expect(res.body.error.message).toMatch(
      /could not be used: the connection failed \((UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY|SELF_SIGNED_CERT_IN_CHAIN|DEPTH_ZERO_SELF_SIGNED_CERT)\)/,
    );
    expect((await request(droplet.app).get(`/servers/${project}-rogue`).set(writer)).status).toBe(404);
    // A certificate of the mesh CA naming the engine's address, but issued to another server id: refused
    // (the deployer checks the engine is the server it registers, not only that it sits at that address).
    const misnamed = await startNamespacedEngine({
      tls: async (address) => {
        const res = await post('/mesh-ca/engine-certificates', { server_id: `${project}-other`, addresses: [address] }, admin);
        return { ca: res.body.ca, cert: res.body.cert, key: res.body.key };
      },
    });
    extras.push(misnamed);
    const moved = await post('/servers', { id: `${project}-misnamed`, docker_host: misnamed.dockerHost, tls: 'mesh' }, admin);
    expect(moved.status).toBe(422);
    expect(moved.body.error.message).toMatch(/ERR_TLS_CERT_ALTNAME_INVALID/);
  }, 120_000);

  it('never speaks plain HTTP to a tcp:// engine', async () => {
    let connections = 0;
    plain = createServer((s) => {
      connections++;
      s.destroy();
    });
    const port = await new Promise<number>((r) => plain!.listen(0, '127.0.0.1', () => r((plain!.address() as { port: number }).port)));
    // Without TLS material the API refuses it.
    const res = await post('/servers', { id: `${project}-plain`, docker_host: `tcp://127.0.0.1:${port}` }, admin);
    expect(res.status).toBe(400);
    // A record without TLS (written straight into KV, as an older deployer might have) is not used either.
    await droplet.stores.servers.put([`${project}-plain`], {
      id: `${project}-plain`,
      docker_host: `tcp://127.0.0.1:${port}`,
      address: '127.0.0.1',
      created_at: new Date().toISOString(),
    });
    await request(droplet.app)
      .put(`/projects/${project}/services/single/placements/prod`)
      .set(writer)
      .send({ servers: [{ server_id: `${project}-plain`, replicas: 1 }] })
      .expect(200);
    const dep = await deploy('single', images.v1);
    expect(dep.status).toBe('failed');
    expect(dep.reason).toMatch(/only over mutual TLS/);
    expect(connections).toBe(0);
    await droplet.stores.servers.delete(`${project}-plain`);
    await request(droplet.app)
      .put(`/projects/${project}/services/single/placements/prod`)
      .set(writer)
      .send({ servers: [{ server_id: `${project}-ns1`, replicas: 1 }] })
      .expect(200);
  }, 120_000);

  it("spreads a service's replicas over the environment's servers, one per server, and routes to all of them", async () => {
    for (const [i, e] of engines.entries()) {
      if (i === 0) continue;
      const id = `${project}-ns${i + 1}`;
      const res = await post('/servers', { id, docker_host: e.dockerHost, tls: 'mesh', environments: [`${project}/prod`] }, admin);
      expect(res.status).toBe(201);
    }
    const dep = await deploy('web', images.v1);
    expect(dep.status).toBe('succeeded');
    const containers = dep.containers as Array<{ server_id: string; address: string; port: number }>;
    expect(containers).toHaveLength(3);
    expect(new Set(containers.map((c) => c.server_id)).size).toBe(3);
    expect(new Set(containers.map((c) => c.address))).toEqual(new Set(engines.map((e) => e.address)));
    // proxy-manager's route has every replica as an upstream, and nginx serves through them.
    const route = await request(`http://127.0.0.1:${pmPort}`)
      .get(`/proxies/app-${project}-web-prod`)
      .set({ Authorization: `Bearer ${authority.mint({ scopes: ['read'] })}` });
    expect(route.status).toBe(200);
    const upstreams = (route.body.upstreams as Array<{ host: string; port: number }>).map((u) => `${u.host}:${u.port}`).sort();
    expect(upstreams).toEqual(containers.map((c) => `${c.address}:${c.port}`).sort());
    for (let i = 0; i < 6; i++) expect(await viaProxy()).toEqual({ status: 200, body: 'version-1' });
  }, 240_000);

  it('redeploys across the three servers with no failed request', async () => {
    const results: Array<{ status: number; body: string }> = [];
    let running = true;
    const loops = Array.from({ length: 3 }, async () => {
      while (running) results.push(await viaProxy());
    });
    let dep: Awaited<ReturnType<typeof deploy>>;
    try {
      dep = await deploy('web', images.v2);
      await new Promise((r) => setTimeout(r, 300));
    } finally {
      running = false;
      await Promise.all(loops);
    }
    expect(dep.status).toBe('succeeded');
    expect(new Set((dep.containers as Array<{ server_id: string }>).map((c) => c.server_id)).size).toBe(3);
    const failed = results.filter((r) => r.status !== 200 || !/^version-[12]$/.test(r.body));
    expect(failed).toEqual([]);
    expect(results.length).toBeGreaterThan(10);
    expect(results.at(-1)?.body).toBe('version-2');
    // The old replicas are gone from every server.
    for (const e of engines) {
      const list = await e.docker.listContainers({ all: true, filters: { label: [`mesh.project=${project}`, 'mesh.service=web'] } });
      expect(list).toHaveLength(1);
    }
  }, 300_000);

  it('a server that leaves the environment loses its replica at the next deploy, and the route follows', async () => {
    const leaving = `${project}-ns3`;
    const patched = await request(droplet.app).patch(`/servers/${leaving}`).set(writer).send({ environments: [] });
    expect(patched.status).toBe(200);
    expect(patched.body.environments).toEqual([]);
    const dep = await deploy('web', images.v1);
    expect(dep.status).toBe('succeeded');
    const containers = dep.containers as Array<{ server_id: string; address: string; port: number }>;
    // Three replicas over the two servers left: two on one, one on the other.
    expect(containers).toHaveLength(3);
    expect(new Set(containers.map((c) => c.server_id))).toEqual(new Set([`${project}-ns1`, `${project}-ns2`]));
    const left = await engines[2].docker.listContainers({ all: true, filters: { label: [`mesh.project=${project}`, 'mesh.service=web'] } });
    expect(left).toHaveLength(0);
    const route = await request(`http://127.0.0.1:${pmPort}`)
      .get(`/proxies/app-${project}-web-prod`)
      .set({ Authorization: `Bearer ${authority.mint({ scopes: ['read'] })}` });
    const upstreams = (route.body.upstreams as Array<{ host: string; port: number }>).map((u) => `${u.host}:${u.port}`).sort();
    expect(upstreams).toEqual(containers.map((c) => `${c.address}:${c.port}`).sort());
    expect(upstreams.some((u) => u.startsWith(`${engines[2].address}:`))).toBe(false);
    for (let i = 0; i < 4; i++) expect(await viaProxy()).toEqual({ status: 200, body: 'version-1' });
  }, 240_000);

  it("answers whether a server's engine is reachable over mutual TLS: 200 while it runs, 503 once it is lost", async () => {
    const up = await request(droplet.app).get(`/servers/${project}-ns1/engine`).set(writer);
    expect(up.status).toBe(200);
    expect(up.body).toMatchObject({ server_id: `${project}-ns1`, ok: true });
    expect(up.body.docker_version).toMatch(/^\d+\.\d+/);
    engines[2].kill();
    const started = Date.now();
    const down = await request(droplet.app).get(`/servers/${project}-ns3/engine`).set(writer);
    expect(down.status).toBe(503);
    expect(down.body).toMatchObject({ server_id: `${project}-ns3`, ok: false });
    expect(down.body.error).toMatch(/connection failed|no answer/);
    expect(Date.now() - started).toBeLessThan(10_000);
  }, 60_000);

  it('provisions a server: an identity certificate and a one-time token, registered once the machine reports its engine ready', async () => {
    const id = `${project}-new`;
    expect((await post('/servers/provision', { id })).status).toBe(403);
    const prov = await post('/servers/provision', { id, environments: [`${project}/prod`] }, admin);
    expect(prov.status).toBe(201);
    expect(prov.body).toMatchObject({ server_id: id, engine_port: 2376, callback_path: `/servers/provision/${id}/ready` });
    // Issued before the machine has an address: the certificate names the server's identity only.
    expect(new X509Certificate(prov.body.cert).subjectAltName).toBe(`DNS:${id}.engine.droplet-mesh.internal`);
    const e = await startNamespacedEngine({ tls: { ca: prov.body.ca, cert: prov.body.cert, key: prov.body.key } });
    extras.push(e);
    // What a registry pull would give a real server (the image of an image deploy must be on the server that resolves it).
    await copyImages(images.docker, e.docker, [images.v1, images.v2]);
    const ready = (token: string, body: object) =>
      request(droplet.app)
        .post(prov.body.callback_path)
        .set({ Authorization: `Bearer ${token}` })
        .send(body);
    expect((await ready('x'.repeat(43), { address: e.address })).status).toBe(401);
    // Pointing at another server's engine fails the identity check, and does not spend the token.
    const wrong = await ready(prov.body.callback_token, { address: engines[0].address });
    expect(wrong.status).toBe(422);
    expect(wrong.body.error.message).toMatch(/ERR_TLS_CERT_ALTNAME_INVALID/);
    expect((await request(droplet.app).get(`/servers/provision/${id}`).set(writer)).body.status).toBe('waiting');
    const ok = await ready(prov.body.callback_token, { address: e.address, server_id: id, docker_version: '20.10.24' });
    expect(ok.status).toBe(201);
    expect(ok.body).toMatchObject({
      id,
      docker_host: `tcp://${e.address}:2376`,
      address: e.address,
      tls: true,
      environments: [`${project}/prod`],
    });
    // The token was for one use.
    expect((await ready(prov.body.callback_token, { address: e.address })).status).toBe(409);
    const status = await request(droplet.app).get(`/servers/provision/${id}`).set(writer);
    expect(status.body).toMatchObject({ id, status: 'ready', address: e.address, docker_version: '20.10.24' });
    expect(JSON.stringify(status.body)).not.toMatch(/token/);
    expect((await request(droplet.app).get(`/servers/${id}/engine`).set(writer)).status).toBe(200);
    // A token past its time is refused.
    const late = await post('/servers/provision', { id: `${project}-late`, expires_in_s: 1 }, admin);
    await new Promise((r) => setTimeout(r, 1500));
    const tooLate = await request(droplet.app)
      .post(late.body.callback_path)
      .set({ Authorization: `Bearer ${late.body.callback_token}` })
      .send({ address: e.address });
    expect(tooLate.status).toBe(409);
    expect(tooLate.body.error.message).toMatch(/expired/);
    expect((await request(droplet.app).get(`/servers/provision/${project}-late`).set(writer)).body.status).toBe('expired');
  }, 120_000);

  it('a redeploy after losing a server leaves it out: the replicas run on the servers that answer and the route drops the lost one', async () => {
    const lost = engines[1];
    lost.kill();
    const dep = await deploy('web', images.v2);
    if (dep.status !== 'succeeded') throw new Error(`deploy ${dep.status}: ${dep.reason} ${JSON.stringify(dep.steps)}`);
    const containers = dep.containers as Array<{ server_id: string; address: string; port: number }>;
    expect(containers).toHaveLength(3);
    expect(new Set(containers.map((c) => c.server_id))).toEqual(new Set([`${project}-ns1`, `${project}-new`]));
    // The deployment's log says which server was left out and why.
    expect(JSON.stringify((await droplet.stores.deployments.get(dep.id))?.events)).toContain(
      `server ${project}-ns2 left out: its engine does not answer`,
    );
    const route = await request(`http://127.0.0.1:${pmPort}`)
      .get(`/proxies/app-${project}-web-prod`)
      .set({ Authorization: `Bearer ${authority.mint({ scopes: ['read'] })}` });
    const upstreams = (route.body.upstreams as Array<{ host: string; port: number }>).map((u) => `${u.host}:${u.port}`).sort();
    expect(upstreams).toEqual(containers.map((c) => `${c.address}:${c.port}`).sort());
    expect(upstreams.some((u) => u.startsWith(`${lost.address}:`))).toBe(false);
    for (let i = 0; i < 4; i++) expect(await viaProxy()).toEqual({ status: 200, body: 'version-2' });
  }, 240_000);
});
