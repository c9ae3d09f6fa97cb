// Zero trust, finding 2: a `write` token (every droplet holds one) must not reach other
// containers on the engine through the local provider, and finding 3: local instances run
// unprivileged on the mesh's own bridge network. Against the real Docker Engine and NATS.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import type Docker from 'dockerode';
import { buildImageFromDir, ensureBusyboxImage, ensureDockerEngine, probeFrom } from '@droplet-mesh/docker-testing';
import { Bus } from '@droplet-mesh/udc-kit';
import { expectEnvelope, natsAuthHeaders } from '@droplet-mesh/udc-kit/testing';
import { startHarness, type Harness } from './harness.js';

const prefix = `mcm-scope-${process.pid}`;
const SECRET = `droplet-secret-${process.pid}-9c1e`;
const OTHER_IMAGE = 'mesh-test/mcm-not-in-catalog:1';
let h: Harness;
let docker: Docker;
let busybox: string;
let bus: Bus;
/** Containers the mesh did not create here: one like a droplet's, one like a deployed app's. */
let droplet: Docker.ContainerInspectInfo;
let app: Docker.ContainerInspectInfo;

const api = () => request(h.droplet.app);
const WRITE = () => h.auth(['read', 'write']);
const ADMIN = () => h.auth(['read', 'write', 'admin']);

async function foreignContainer(name: string, labels: Record<string, string>): Promise<Docker.ContainerInspectInfo> {
  const c = await docker.createContainer({
    name: `${prefix}-${name}`,
    Image: busybox,
    Cmd: ['sleep', '3600'],
    Env: [`REGISTRY_ADMIN_KEY=${SECRET}`],
    Labels: labels,
  });
  await c.start();
  return c.inspect();
}

async function message(action: string, payload: object, message_type = 'command') {
  const env = JSON.stringify({ source: 'health-monitor', target: 'multi-cloud-manager', message_type, payload: { action, ...payload } });
  // A droplet's token (read, write), as every droplet holds one.
  const headers = natsAuthHeaders(h.authority.mint({ scopes: ['read', 'write'] }));
  return (await bus.nc.request('udc.multi-cloud-manager.message', env, { timeout: 10_000, headers })).json<any>();
}

/** What a TCP connection from this host to 127.0.0.1:port reads within 2 s. */
function hostProbe(port: number): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    const s = connect({ host: '127.0.0.1', port }, () => s.write('GET /health HTTP/1.0\r\n\r\n'));
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

async function snapshotsOf(id: string) {
  return docker.listImages({ filters: JSON.stringify({ label: [`mesh.snapshot.of=${id}`] }) } as Docker.ListImagesOptions);
}

