import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import { startTestImageRegistry, type TestImageRegistry } from '@droplet-mesh/docker-testing';
import { startNatsServer, startTestAuthority, type NatsServerHandle, type TestAuthority } from '@droplet-mesh/udc-kit/testing';
import type { DeployerDroplet } from '../src/app.js';
import { capture, cleanDocker, testImages, uniqueProject, waitDeployment, type TestImages } from './helpers.js';
import { createProject, startTestDeployer } from './deployer-harness.js';

// Issue 17: a deploy of an image from a private registry (the real docker-registry, htpasswd
// credentials) with pull credentials stored sealed in the deployer per registry host, mesh-wide
// (admin) or per project (tried first, and no other project's deploy may use them).
const project = uniqueProject('pr');
/** A second project, whose deploys must not pull with the first one's credentials. */
const other = uniqueProject('prb');
let nats: NatsServerHandle;
let authority: TestAuthority;
let images: TestImages;
let droplet: DeployerDroplet;
let registry: TestImageRegistry;
let privateImage: string;
let writer: Record<string, string>;
let reader: Record<string, string>;
let admin: Record<string, string>;
const logs = capture();
/** Every response body the test saw: none may carry the password. */
const seen: string[] = [];
const tmp = mkdtempSync(join(tmpdir(), 'deployer-pr-'));

const keep = <T extends { body: unknown; text?: string }>(res: T): T => {
  seen.push(JSON.stringify(res.body) + (res.text ?? ''));
  return res;
};

async function deploy(inProject = project) {
  const res = keep(
    await request(droplet.app)
      .post('/deployments')
      .set(writer)
      .send({ project: inProject, service: 'web', environment: 'prod', source: { image: privateImage } }),
  );
  expect(res.status).toBe(202);
  const done = await waitDeployment(droplet.app, writer, res.body.id, 120_000);
  keep(await request(droplet.app).get(`/deployments/${res.body.id}`).set(writer));
  keep(await request(droplet.app).get(`/deployments/${res.body.id}/events`).set(writer));
  return done;
}

beforeAll(async () => {
  images = await testImages();
  nats = await startNatsServer();
  authority = await startTestAuthority();
  admin = { Authorization: `Bearer ${authority.mint({ scopes: ['read', 'write', 'admin'] })}` };
  writer = { Authorization: `Bearer ${authority.mint({ scopes: ['read', 'write'] })}` };
  reader = { Authorization: `Bearer ${authority.mint({ scopes: ['read'] })}` };
  // A private registry on loopback holding one image, pushed with its credentials; the local
  // engine keeps no copy under that name, so a deploy has to pull it.
  registry = await startTestImageRegistry({ username: 'ci-puller' });
  privateImage = `${registry.host}/private/${project}:v1`;
  const [repo, tag] = [privateImage.slice(0, privateImage.lastIndexOf(':')), 'v1'];
  await images.docker.getImage(images.v1).tag({ repo, tag });
  const pushed = await images.docker.getImage(privateImage).push({ authconfig: registry.auth });
  await new Promise<void>((resolve, reject) =>
    images.docker.modem.followProgress(pushed, (err: Error | null, out: Array<{ error?: string }>) => {
      const failed = err?.message ?? out.find((o) => o.error)?.error;
      return failed ? reject(new Error(failed)) : resolve();
    }),
  );
  await images.docker.getImage(privateImage).remove();
  droplet = await startTestDeployer({
    natsUrl: nats.url,
    authority,
    dataDir: join(tmp, 'data'),
    env: { LOG_LEVEL: 'debug', DRAIN_S: '0', CRASH_RESTART: 'false' },
    logDestination: logs,
  });
  for (const p of [project, other])
    await createProject(droplet.app, writer, p, { services: [{ name: 'web', type: 'web', health_path: '/health' }] });
}, 120_000);

afterAll(async () => {
  await droplet?.deployer.idle();
  await droplet?.stop();
  await authority?.close();
  await nats?.stop();
  await registry?.stop();
  if (images) {
    await cleanDocker(images.docker, project);
    await cleanDocker(images.docker, other);
    await images.docker
      .getImage(privateImage)
      .remove()
      .catch(() => undefined);
  }
  rmSync(tmp, { recursive: true, force: true });
}, 60_000);

