// Zero trust, finding 3: a deployed app runs on the mesh's own bridge network with its port
// published on loopback only, without capabilities or privilege escalation, as a non-root
// user; from inside it neither NATS nor a droplet on the host's loopback answers. The real
// deployer deploys onto the real Docker Engine; nginx and the health wait keep reaching the
// app at 127.0.0.1:<published port>.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import type Docker from 'dockerode';
import { buildImageFromDir, probeFrom } from '@droplet-mesh/docker-testing';
import { startNatsServer, startTestAuthority, type NatsServerHandle, type TestAuthority } from '@droplet-mesh/udc-kit/testing';
import type { DeployerDroplet } from '../src/app.js';
import { DockerEngine } from '../src/engine/container-engine.js';
import { appBindAddress } from '../src/engine/engine-pool.js';
import { cleanDocker, httpText, testImages, uniqueProject, waitDeployment, type TestImages } from './helpers.js';
import { createProject, startTestDeployer } from './deployer-harness.js';

const project = uniqueProject('iso');
let nats: NatsServerHandle;
let authority: TestAuthority;
let droplet: DeployerDroplet;
let dropletPort: number;
let images: TestImages;
let auth: Record<string, string>;
const tmp = mkdtempSync(join(tmpdir(), 'deployer-iso-'));
const extra: string[] = [];

/** What a TCP connection from this host to host:port reads within 2 s ('' when nothing answers). */
function hostProbe(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    const s = connect({ host, port }, () => s.write('GET /health HTTP/1.0\r\n\r\n'));
    const done = () => (s.destroy(), resolve(text));
    s.setTimeout(2000, done);
    s.on('data', (c) => {
      text += String(c);
      if (text.length > 4) done();
    });
    s.on('error', done);
    s.on('end', done);
  });
}

async function serving(): Promise<{ port: number; address: string; container_id: string }> {
  const r = await request(droplet.app).get(`/services/app-${project}-web-prod`).set(auth);
  expect(r.status).toBe(200);
  return r.body.containers[0];
}

beforeAll(async () => {
  images = await testImages();
  nats = await startNatsServer();
  authority = await startTestAuthority();
  const started = await startTestDeployer({
    natsUrl: nats.url,
    authority,
    dataDir: join(tmp, 'data'),
    env: { LOG_LEVEL: undefined, DRAIN_S: '0' },
    registry: 'none',
  });
  droplet = started;
  dropletPort = started.listening.port;
  auth = { Authorization: `Bearer ${authority.mint({ scopes: ['read', 'write'] })}` };
  const post = (p: string, body: object) => request(droplet.app).post(p).set(auth).send(body);
  await createProject(droplet.app, auth, project, { services: [{ name: 'web', type: 'web', health_path: '/health' }] });
  const res = await post('/deployments', { project, service: 'web', environment: 'prod', source: { image: images.v1 } });
  expect(res.status).toBe(202);
  const d = await waitDeployment(droplet.app, auth, res.body.id);
  expect(d.status).toBe('succeeded');
}, 180_000);

afterAll(async () => {
  await droplet?.deployer.idle();
  await droplet?.stop();
  await authority?.close();
  await nats?.stop({ removeStore: true });
  if (images) {
    await cleanDocker(images.docker, project);
    for (const t of extra)
      await images.docker
        .getImage(t)
        .remove({ force: true })
        .catch(() => undefined);
  }
  rmSync(tmp, { recursive: true, force: true });
}, 60_000);