beforeAll(async () => {
  docker = await ensureDockerEngine();
  busybox = await ensureBusyboxImage(docker);
  const dir = mkdtempSync(join(tmpdir(), 'mcm-other-'));
  try {
    writeFileSync(join(dir, 'Dockerfile'), `FROM ${busybox}\nLABEL mesh.test=not-in-catalog\n`);
    await buildImageFromDir(docker, dir, OTHER_IMAGE);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  h = await startHarness({ docker: true, env: { LOCAL_CATALOG_IMAGES: busybox } });
  bus = await Bus.connect({ url: h.nats.url, name: 'mcm-scope-test' });
  droplet = await foreignContainer('droplet', {});
  // Labelled as the deployer labels apps (mesh.managed=true), but not a local-provider instance.
  app = await foreignContainer('app', { 'mesh.managed': 'true', 'mesh.project': 'shop' });
}, 180_000);

afterAll(async () => {
  await bus?.close();
  if (docker) {
    for (const c of await docker.listContainers({ all: true, filters: JSON.stringify({ name: [prefix] }) }))
      await docker
        .getContainer(c.Id)
        .remove({ force: true })
        .catch(() => undefined);
    for (const target of [droplet, app].filter(Boolean))
      for (const i of await snapshotsOf(target.Id))
        await docker
          .getImage(i.Id)
          .remove({ force: true })
          .catch(() => undefined);
  }
  await h?.close();
});

describe('local provider: what a write token may reach', () => {
  it('a write token does not see containers the mesh did not create: lists, searches and gets answer as if they were absent', async () => {
    const ids = [droplet.Id, app.Id];
    const listed = await api().get('/instances?provider=local&per_page=200').set(WRITE());
    expect(listed.status).toBe(200);
    expect(listed.body.items.filter((i: any) => ids.includes(i.provider_id))).toEqual([]);
    const multi = await api().get('/multi/list?provider=local').set(WRITE());
    expect(multi.body.instances.filter((i: any) => ids.includes(i.provider_id))).toEqual([]);
    const search = await api().get(`/multi/search?q=${prefix}`).set(WRITE());
    expect(search.body.instances).toEqual([]);
    for (const ref of [droplet.Id, droplet.Name.slice(1), app.Id, app.Name.slice(1)])
      expectEnvelope(await api().get(`/instances/local/${ref}`).set(WRITE()), 404, 'NOT_FOUND');
    // The same over NATS, where every droplet may send.
    const list = await message('instance.list', { provider: 'local' }, 'query');
    expect(list.result).toBe('success');
    expect(list.data.instances.filter((i: any) => ids.includes(i.provider_id))).toEqual([]);
    expect(await message('instance.get', { provider: 'local', instance_id: droplet.Id }, 'query')).toMatchObject({
      result: 'error',
      error: { code: 'NOT_FOUND' },
    });
  });

  it('a write token cannot reboot, power off, delete or snapshot them (404, even with force), and nothing happens to them', async () => {
    for (const target of [droplet, app]) {
      const id = target.Id;
      for (const body of [{ type: 'reboot' }, { type: 'power_off', force: true }, { type: 'shutdown', force: true }])
        expectEnvelope(await api().post(`/instances/local/${id}/actions`).set(WRITE()).send(body), 404, 'NOT_FOUND');
      expectEnvelope(await api().delete(`/instances/local/${id}?force=true`).set(WRITE()), 404, 'NOT_FOUND');
      expectEnvelope(await api().post(`/instances/local/${id}/snapshots`).set(WRITE()).send({ name: 'loot' }), 404, 'NOT_FOUND');
      expectEnvelope(
        await api().post(`/instances/local/${id}/snapshots`).set(WRITE()).send({ name: 'loot', force: true }),
        404,
        'NOT_FOUND',
      );
      expect(await message('instance.reboot', { provider: 'local', instance_id: id })).toMatchObject({
        result: 'error',
        error: { code: 'NOT_FOUND' },
      });
      const after = await docker.getContainer(id).inspect();
      expect(after.State.Running).toBe(true);
      expect(after.State.StartedAt).toBe(target.State.StartedAt);
      expect(await snapshotsOf(id)).toEqual([]);
    }
  }, 60_000);

  it('admin sees them as unmanaged and acts on them only with force; a forced snapshot does not keep their environment', async () => {
    const listed = await api().get('/instances?provider=local&per_page=200').set(ADMIN());
    expect(listed.body.items.find((i: any) => i.provider_id === droplet.Id)).toMatchObject({ managed: false });
    const got = await api().get(`/instances/local/${droplet.Id}`).set(ADMIN());
    expect(got.status).toBe(200);
    for (const body of [{ type: 'reboot' }, { type: 'power_on' }, { type: 'power_off' }])
      expectEnvelope(await api().post(`/instances/local/${droplet.Id}/actions`).set(ADMIN()).send(body), 409, 'CONFLICT');
    expectEnvelope(await api().post(`/instances/local/${droplet.Id}/snapshots`).set(ADMIN()).send({ name: 'audit' }), 409, 'CONFLICT');
    expect((await docker.getContainer(droplet.Id).inspect()).State.StartedAt).toBe(droplet.State.StartedAt);

    const rebooted = await api().post(`/instances/local/${droplet.Id}/actions`).set(ADMIN()).send({ type: 'reboot', force: true });
    expect(rebooted.status).toBe(200);
    const snap = await api().post(`/instances/local/${droplet.Id}/snapshots`).set(ADMIN()).send({ name: 'audit', force: true });
    expect(snap.status).toBe(201);
    const image = await docker.getImage(snap.body.snapshot.name).inspect();
    expect(JSON.stringify(image.Config.Env)).not.toContain(SECRET);
    // It is no catalog image: a write token cannot start an instance from it.
    expectEnvelope(
      await api()
        .post('/instances')
        .set(WRITE())
        .send({ provider: 'local', name: `${prefix}-from-snap`, region: 'local', size: 'local-small', image: snap.body.snapshot.name }),
      403,
      'FORBIDDEN',
    );
  }, 60_000);
});

describe('local provider: create from the catalog', () => {
  const create = (name: string, image: string) => ({
    provider: 'local',
    name: `${prefix}-${name}`,
    region: 'local',
    size: 'local-small',
    image,
    command: ['sleep', '3600'],
    wait: true,
  });

  it('the catalog lists the configured images, not every image on the engine', async () => {
    const cat = await api().get('/catalog/images?provider=local').set(WRITE());
    expect(cat.status).toBe(200);
    const slugs = cat.body.items.map((i: any) => i.slug);
    expect(slugs).toContain(busybox);
    expect(slugs).not.toContain(OTHER_IMAGE);
  });

  it('a write token creates from a catalog image; any other local image needs admin (403 otherwise)', async () => {
    const refused = await api().post('/instances').set(WRITE()).send(create('other-w', OTHER_IMAGE));
    expectEnvelope(refused, 403, 'FORBIDDEN');
    expect(await docker.listContainers({ all: true, filters: JSON.stringify({ name: [`${prefix}-other-w`] }) })).toEqual([]);
    const ok = await api().post('/instances').set(WRITE()).send(create('cat-w', busybox));
    expect(ok.status).toBe(201);
    expect(ok.body.instance).toMatchObject({ managed: true, status: 'running' });
    const byAdmin = await api().post('/instances').set(ADMIN()).send(create('other-a', OTHER_IMAGE));
    expect(byAdmin.status).toBe(201);
    // What the mesh created stays within reach of a write token.
    const id = ok.body.instance.provider_id;
    expect((await api().get(`/instances/local/${id}`).set(WRITE())).status).toBe(200);
    expect((await api().post(`/instances/local/${id}/actions`).set(WRITE()).send({ type: 'reboot', wait: true })).status).toBe(200);
    const snap = await api().post(`/instances/local/${id}/snapshots`).set(WRITE()).send({ name: 'mine' });
    expect(snap.status).toBe(201);
    // A snapshot of a mesh instance is in the catalog.
    const fromSnap = await api().post('/instances').set(WRITE()).send(create('from-snap', snap.body.snapshot.name));
    expect(fromSnap.status).toBe(201);
    await docker
      .getContainer(fromSnap.body.instance.provider_id)
      .remove({ force: true })
      .catch(() => undefined);
    await docker
      .getImage(snap.body.snapshot.name)
      .remove({ force: true })
      .catch(() => undefined);
  }, 60_000);

  it('an instance runs on the mesh bridge network, unprivileged, and reaches neither NATS nor a droplet on the host loopback', async () => {
    const res = await api().post('/instances').set(WRITE()).send(create('net', busybox));
    expect(res.status).toBe(201);
    const id = res.body.instance.provider_id;
    const info = await docker.getContainer(id).inspect();
    expect(info.HostConfig.NetworkMode).toBe('mesh-instances');
    expect(info.HostConfig.CapDrop).toEqual(['ALL']);
    expect(info.HostConfig.SecurityOpt).toEqual(expect.arrayContaining([expect.stringMatching(/^no-new-privileges/)]));
    expect(info.Config.User).toBe('65534:65534');
    const net = await docker.getNetwork('mesh-instances').inspect();
    expect(net).toMatchObject({ Driver: 'bridge', Labels: { 'mesh.managed': 'true' } });
    const ip = info.NetworkSettings.Networks['mesh-instances'].IPAddress;
    expect(res.body.instance).toMatchObject({ ipv4: ip, private_ip: ip });

    const natsPort = Number(new URL(h.nats.url).port);
    // Both answer on the host itself; from the instance, neither at loopback nor at the host's bridge address.
    expect(await hostProbe(natsPort)).toContain('INFO');
    expect(await hostProbe(h.port)).toContain('HTTP/1.1');
    const gateway = net.IPAM?.Config?.[0]?.Gateway;
    for (const port of [natsPort, h.port]) {
      for (const host of ['127.0.0.1', gateway].filter(Boolean) as string[]) expect(await probeFrom(docker, id, host, port)).toBe('');
    }
  }, 60_000);
});
