import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  freePort,
  startNatsServer,
  startTestAuthority,
  waitFor,
  type NatsServerHandle,
  type TestAuthority,
} from '@droplet-mesh/udc-kit/testing';
import { cleanDocker, getViaNginx, masterKey, portRange, testImages, uniqueProject, type TestImages } from './helpers.js';
import { startProxyManager, waitHealthy, type Proc } from './process-helpers.js';
import { createProject } from './deployer-harness.js';

// Finding 7 of the zero-trust review: `route_switched` was recorded only after
// proxy-manager had applied the route, so a deployer killed in between left a record
// saying the route was untouched, and recovery removed the new containers the route
// pointed at: an outage. The intent is now recorded before the switch, and recovery
// leaves one working version serving (the previous one when it is healthy, else the new).
//
// The window is hit exactly with a test-only hook (DEPLOYER_TEST_PAUSE_AFTER_ROUTE_SWITCH)
// that makes the deployer process stop right after proxy-manager answered the route
// request, before anything else is recorded; the test then kills it with SIGKILL.

const FIXTURE = fileURLToPath(new URL('./fixtures/deployer-process.mjs', import.meta.url));
const MARKER = 'TEST HOOK: paused after the route switch';
const project = uniqueProject('rs');
let nats: NatsServerHandle;
let authority: TestAuthority;
let images: TestImages;
let proxy: Proc | undefined;
let deployer: Proc | undefined;
let proxyHttpPort: number;
let url: string;
let env: Record<string, string>;
const tmp = mkdtempSync(join(tmpdir(), 'deployer-rs-'));

/** One GET through nginx for `host`, on a fresh connection. */
const viaProxy = (host: string) => getViaNginx(proxyHttpPort, host);

function startDeployer(extra: Record<string, string> = {}): Proc {
  const child = spawn(process.execPath, [FIXTURE], {
    env: { PATH: process.env.PATH ?? '', ...env, ...extra },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout?.on('data', (d) => (out = (out + String(d)).slice(-40_000)));
  child.stderr?.on('data', (d) => (out = (out + String(d)).slice(-40_000)));
  return {
    child,
    output: () => out,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        const t = setTimeout(() => child.kill('SIGKILL'), 5000);
        child.once('exit', () => {
          clearTimeout(t);
          resolve();
        });
        child.kill('SIGTERM');
      }),
  };
}

async function kill9(p: Proc): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  const exited = new Promise((r) => p.child.once('exit', r));
  p.child.kill('SIGKILL');
  await exited;
}

