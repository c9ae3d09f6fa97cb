import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDeployerDroplet } from '@droplet-mesh/deployer/dist/app.js';
import { buildImageFromDir, ensureBusyboxImage, ensureDockerEngine } from '@droplet-mesh/docker-testing';
import { startNatsServer, waitFor, type NatsServerHandle } from '@droplet-mesh/udc-kit/testing';
import { expectNoStack, quiet, runCli, scratchHome } from './support/cli.js';
import { ADMIN_KEY, startProxyManager, startRegistry } from './support/mesh.js';

// Mesh A (NATS, registry, proxy-manager with its nginx, deployer on Docker) gets a route, a
// secret and a deployment; `meshctl backup` writes it to an encrypted file; mesh B, on a new
// NATS with the same admin and master keys, gets it back with `meshctl restore` and serves
// the same route through its own nginx, with history, secrets and A's signing keys.

type Docker = Awaited<ReturnType<typeof ensureDockerEngine>>;
const project = `bk${randomBytes(3).toString('hex')}`;
const tmp = mkdtempSync(join(tmpdir(), 'meshctl-backup-'));
const masterKey = randomBytes(32).toString('base64');
const passFile = join(tmp, 'passphrase');
const backupFile = join(tmp, 'mesh.backup');
const home = scratchHome();
const env = () => ({ HOME: home.home, MESHCTL_CONFIG: home.config });

interface Mesh {
  nats: NatsServerHandle;
  reg: Awaited<ReturnType<typeof startRegistry>>;
  proxy: Awaited<ReturnType<typeof startProxyManager>>;
  deployer: Awaited<ReturnType<typeof createDeployerDroplet>>;
  deployerUrl: string;
  stop(): Promise<void>;
}

let docker: Docker;
let image: string;
let upstream: Server;
let upstreamPort: number;
let a: Mesh | undefined;
let b: Mesh | undefined;

async function startMesh(name: string): Promise<Mesh> {
  const nats = await startNatsServer();
  const reg = await startRegistry(nats.url);
  const proxy = await startProxyManager(nats.url, reg.url);
  const lo = 30000 + Math.floor(Math.random() * 150) * 200;
  const deployer = await createDeployerDroplet({
    env: {
      PORT: '0',
      NATS_URL: nats.url,
      LOG_LEVEL: 'info',
      DEPLOYER_MASTER_KEY: masterKey,
      DEPLOY_PORT_RANGE: `${lo}-${lo + 199}`,
      DRAIN_S: '0',
      HEALTH_TIMEOUT_S: '4',
      CRASH_RESTART: 'false',
      DATA_DIR: join(tmp, `${name}-deployer`),
      REGISTRY_URL: reg.url,
      REGISTRY_KEY: ADMIN_KEY,
      JWKS_URL: `${reg.url}/.well-known/jwks.json`,
    },
    logDestination: quiet(),
  });
  const deployerUrl = (await deployer.start()).url;
  const login = await runCli(['login', '--registry', reg.url, '--admin-key', ADMIN_KEY], env());
  if (login.code !== 0) throw new Error(`login failed: ${login.stderr}`);
  const token = JSON.parse(readFileSync(home.config, 'utf8')).token as string;
  for (const id of ['proxy-manager', 'deployer'])
    await waitFor(
      `${id} in the registry`,
      async () => (await fetch(`${reg.url}/droplets/${id}`, { headers: { authorization: `Bearer ${token}` } })).ok,
      15_000,
    );
  return {
    nats,
    reg,
    proxy,
    deployer,
    deployerUrl,
    async stop() {
      await deployer.deployer.idle();
      await deployer.stop();
      await proxy.close();
      await reg.droplet.stop();
      await nats.stop({ removeStore: true });
    },
  };
}

