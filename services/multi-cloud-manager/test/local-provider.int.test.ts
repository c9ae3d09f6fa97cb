import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type Docker from 'dockerode';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildImageFromDir, ensureBusyboxImage, ensureDockerEngine } from '@droplet-mesh/docker-testing';
import type { UdcError } from '@droplet-mesh/udc-kit';
import { LocalDockerProvider } from '../src/providers/local/local-provider.js';

const prefix = `mcm-test-${process.pid}`;

describe('local provider against the real Docker Engine', () => {
  let docker: Docker;
  let image: string;
  let provider: LocalDockerProvider;
  const snapshotTags: string[] = [];

  beforeAll(async () => {
    docker = await ensureDockerEngine();
    image = await ensureBusyboxImage(docker);
    provider = new LocalDockerProvider(docker, { network: 'mesh-instances', catalogImages: [image] });
  }, 120_000);

  afterAll(async () => {
    const mine = await docker.listContainers({ all: true, filters: JSON.stringify({ name: [prefix] }) });
    await Promise.all(
      mine.map((c) =>
        docker
          .getContainer(c.Id)
          .remove({ force: true })
          .catch(() => undefined),
      ),
    );
    await Promise.all(
      snapshotTags.map((t) =>
        docker
          .getImage(t)
          .remove({ force: true })
          .catch(() => undefined),
      ),
    );
  });

  const input = (name: string) => ({
    name: `${prefix}-${name}`,
    region: 'local',
    size: 'local-small',
    image,
    tags: ['web'],
    labels: { team: 'ops' },
    command: ['sleep', '3600'],
  });

  it('creates a labelled, running container on the mesh bridge network, unprivileged, with size limits', async () => {
    const { instance, action } = await provider.create(input('a'));
    const info = await docker.getContainer(instance.provider_id).inspect();
    const ip = info.NetworkSettings.Networks['mesh-instances']?.IPAddress;
    expect(ip).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    expect(action).toBeNull();
    expect(instance).toMatchObject({
      provider: 'local',
      name: `${prefix}-a`,
      status: 'running',
      region: 'local',
      size: 'local-small',
      ipv4: ip,
      private_ip: ip,
      managed: true,
      labels: { team: 'ops' },
    });
    expect(instance.tags).toEqual(['droplet-mesh', 'web']);
    expect(info.Config.Labels).toMatchObject({ 'mesh.managed': 'true', 'mesh.provider': 'local' });
    expect(info.HostConfig).toMatchObject({ NetworkMode: 'mesh-instances', CapDrop: ['ALL'], SecurityOpt: ['no-new-privileges:true'] });
    expect(info.Config.User).toBe('65534:65534');
    expect(info.HostConfig.Memory).toBe(256 * 1024 * 1024);
    expect(info.HostConfig.NanoCpus).toBe(1e9);
    const listed = await provider.list();
    expect(listed.find((i) => i.provider_id === instance.provider_id)).toMatchObject({
      status: 'running',
      managed: true,
      tags: ['droplet-mesh', 'web'],
    });
  });

  it('maps power actions to stop, start and restart', async () => {
    const { instance } = await provider.create(input('b'));
    const off = await provider.power(instance.provider_id, 'power_off');
    expect(off.status).toBe('completed');
    expect((await provider.get(instance.provider_id)).status).toBe('off');
    await provider.power(instance.provider_id, 'power_off'); // already off: still fine
    await provider.power(instance.provider_id, 'power_on');
    expect((await provider.get(instance.provider_id)).status).toBe('running');
    await provider.power(instance.provider_id, 'reboot');
    expect((await provider.get(instance.provider_id)).status).toBe('running');
  }, 30_000);

  it('snapshots a container as a local image and lists it', async () => {
    const { instance } = await provider.create(input('c'));
    const r = await provider.createSnapshot(instance.provider_id, 'Snap Of C');
    expect(r.snapshot?.name).toMatch(/^mesh-snapshot\/snap-of-c:\d+$/);
    snapshotTags.push(r.snapshot!.name);
    const all = await provider.snapshots();
    expect(all.find((s) => s.name === r.snapshot!.name)?.resource_id).toBe(instance.provider_id);
  });

  it('creates from any local image only when told the caller may (admin); otherwise from the catalog', async () => {
    const other = 'mesh-test/mcm-provider-other:1';
    await docker.getImage(image).tag({ repo: 'mesh-test/mcm-provider-alias', tag: '1' });
    // Another name for a catalog image is the same image.
    await expect(provider.create({ ...input('g'), image: 'mesh-test/mcm-provider-alias:1' })).resolves.toMatchObject({
      instance: { managed: true },
    });
    const dir = mkdtempSync(join(tmpdir(), 'mcm-provider-other-'));
    try {
      writeFileSync(join(dir, 'Dockerfile'), `FROM ${image}\nLABEL mesh.test=other\n`);
      await buildImageFromDir(docker, dir, other);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    await expect(provider.create({ ...input('h'), image: other })).rejects.toMatchObject({ code: 'FORBIDDEN', httpStatus: 403 });
    await expect(provider.create({ ...input('h'), image: other }, { anyImage: true })).resolves.toMatchObject({
      instance: { managed: true },
    });
    expect((await provider.images()).map((i) => i.slug)).not.toContain(other);
    snapshotTags.push(other, 'mesh-test/mcm-provider-alias:1');
  });

  it('refuses to join a network of that name the mesh did not create', async () => {
    const name = `${prefix}-foreign-net`;
    await docker.createNetwork({ Name: name, Driver: 'bridge' });
    try {
      const p = new LocalDockerProvider(docker, { network: name, catalogImages: [image] });
      await expect(p.create(input('i'))).rejects.toMatchObject({ code: 'CONFLICT' });
    } finally {
      await docker.getNetwork(name).remove();
    }
  });

  it('gives clear 4xx errors for a missing image, a bad size, a duplicate name and an unknown id', async () => {
    const err = async (p: Promise<unknown>) =>
      p.then(
        () => undefined,
        (e: unknown) => e as UdcError,
      );
    expect((await err(provider.create({ ...input('d'), image: 'no-such/image:1' })))?.code).toBe('INVALID_REQUEST');
    expect((await err(provider.create({ ...input('d'), size: 'huge' })))?.code).toBe('INVALID_REQUEST');
    await provider.create(input('e'));
    expect((await err(provider.create(input('e'))))?.code).toBe('CONFLICT');
    const missing = await err(provider.get('0123456789ab-not-there'));
    expect(missing?.code).toBe('NOT_FOUND');
    expect(missing?.httpStatus).toBe(404);
  });

  it('deletes a container', async () => {
    const { instance } = await provider.create(input('f'));
    expect(await provider.delete(instance.provider_id)).toBeNull();
    await expect(provider.get(instance.provider_id)).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('lists sizes, images and the one region, and pings the engine', async () => {
    expect((await provider.sizes()).map((s) => s.slug)).toEqual(['local-small', 'local-medium', 'local-large']);
    expect((await provider.images()).some((i) => i.slug === image)).toBe(true);
    expect(await provider.regions()).toEqual([expect.objectContaining({ slug: 'local' })]);
    await expect(provider.ping()).resolves.toBeUndefined();
  });
});