describe('a deployed app is confined', () => {
  it('answers at 127.0.0.1:<published port> (what nginx and the health wait use), and on no other host address', async () => {
    const c = await serving();
    expect(c.address).toBe('127.0.0.1');
    expect(await httpText(`http://127.0.0.1:${c.port}/`)).toBe('version-1');
    const others = Object.values(networkInterfaces())
      .flat()
      .filter((a) => a && a.family === 'IPv4' && !a.internal)
      .map((a) => a!.address);
    expect(others.length).toBeGreaterThan(0);
    for (const ip of others) expect(await hostProbe(ip, c.port)).toBe('');
  });

  it('runs on the mesh bridge network with its port on loopback, no capabilities, no-new-privileges, as nobody', async () => {
    const c = await serving();
    const info = await images.docker.getContainer(c.container_id).inspect();
    expect(info.HostConfig.NetworkMode).toBe('mesh-apps');
    expect(info.HostConfig.PortBindings).toEqual({ [`${c.port}/tcp`]: [{ HostIp: '127.0.0.1', HostPort: String(c.port) }] });
    expect(info.HostConfig.CapDrop).toEqual(['ALL']);
    expect(info.HostConfig.CapAdd ?? []).toEqual([]);
    expect(info.HostConfig.SecurityOpt).toEqual(['no-new-privileges:true']);
    expect(info.HostConfig.Privileged).toBe(false);
    expect(info.Config.User).toBe('65534:65534');
    const net = await images.docker.getNetwork('mesh-apps').inspect();
    expect(net).toMatchObject({ Driver: 'bridge', Labels: { 'mesh.managed': 'true' } });
  });

  it('from inside the app, neither NATS nor a droplet on the host loopback answers (nor at the host’s bridge address)', async () => {
    const c = await serving();
    const natsPort = Number(new URL(nats.url).port);
    // Both answer on the host itself: the probes below are meaningful.
    expect(await hostProbe('127.0.0.1', natsPort)).toContain('INFO');
    expect(await hostProbe('127.0.0.1', dropletPort)).toContain('HTTP/1.1');
    for (const port of [natsPort, dropletPort]) expect(await probeFrom(images.docker, c.container_id, '127.0.0.1', port)).toBe('');
    const net = await images.docker.getNetwork('mesh-apps').inspect();
    const gateway = net.IPAM?.Config?.[0]?.Gateway;
    expect(gateway).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    for (const port of [natsPort, dropletPort]) expect(await probeFrom(images.docker, c.container_id, gateway!, port)).toBe('');
    // The app itself is up inside (the probe works): its own port answers there.
    expect(await probeFrom(images.docker, c.container_id, '127.0.0.1', c.port)).toContain('HTTP/1.');
  }, 60_000);
});