describe('pull credentials for private registries', () => {
  it('without credentials the deploy fails at its image step, naming the registry', async () => {
    const d = await deploy();
    expect(d.status).toBe('failed');
    const step = d.steps.find((s) => s.name === 'image');
    expect(step?.status).toBe('failed');
    expect(d.reason).toContain(`from registry ${registry.host} failed`);
    // (Docker's own words vary: a loopback registry is retried over plain HTTP after the 401.)
    expect(d.reason).toContain(
      `no credentials are stored for ${registry.host} in project ${project}: PUT /projects/${project}/registries/${registry.host} (or mesh-wide: PUT /registries/${registry.host})`,
    );
  }, 120_000);

  it('stores credentials per registry host, admin only, listed by host and never returned', async () => {
    const path = `/registries/${registry.host}`;
    const body = { username: registry.username, password: 'a-wrong-password' };
    expect(keep(await request(droplet.app).put(path).set(writer).send(body)).status).toBe(403);
    expect(keep(await request(droplet.app).put('/registries/not a host').set(admin).send(body)).status).toBe(400);
    expect(keep(await request(droplet.app).put(path).set(admin).send({ username: 'x' })).status).toBe(400);
    const put = keep(await request(droplet.app).put(path).set(admin).send(body));
    expect(put.status).toBe(200);
    expect(Object.keys(put.body).sort()).toEqual(['created_at', 'host', 'updated_at']);
    expect(put.body.host).toBe(registry.host);
    const list = keep(await request(droplet.app).get('/registries').set(writer));
    expect(list.status).toBe(200);
    expect(list.body.items).toEqual([expect.objectContaining({ host: registry.host })]);
    expect(JSON.stringify(list.body)).not.toContain(registry.username);
    // Sealed at rest: the bucket holds neither the password nor the username in the clear.
    const raw = await (await droplet.ctx.bus.kv('deployer')).get(
      `registry-credentials.${Buffer.from(registry.host).toString('base64url')}`,
    );
    expect(raw?.string()).toBeTruthy();
    expect(raw!.string()).not.toContain('a-wrong-password');
    expect(raw!.string()).not.toContain(registry.username);
  });

  it('with a wrong password the registry refuses the pull and the deploy fails', async () => {
    const d = await deploy();
    expect(d.status).toBe('failed');
    expect(d.reason).toContain(`from registry ${registry.host} failed`);
    expect(d.reason).toMatch(/unauthorized|authentication required/i);
    expect(d.reason).not.toContain('PUT /registries');
  }, 120_000);

  it('with the right credentials the deploy pulls and runs the private image', async () => {
    const put = keep(
      await request(droplet.app)
        .put(`/registries/${registry.host}`)
        .set(admin)
        .send({ username: registry.username, password: registry.password }),
    );
    expect(put.status).toBe(200);
    const d = await deploy();
    expect(d.status).toBe('succeeded');
    const c = (d.containers as Array<{ address: string; port: number }>)[0];
    const body = await fetch(`http://${c.address}:${c.port}/`, { signal: AbortSignal.timeout(3000) }).then((r) => r.text());
    expect(body.trim()).toBe('version-1');
  }, 120_000);

  it('forgets a registry on DELETE (admin only)', async () => {
    const path = `/registries/${registry.host}`;
    expect((await request(droplet.app).delete(path).set(writer)).status).toBe(403);
    expect((await request(droplet.app).delete(path).set(admin)).status).toBe(204);
    expect((await request(droplet.app).delete(path).set(admin)).status).toBe(404);
    expect((await request(droplet.app).get('/registries').set(writer)).body.items).toEqual([]);
  });

  it("stores a project's credentials with the write scope, listed by host and username, sealed and never returned", async () => {
    const path = `/projects/${project}/registries/${registry.host}`;
    const body = { username: registry.username, password: registry.password };
    expect(keep(await request(droplet.app).put(path).set(reader).send(body)).status).toBe(403);
    expect(keep(await request(droplet.app).put(`/projects/nosuch/registries/${registry.host}`).set(writer).send(body)).status).toBe(404);
    expect(keep(await request(droplet.app).put(`/projects/${project}/registries/not a host`).set(writer).send(body)).status).toBe(400);
    expect(keep(await request(droplet.app).put(path).set(writer).send({ username: 'x' })).status).toBe(400);
    const put = keep(await request(droplet.app).put(path).set(writer).send(body));
    expect(put.status).toBe(200);
    expect(Object.keys(put.body).sort()).toEqual(['created_at', 'host', 'updated_at', 'username']);
    expect(put.body).toMatchObject({ host: registry.host, username: registry.username });
    const list = keep(await request(droplet.app).get(`/projects/${project}/registries`).set(reader));
    expect(list.status).toBe(200);
    expect(list.body.items).toEqual([expect.objectContaining({ host: registry.host, username: registry.username })]);
    expect(keep(await request(droplet.app).get(`/projects/${other}/registries`).set(reader)).body.items).toEqual([]);
    // Not mesh-wide: the admin list stays empty.
    expect(keep(await request(droplet.app).get('/registries').set(reader)).body.items).toEqual([]);
    const raw = await (await droplet.ctx.bus.kv('deployer')).get(
      `project-registry-credentials.${project}.${Buffer.from(registry.host).toString('base64url')}`,
    );
    expect(raw?.string()).toBeTruthy();
    expect(raw!.string()).not.toContain(registry.password);
    expect(raw!.string()).not.toContain(registry.username);
  });

  it("another project's deploy cannot pull with them, even with the image already on the server", async () => {
    // The earlier deploy left the private image on this engine: the other project must still be refused.
    expect(await images.docker.getImage(privateImage).inspect()).toBeTruthy();
    const d = await deploy(other);
    expect(d.status).toBe('failed');
    expect(d.steps.find((s) => s.name === 'image')?.status).toBe('failed');
    expect(d.reason).toContain(`from registry ${registry.host} failed`);
    expect(d.reason).toContain(`PUT /projects/${other}/registries/${registry.host}`);
  }, 120_000);

  it("the project's own deploy pulls with its credentials, tried before the mesh-wide ones, and runs", async () => {
    // Mesh-wide credentials that the registry refuses: the project's own must be the ones used.
    const meshWide = `/registries/${registry.host}`;
    const wrong = { username: registry.username, password: 'a-wrong-password' };
    expect(keep(await request(droplet.app).put(meshWide).set(admin).send(wrong)).status).toBe(200);
    const d = await deploy();
    expect((await request(droplet.app).delete(meshWide).set(admin)).status).toBe(204);
    expect(d.status).toBe('succeeded');
    const events = keep(await request(droplet.app).get(`/deployments/${d.id}/events`).set(writer));
    expect(events.text).toContain("pulling it with this project's access");
  }, 120_000);

  it("forgets a project's registry on DELETE (write scope)", async () => {
    const path = `/projects/${project}/registries/${registry.host}`;
    expect((await request(droplet.app).delete(path).set(reader)).status).toBe(403);
    expect((await request(droplet.app).delete(path).set(writer)).status).toBe(204);
    expect((await request(droplet.app).delete(path).set(writer)).status).toBe(404);
    expect((await request(droplet.app).get(`/projects/${project}/registries`).set(reader)).body.items).toEqual([]);
  });

  it('the password never appears in a response or a log line', async () => {
    expect(seen.length).toBeGreaterThan(8);
    for (const s of seen) {
      expect(s).not.toContain(registry.password);
      expect(s).not.toContain('a-wrong-password');
    }
    const text = logs.text();
    // The logs are real (every request, the deploys' outcomes), and hold no password.
    expect(text).toContain(`/registries/${registry.host}`);
    expect(text).toContain(`/projects/${project}/registries/${registry.host}`);
    expect(text).toContain('deployment finished');
    expect(text).not.toContain(registry.password);
    expect(text).not.toContain('a-wrong-password');
  });
});
