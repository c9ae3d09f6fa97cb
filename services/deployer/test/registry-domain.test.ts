import { describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { deployerConfigSchema } from '../src/config.js';
import { isDigestRef, registryHostOf, repositoryOf } from '../src/registry/image-ref.js';
import { inMeshRegistry, meshRegistryOf } from '../src/registry/mesh-registry.js';
import { hostKey, registryHostParam } from '../src/registry/registry-credentials.js';

const digest = `sha256:${'a1'.repeat(32)}`;

describe('image references', () => {
  it.each([
    ['busybox', 'docker.io'],
    ['library/busybox:1', 'docker.io'],
    ['index.docker.io/library/busybox', 'docker.io'],
    ['ghcr.io/org/app:v1', 'ghcr.io'],
    ['localhost/app', 'localhost'],
    [`127.0.0.1:5050/mesh-apps/shop-web@${digest}`, '127.0.0.1:5050'],
    ['registry.example.com:443/a/b/c', 'registry.example.com:443'],
  ])('%s pulls from %s', (ref, host) => expect(registryHostOf(ref)).toBe(host));

  it('tells digests from tags and strips either', () => {
    expect(isDigestRef(`r:5000/a@${digest}`)).toBe(true);
    expect(isDigestRef('r:5000/a:deploy_1')).toBe(false);
    expect(isDigestRef('r:5000/a@sha256:short')).toBe(false);
    expect(repositoryOf(`r:5000/a/b@${digest}`)).toBe('r:5000/a/b');
    expect(repositoryOf('r:5000/a/b:deploy_1')).toBe('r:5000/a/b');
    expect(repositoryOf('r:5000/a/b')).toBe('r:5000/a/b');
  });
});

describe('the mesh registry setting', () => {
  const base = { DEPLOYER_MASTER_KEY: randomBytes(32).toString('base64') };
  it('is off unless MESH_REGISTRY is set, and then needs its credentials', () => {
    expect(meshRegistryOf(deployerConfigSchema.parse(base))).toBeUndefined();
    expect(meshRegistryOf(deployerConfigSchema.parse({ ...base, MESH_REGISTRY: '' }))).toBeUndefined();
    expect(meshRegistryOf(deployerConfigSchema.parse({ ...base, MESH_REGISTRY: 'off' }))).toBeUndefined();
    const half = deployerConfigSchema.parse({ ...base, MESH_REGISTRY: '10.0.0.5:5050', MESH_REGISTRY_USERNAME: 'mesh' });
    expect(() => meshRegistryOf(half)).toThrow(/MESH_REGISTRY_PASSWORD is required/);
    const full = meshRegistryOf(
      deployerConfigSchema.parse({ ...base, MESH_REGISTRY: '10.0.0.5:5050', MESH_REGISTRY_USERNAME: 'mesh', MESH_REGISTRY_PASSWORD: 'pw' }),
    );
    expect(full).toEqual({ host: '10.0.0.5:5050', auth: { username: 'mesh', password: 'pw', serveraddress: '10.0.0.5:5050' } });
    expect(inMeshRegistry(full, `10.0.0.5:5050/mesh-apps/a@${digest}`)).toBe(true);
    // Another port or a host that merely starts the same is another registry.
    expect(inMeshRegistry(full, `10.0.0.5:50501/mesh-apps/a@${digest}`)).toBe(false);
    expect(inMeshRegistry(full, `10.0.0.5/mesh-apps/a@${digest}`)).toBe(false);
  });

  it('refuses a MESH_REGISTRY that is not host:port', () => {
    for (const bad of ['https://10.0.0.5:5050', '10.0.0.5:5050/path', 'a b'])
      expect(deployerConfigSchema.safeParse({ ...base, MESH_REGISTRY: bad }).success).toBe(false);
  });
});

describe('registry hosts as credential keys', () => {
  it('accepts host[:port] only, and keys them without dots or colons', () => {
    for (const ok of ['registry.example.com', '10.0.0.5:5000', 'localhost:5050'])
      expect(registryHostParam.safeParse(ok).success).toBe(true);
    for (const bad of ['not a host', 'https://r.example.com', 'r.example.com/path', '-r.example.com', 'r..example.com'])
      expect(registryHostParam.safeParse(bad).success).toBe(false);
    expect(hostKey('10.0.0.5:5000')).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(hostKey('R.Example.com')).toBe(hostKey('r.example.com'));
  });
});