describe('the engine', () => {
  const labels = { 'mesh.managed': 'true', 'mesh.project': project };
  const engine = () => new DockerEngine(images.docker, { network: 'mesh-apps', bindAddress: async () => '127.0.0.1' });

  async function imageWithUser(tag: string, user: string): Promise<string> {
    const dir = mkdtempSync(join(tmpdir(), 'deployer-user-'));
    try {
      writeFileSync(join(dir, 'Dockerfile'), `FROM ${images.busybox}\nUSER ${user}\n`);
      await buildImageFromDir(images.docker, dir, tag);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    extra.push(tag);
    return tag;
  }

  it("keeps an image's own non-root user; an image that says USER root keeps only a web server's capabilities", async () => {
    const node = await imageWithUser(`mesh-test/${project}-user:node`, 'node');
    const root = await imageWithUser(`mesh-test/${project}-user:root`, 'root');
    const a = await engine().run({ name: `${project}-user-node`, image: node, env: {}, labels, cmd: ['sleep', '60'] });
    const b = await engine().run({ name: `${project}-user-root`, image: root, env: {}, labels, cmd: ['sleep', '60'] });
    const ia = await images.docker.getContainer(a).inspect();
    const ib = await images.docker.getContainer(b).inspect();
    expect(ia.Config.User).toBe('node');
    expect(ia.HostConfig.CapAdd ?? []).toEqual([]);
    expect(ib.Config.User).toBe('root');
    expect(ib.HostConfig.CapAdd).toEqual(['CHOWN', 'SETUID', 'SETGID', 'NET_BIND_SERVICE']);
    for (const i of [ia, ib]) expect(i.HostConfig).toMatchObject({ NetworkMode: 'mesh-apps', CapDrop: ['ALL'] });
  }, 60_000);

  it('refuses to run apps on a network of that name the mesh did not create', async () => {
    const name = `${project}-foreign`;
    await images.docker.createNetwork({ Name: name, Driver: 'bridge' });
    try {
      const e = new DockerEngine(images.docker, { network: name, bindAddress: async () => '127.0.0.1' });
      await expect(e.run({ name: `${project}-foreign-net`, image: images.v1, env: { PORT: '1' }, labels })).rejects.toThrow(
        /not created by the mesh/,
      );
    } finally {
      await images.docker.getNetwork(name).remove();
    }
  });

  // dockerd 20.10 checks for a duplicate name before creating, not atomically: replicas
  // started at once on a fresh engine each created the network, and every later start
  // failed with "network mesh-apps is ambiguous" (seen on a newly provisioned server).
  const networksNamed = async (name: string) =>
    (await images.docker.listNetworks({ filters: { name: [name] } })).filter((n) => n.Name === name);
  const meshNetwork = (name: string) => ({ Name: name, Driver: 'bridge', Labels: { 'mesh.managed': 'true', 'mesh.network': 'apps' } });
  const sleeper = (name: string) => ({ name, image: images.busybox, env: {}, labels, cmd: ['sleep', '60'] });
  const engineOn = (network: string, docker: Docker = images.docker) =>
    new DockerEngine(docker, { network, bindAddress: async () => '127.0.0.1' });

  /** `test` with the test's own app network `name`: after it the name means exactly one network; then the test's containers and networks go. */
  async function onOwnNetwork(name: string, test: () => Promise<void>): Promise<void> {
    try {
      await test();
      expect(await networksNamed(name)).toHaveLength(1);
    } finally {
      await cleanDocker(images.docker, project);
      for (const n of await networksNamed(name))
        await images.docker
          .getNetwork(n.Id)
          .remove()
          .catch(() => undefined);
    }
  }

  it('replicas started at once on an engine without the network create it once', async () => {
    const name = `${project}-fresh`;
    await onOwnNetwork(name, async () => {
      const e = engineOn(name);
      const ids = await Promise.all([1, 2, 3, 4].map((i) => e.run(sleeper(`${name}-${i}`))));
      expect(ids).toHaveLength(4);
    });
  }, 60_000);

  it('a duplicate of the network (two processes created it at once) is collapsed to one, and apps start on it', async () => {
    const name = `${project}-dup`;
    await onOwnNetwork(name, async () => {
      await images.docker.createNetwork(meshNetwork(name));
      await images.docker.createNetwork(meshNetwork(name));
      const id = await engineOn(name).run(sleeper(`${name}-1`));
      expect((await images.docker.getContainer(id).inspect()).HostConfig.NetworkMode).toBe(name);
    });
  }, 60_000);

  it('a duplicate made by another process between the check and the create is collapsed, and the create retried', async () => {
    const name = `${project}-late`;
    await onOwnNetwork(name, async () => {
      await images.docker.createNetwork(meshNetwork(name));
      // The real engine, except that its first container create is preceded by another process's create of the network.
      const racing = Object.create(images.docker) as Docker;
      let raced = false;
      racing.createContainer = async (opts) => {
        if (!raced) {
          raced = true;
          await images.docker.createNetwork(meshNetwork(name));
        }
        return images.docker.createContainer(opts);
      };
      const id = await engineOn(name, racing).run(sleeper(`${name}-1`));
      expect(raced).toBe(true);
      expect((await images.docker.getContainer(id).inspect()).State.Running).toBe(true);
    });
  }, 60_000);

  it('publishes on the configured bind address, else on the address the mesh reaches the server at', async () => {
    expect(await appBindAddress(undefined, '127.0.0.1')).toBe('127.0.0.1');
    expect(await appBindAddress(undefined, 'localhost')).toBe('127.0.0.1');
    expect(await appBindAddress(undefined, '203.0.113.7')).toBe('203.0.113.7');
    expect(await appBindAddress('10.1.2.3', '127.0.0.1')).toBe('10.1.2.3');
    await expect(appBindAddress(undefined, 'no-such-host.invalid')).rejects.toThrow(/no-such-host.invalid/);
  });
});
