import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import {
  copyImages,
  probeRegistry,
  namespacedEngineUnavailable,
  startNamespacedEngine,
  startTestImageRegistry,
  trustTestRegistry,
  type NamespacedEngine,
  type TestImageRegistry,
} from '@droplet-mesh/docker-testing';
import { startNatsServer, startTestAuthority, type NatsServerHandle, type TestAuthority } from '@droplet-mesh/udc-kit/testing';
import type { DeployerDroplet } from '../src/app.js';
import { capture, cleanDocker, testImages, uniqueProject, waitDeployment, type TestImages } from './helpers.js';
import { createProject, startTestDeployer } from './deployer-harness.js';

// The mesh image registry for real: Debian's docker-registry with TLS (its own CA, trusted by
// the engines through certs.d) and htpasswd credentials, serving two Docker Engines that run in
// their own network namespaces. A deploy is built on one server, pushed once, and pulled by
// digest by the other; a rollback pulls the recorded digest again.
const why = namespacedEngineUnavailable();
const d = why ? describe.skip : describe;
if (why) console.warn(`mesh-registry: skipped (${why})`);

const project = uniqueProject('mr');
let nats: NatsServerHandle;
let authority: TestAuthority;
let images: TestImages;
let droplet: DeployerDroplet;
let registry: TestImageRegistry;
let writer: Record<string, string>;
let admin: Record<string, string>;
const logs = capture();
const engines: NamespacedEngine[] = [];
const untrust: Array<() => void> = [];
const tmp = mkdtempSync(join(tmpdir(), 'deployer-mr-'));
const post = (p: string, b: object, auth = writer) => request(droplet.app).post(p).set(auth).send(b);
const serverId = (i: number) => `${project}-s${i + 1}`;

/** Lines of the registry's access log: GETs from one client address of a path (or under it). */
const accessLines = (from: string, path: string) =>
  registry
    .log()
    .split('\n')
    .filter((l) => l.startsWith(`${from} - -`) && l.includes(`"GET ${path}`));

async function deploy(image: string) {
  const res = await post('/deployments', { project, service: 'web', environment: 'prod', source: { image } });
  expect(res.status).toBe(202);
  return waitDeployment(droplet.app, writer, res.body.id, 150_000);
}

beforeAll(async () => {
  if (why) return;
  images = await testImages();
  nats = await startNatsServer();
  authority = await startTestAuthority();
  admin = { Authorization: `Bearer ${authority.mint({ scopes: ['read', 'write', 'admin'] })}` };
  writer = { Authorization: `Bearer ${authority.mint({ scopes: ['read', 'write'] })}` };
  // The engines first: the registry listens on the first one's host-side address (reachable
  // from every namespace through its own veth, never from outside this machine).
  const meshCa = await import('../src/domain/mesh-ca.js');
  const ca = await meshCa.createMeshCa();
  for (let i = 0; i < 2; i++)
    engines.push(
      await startNamespacedEngine({
        tls: async (address) => {
          const cert = await meshCa.issueCertificate(ca, { kind: 'server', commonName: `s${i}`, addresses: [address] });
          return { ca: ca.certPem, cert: cert.cert, key: cert.key };
        },
      }),
    );
  registry = await startTestImageRegistry({ address: engines[0].hostAddress });
  for (const e of engines) untrust.push(trustTestRegistry(e, registry));
  // Only the building server has the base images; the other gets everything from the registry.
  await copyImages(images.docker, engines[0].docker, [images.v1, images.v2]);
  droplet = await startTestDeployer({
    natsUrl: nats.url,
    authority,
    dataDir: join(tmp, 'data'),
    env: {
      LOG_LEVEL: 'info',
      DRAIN_S: '0',
      MESH_REGISTRY: registry.host,
      MESH_REGISTRY_USERNAME: registry.username,
      MESH_REGISTRY_PASSWORD: registry.password,
      CRASH_RESTART: 'false',
    },
    logDestination: logs,
  });
  await createProject(droplet.app, writer, project, { services: [{ name: 'web', type: 'web', health_path: '/health', replicas: 1 }] });
  // The engines are the mesh's servers, reached over mutual TLS (the deployer's own CA is not the test's: tls material given).
  const client = await meshCa.issueCertificate(ca, { kind: 'client', commonName: 'deployer' });
  for (const [i, e] of engines.entries()) {
    const res = await post(
      '/servers',
      { id: serverId(i), docker_host: e.dockerHost, tls: { ca: ca.certPem, cert: client.cert, key: client.key } },
      admin,
    );
    expect(res.status).toBe(201);
  }
  await request(droplet.app)
    .put(`/projects/${project}/services/web/placements/prod`)
    .set(writer)
    .send({
      servers: [
        { server_id: serverId(0), replicas: 1 },
        { server_id: serverId(1), replicas: 1 },
      ],
    })
    .expect(200);
}, 240_000);

afterAll(async () => {
  await droplet?.deployer.idle();
  await droplet?.stop();
  await authority?.close();
  await nats?.stop();
  for (const u of untrust) u();
  await registry?.stop();
  await Promise.allSettled(engines.map((e) => e.stop()));
  if (images) await cleanDocker(images.docker, project);
  rmSync(tmp, { recursive: true, force: true });
}, 120_000);