async function call(method: string, path: string, body?: unknown) {
  const r = await fetch(`${url}${path}`, {
    method,
    headers: { Authorization: `Bearer ${authority.mint({ scopes: ['read', 'write'] })}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  return { status: r.status, body: (await r.json().catch(() => undefined)) as Record<string, any> };
}

async function deploy(service: string, image: string): Promise<string> {
  const res = await call('POST', '/deployments', { project, service, environment: 'prod', source: { image } });
  expect(res.status).toBe(202);
  return res.body.id as string;
}

async function finished(id: string, timeoutMs = 60_000): Promise<Record<string, any>> {
  let d: Record<string, any> = {};
  await waitFor(
    `deployment ${id} final`,
    async () => {
      d = (await call('GET', `/deployments/${id}`)).body;
      return ['succeeded', 'failed', 'interrupted', 'rolled_back'].includes(d?.status);
    },
    timeoutMs,
    200,
  );
  return d;
}

/** Deploy with the hook on, wait until the process sits right after the switch, then kill -9 it. */
async function crashAfterSwitch(service: string, image: string): Promise<string> {
  deployer = startDeployer({ DEPLOYER_TEST_PAUSE_AFTER_ROUTE_SWITCH: '1' });
  await waitHealthy(url, deployer);
  const id = await deploy(service, image);
  await waitFor('the deployer paused after the route switch', () => deployer!.output().includes(MARKER), 60_000, 50);
  await kill9(deployer);
  return id;
}

beforeAll(async () => {
  images = await testImages();
  nats = await startNatsServer();
  authority = await startTestAuthority();
  const pmPort = await freePort();
  proxyHttpPort = await freePort();
  proxy = await startProxyManager({
    port: pmPort,
    httpPort: proxyHttpPort,
    httpsPort: await freePort(),
    natsUrl: nats.url,
    dataDir: join(tmp, 'proxy'),
    env: { ...authority.env() },
  });
  const port = await freePort();
  url = `http://127.0.0.1:${port}`;
  env = {
    PORT: String(port),
    NATS_URL: nats.url,
    LOG_LEVEL: 'info',
    DEPLOYER_MASTER_KEY: masterKey(),
    DEPLOY_PORT_RANGE: portRange(),
    DRAIN_S: '0',
    RECOVERY_INTERVAL_S: '2',
    DEPLOY_LEASE_TTL_S: '5',
    DATA_DIR: join(tmp, 'data'),
    TEST_DEPLOYER_TOKEN: authority.mint({ sub: 'deployer', scopes: ['read', 'write'] }),
    ...authority.env(),
  };
  deployer = startDeployer();
  await waitHealthy(url, deployer);
  await createProject(url, { Authorization: `Bearer ${authority.mint({ scopes: ['read', 'write'] })}` }, project, {
    services: ['web', 'first'].map((name) => ({ name, type: 'web', domain: `${name}-${project}.mesh.test`, health_path: '/health' })),
  });
}, 180_000);

afterAll(async () => {
  await deployer?.stop();
  await proxy?.stop();
  await authority?.close();
  await nats?.stop({ removeStore: true });
  if (images) await cleanDocker(images.docker, project);
  rmSync(tmp, { recursive: true, force: true });
}, 60_000);

describe('kill -9 of the deployer right after the route switch', () => {
  const web = `web-${project}.mesh.test`;

  it('with a previous version: after recovery the route answers, from a version that runs', async () => {
    const first = await deploy('web', images.v1);
    expect((await finished(first)).status).toBe('succeeded');
    expect(await viaProxy(web)).toEqual({ status: 200, body: 'version-1' });
    await deployer!.stop();

    const second = await crashAfterSwitch('web', images.v2);
    // The window: nginx already sends traffic to the new version.
    expect(await viaProxy(web)).toEqual({ status: 200, body: 'version-2' });

    deployer = startDeployer();
    await waitHealthy(url, deployer);
    const after = await finished(second);
    expect(after.status).toBe('interrupted');
    const answered = await viaProxy(web);
    if (answered.status !== 200)
      throw new Error(`the route does not answer: ${JSON.stringify(answered)}\n${deployer.output().slice(-3000)}`);
    expect(answered.body).toMatch(/^version-[12]$/);
    // What serves is the release on record, and its containers run.
    const release = (await call('GET', `/services/app-${project}-web-prod`)).body;
    expect(answered.body).toBe(release.deployment_id === first ? 'version-1' : 'version-2');
    for (const c of release.containers) expect((await images.docker.getContainer(c.container_id).inspect()).State.Running).toBe(true);
    // It keeps answering: nothing removes it a sweep later.
    await new Promise((r) => setTimeout(r, 2500));
    expect((await viaProxy(web)).status).toBe(200);
  }, 240_000);

  it('when the previous version cannot take the route back (its containers died too), the new version keeps it', async () => {
    const before = (await call('GET', `/services/app-${project}-web-prod`)).body;
    await deployer!.stop();
    const id = await crashAfterSwitch('web', before.image === images.v1 ? images.v2 : images.v1);
    const expected = (await viaProxy(web)).body;
    for (const c of before.containers) await images.docker.getContainer(c.container_id).stop({ t: 0 });

    deployer = startDeployer();
    await waitHealthy(url, deployer);
    const after = await finished(id);
    expect(after.status).toBe('interrupted');
    expect(after.reason).toMatch(/kept serving/);
    const answered = await viaProxy(web);
    if (answered.status !== 200)
      throw new Error(`the route does not answer: ${JSON.stringify(answered)}\n${deployer.output().slice(-3000)}`);
    expect(answered.body).toBe(expected);
    expect((await call('GET', `/services/app-${project}-web-prod`)).body.deployment_id).toBe(id);
  }, 240_000);

  it('on a first deploy: recovery keeps the new version serving instead of removing it', async () => {
    await deployer!.stop();
    const id = await crashAfterSwitch('first', images.v1);
    const host = `first-${project}.mesh.test`;
    expect(await viaProxy(host)).toEqual({ status: 200, body: 'version-1' });

    deployer = startDeployer();
    await waitHealthy(url, deployer);
    const after = await finished(id);
    expect(after.status).toBe('interrupted');
    const answered = await viaProxy(host);
    if (answered.status !== 200)
      throw new Error(`the route does not answer: ${JSON.stringify(answered)}\n${deployer.output().slice(-3000)}`);
    expect(answered.body).toBe('version-1');
    const release = await call('GET', `/services/app-${project}-first-prod`);
    expect(release.status).toBe(200);
    expect(release.body.deployment_id).toBe(id);
    await new Promise((r) => setTimeout(r, 2500));
    expect((await viaProxy(host)).status).toBe(200);
    // The next deploy of the service runs normally.
    const next = await deploy('first', images.v2);
    expect((await finished(next)).status).toBe('succeeded');
    expect(await viaProxy(host)).toEqual({ status: 200, body: 'version-2' });
  }, 240_000);
});