function viaNginx(port: number, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', headers: { host }, timeout: 5000 }, (res) => {
      let body = '';
      res.on('data', (d) => (body += String(d)));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function api(m: Mesh, method: string, path: string, body?: unknown, token = meshToken()): Promise<{ status: number; json: unknown }> {
  const res = await fetch(`${m.deployerUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: res.status, json: res.status === 204 ? undefined : await res.json() };
}
const meshToken = () => JSON.parse(readFileSync(home.config, 'utf8')).token as string;

beforeAll(async () => {
  docker = await ensureDockerEngine();
  const busybox = await ensureBusyboxImage(docker);
  const site = join(tmp, 'site');
  mkdirSync(join(site, 'www'), { recursive: true });
  writeFileSync(join(site, 'www', 'health'), 'ok');
  writeFileSync(
    join(site, 'Dockerfile'),
    `FROM ${busybox}\nCOPY www /www\nCMD ["/bin/sh", "-c", "exec httpd -f -p 0.0.0.0:$PORT -h /www"]\n`,
  );
  image = `mesh-test/${project}:v1`;
  await buildImageFromDir(docker, site, image);
  upstream = createServer((req, res) => res.end(req.url === '/health' ? 'ok' : 'hello from the restored shop'));
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', () => r()));
  upstreamPort = (upstream.address() as AddressInfo).port;
  writeFileSync(passFile, 'correct horse battery staple\n', { mode: 0o600 });
  a = await startMesh('a');
}, 120_000);

afterAll(async () => {
  await a?.stop().catch(() => undefined);
  await b?.stop().catch(() => undefined);
  await new Promise((r) => upstream?.close(r));
  if (docker)
    for (const c of await docker.listContainers({ all: true, filters: { label: [`mesh.project=${project}`] } }))
      await docker
        .getContainer(c.Id)
        .remove({ force: true })
        .catch(() => undefined);
  if (image)
    await docker
      .getImage(image)
      .remove({ force: true })
      .catch(() => undefined);
  rmSync(tmp, { recursive: true, force: true });
  home.remove();
}, 60_000);

describe('meshctl backup and restore', () => {
  let deploymentId: string;
  let tokenFromA: string;

  it('backs up mesh A (a route, a secret, a deployment) into one encrypted file', async () => {
    const m = a as Mesh;
    const set = await runCli(['routes', 'set', 'shop', '--domain', 'shop.backup.test', '--upstream', `127.0.0.1:${upstreamPort}`], env());
    expect(set.code).toBe(0);
    await waitFor('route served by A', async () => (await viaNginx(m.proxy.httpPort, 'shop.backup.test')).status === 200, 10_000);

    expect((await api(m, 'POST', '/projects', { name: project })).status).toBe(201);
    expect((await api(m, 'POST', `/projects/${project}/environments`, { name: 'prod' })).status).toBe(201);
    expect(
      (
        await api(m, 'POST', `/projects/${project}/services`, {
          name: 'web',
          type: 'web',
          health_path: '/health',
          health_timeout_s: 4,
        })
      ).status,
    ).toBe(201);
    expect((await api(m, 'PUT', `/projects/${project}/environments/prod/secrets/SHOP_KEY`, { value: 'sealed-value-9f8e7d' })).status).toBe(
      200,
    );
    const deploy = await runCli(['deploy', 'web', '--project', project, '--env', 'prod', '--image', image, '--json'], env(), {
      timeoutMs: 90_000,
    });
    expect(`${deploy.code} ${deploy.stdout}`).toMatch(/^0 /);
    deploymentId = JSON.parse(deploy.stdout).id;
    tokenFromA = meshToken();

    const r = await runCli(['backup', '-o', backupFile, '--passphrase-file', passFile, '--json'], env());
    expect(r.code).toBe(0);
    const summary = JSON.parse(r.stdout) as { droplets: Array<{ droplet: string; keys: number }> };
    expect(summary.droplets.map((d) => d.droplet)).toEqual(['registry', 'deployer', 'proxy-manager']);
    expect(statSync(backupFile).mode & 0o777).toBe(0o600);
    const raw = readFileSync(backupFile);
    // Encrypted: neither names nor the sealed secret's plaintext are readable.
    expect(raw.includes('shop.backup.test')).toBe(false);
    expect(raw.includes('sealed-value-9f8e7d')).toBe(false);
  }, 150_000);

  it('a wrong passphrase is refused without a stack', async () => {
    const bad = join(tmp, 'bad-pass');
    writeFileSync(bad, 'not the right passphrase\n');
    const r = await runCli(['restore', backupFile, '--passphrase-file', bad], env());
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('wrong passphrase');
    expectNoStack(r.stderr);
  });

  it('restores into mesh B on a new NATS: same route through its nginx, history, secrets, keys', async () => {
    await (a as Mesh).stop();
    a = undefined;
    b = await startMesh('b');
    const m = b;
    expect((await viaNginx(m.proxy.httpPort, 'shop.backup.test')).status).not.toBe(200);
    expect((await api(m, 'GET', '/projects', undefined, tokenFromA)).status).toBe(401);

    const r = await runCli(['restore', backupFile, '--passphrase-file', passFile], env());
    expect(`${r.code} ${r.stderr}`).toMatch(/^0 /);
    expectNoStack(r.stderr);

    await waitFor('route served by B', async () => (await viaNginx(m.proxy.httpPort, 'shop.backup.test')).status === 200, 15_000);
    expect((await viaNginx(m.proxy.httpPort, 'shop.backup.test')).body).toBe('hello from the restored shop');

    const history = await api(m, 'GET', `/deployments?project=${project}`);
    expect(JSON.stringify(history.json)).toContain(deploymentId);
    const secrets = await api(m, 'GET', `/projects/${project}/environments/prod/secrets`);
    expect(secrets.json).toMatchObject({ items: [{ name: 'SHOP_KEY' }] });

    // A token mesh A's registry signed still verifies in mesh B: the key ring came back.
    const old = await api(m, 'GET', '/projects', undefined, tokenFromA);
    expect(old.status).toBe(200);
  }, 150_000);

  it('a second restore is refused while the buckets hold state, unless --force', async () => {
    const r = await runCli(['restore', backupFile, '--passphrase-file', passFile], env());
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/CONFLICT: .*already hold state/);
    const forced = await runCli(['restore', backupFile, '--passphrase-file', passFile, '--force'], env());
    expect(forced.code).toBe(0);
  }, 60_000);
});