d('the mesh image registry', () => {
  it('refuses anyone without the password: no credentials, a wrong password (the attack)', async () => {
    expect(await probeRegistry(registry.url, registry.ca)).toBe(401);
    expect(await probeRegistry(registry.url, registry.ca, { username: registry.username, password: `${registry.password}x` })).toBe(401);
    expect(await probeRegistry(registry.url, registry.ca, { username: 'mesh', password: 'mesh' })).toBe(401);
    expect(await probeRegistry(registry.url, registry.ca, { username: registry.username, password: registry.password })).toBe(200);
    // TLS is verified against the registry's CA: another CA's trust fails the handshake.
    const other = await startTestImageRegistry();
    try {
      await expect(probeRegistry(registry.url, other.ca)).rejects.toThrow();
    } finally {
      await other.stop();
    }
  });

  let first: Awaited<ReturnType<typeof deploy>>;
  it('builds once, pushes, and the other server pulls the exact digest', async () => {
    first = await deploy(images.v1);
    expect(first.status).toBe('succeeded');
    const digest = first.digest as string;
    expect(digest).toMatch(new RegExp(`^${registry.host.replace(/\./g, '\\.')}/mesh-apps/${project}-web@sha256:[a-f0-9]{64}$`));
    const steps = first.steps.map((s) => s.name);
    expect(steps).toContain('distribute');
    // The second server holds that digest, pulled from the registry (its access log, by the engine's address).
    const onSecond = await engines[1].docker.getImage(digest).inspect();
    expect(onSecond.RepoDigests).toContain(digest);
    const manifestPath = `/v2/mesh-apps/${project}-web/manifests/${digest.split('@')[1]}`;
    expect(accessLines(engines[1].address, manifestPath).length).toBeGreaterThan(0);
    // ... and runs it: both replicas run the same image id, one on each server.
    const containers = first.containers as Array<{ server_id: string; container_id: string; address: string; port: number }>;
    expect(containers.map((c) => c.server_id).sort()).toEqual([serverId(0), serverId(1)]);
    const ids = await Promise.all(
      containers.map((c) => engines[c.server_id === serverId(0) ? 0 : 1].docker.getContainer(c.container_id).inspect()),
    );
    expect(ids[0].Image).toBe(ids[1].Image);
    expect(ids[0].Image).toBe(onSecond.Id);
    for (const c of containers) {
      const body = await fetch(`http://${c.address}:${c.port}/`, { signal: AbortSignal.timeout(3000) }).then((r) => r.text());
      expect(body.trim()).toBe('version-1');
    }
    expect(logs.text()).not.toContain(registry.password);
  }, 180_000);

  it('a rollback pulls the recorded digest again, even where the image was removed', async () => {
    const second = await deploy(images.v2);
    expect(second.status).toBe('succeeded');
    expect(second.digest).not.toBe(first.digest);
    // The second server loses the first version's image (cleanup, a replaced machine).
    await engines[1].docker.getImage(first.image as string).remove({ force: true });
    await expect(engines[1].docker.getImage(first.digest as string).inspect()).rejects.toThrow();
    // Everything e2 fetches from the service's repository (manifests, blobs). Docker 20.10 may
    // answer a digest's manifest from its content store cache, but the removed layers must come again.
    const repoPath = `/v2/mesh-apps/${project}-web/`;
    const fetchedBefore = accessLines(engines[1].address, repoPath).length;
    const res = await post(`/deployments/${first.id}/rollback`, {});
    expect(res.status).toBe(202);
    const back = await waitDeployment(droplet.app, writer, res.body.id, 150_000);
    expect(back.status).toBe('succeeded');
    expect(back.digest).toBe(first.digest);
    expect((back.source as { image: string }).image).toBe(first.digest);
    expect(accessLines(engines[1].address, repoPath).length).toBeGreaterThan(fetchedBefore);
    const again = await engines[1].docker.getImage(first.digest as string).inspect();
    expect(again.RepoDigests).toContain(first.digest);
    const running = (back.containers as Array<{ server_id: string; container_id: string }>).find((c) => c.server_id === serverId(1))!;
    expect((await engines[1].docker.getContainer(running.container_id).inspect()).Image).toBe(again.Id);
    for (const c of back.containers as Array<{ address: string; port: number }>) {
      const body = await fetch(`http://${c.address}:${c.port}/`, { signal: AbortSignal.timeout(3000) }).then((r) => r.text());
      expect(body.trim()).toBe('version-1');
    }
  }, 240_000);

  it('an engine given a wrong password is refused by the registry', async () => {
    // A tag this engine does not hold (the rollback re-tagged its image): the pull must ask the registry.
    const tagRef = first.image as string;
    expect(tagRef.startsWith(`${registry.host}/`)).toBe(true);
    await expect(engines[1].docker.getImage(tagRef).inspect()).rejects.toThrow();
    const pull = (password: string) =>
      engines[1].docker.pull(tagRef, { authconfig: { ...registry.auth, password } }).then(
        (stream) =>
          new Promise<void>((resolve, reject) =>
            engines[1].docker.modem.followProgress(stream, (err: Error | null, out: Array<{ error?: string }>) => {
              const failed = err?.message ?? out.find((o) => o.error)?.error;
              return failed ? reject(new Error(failed)) : resolve();
            }),
          ),
      );
    await expect(pull('not-the-password')).rejects.toThrow(/unauthorized|authentication required/i);
    await expect(pull(registry.password)).resolves.toBeUndefined();
  }, 60_000);
});
