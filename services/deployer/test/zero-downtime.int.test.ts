import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import { freePort, startNatsServer, startTestAuthority, type NatsServerHandle, type TestAuthority } from '@droplet-mesh/udc-kit/testing';
import type { DeployerDroplet } from '../src/app.js';
import { HTTPD, buildWebImage, cleanDocker, getViaNginx, testImages, uniqueProject, waitDeployment, type TestImages } from './helpers.js';
import { startProxyManager, type Proc } from './process-helpers.js';
import { createProject, startTestDeployer } from './deployer-harness.js';

const project = uniqueProject('zd');
const domain = `${project}.mesh.test`;
let nats: NatsServerHandle;
let authority: TestAuthority;
let images: TestImages;
let proxy: Proc | undefined;
let droplet: DeployerDroplet;
let proxyHttpPort: number;
let auth: Record<string, string>;
const tmp = mkdtempSync(join(tmpdir(), 'deployer-zd-'));

/** One GET through nginx for the domain (a fresh connection each time). */
const get = (host = domain) => getViaNginx(proxyHttpPort, host);

/** Steady load while `during` runs: `workers` concurrent request loops. */
async function underLoad(during: () => Promise<void>, workers = 4) {
  const results: Array<{ status: number; body: string; at: number }> = [];
  let running = true;
  const loops = Array.from({ length: workers }, async () => {
    while (running) results.push({ ...(await get()), at: Date.now() });
  });
  try {
    await during();
    await new Promise((r) => setTimeout(r, 300));
  } finally {
    running = false;
    await Promise.all(loops);
  }
  return results;
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
  droplet = await startTestDeployer({ natsUrl: nats.url, authority, dataDir: join(tmp, 'data') });
  auth = { Authorization: `Bearer ${authority.mint({ scopes: ['read', 'write'] })}` };
  await createProject(droplet.app, auth, project, { services: [{ name: 'web', type: 'web', domain, health_path: '/health' }] });
}, 120_000);

afterAll(async () => {
  await droplet?.deployer.idle();
  await droplet?.stop();
  await proxy?.stop();
  await authority?.close();
  await nats?.stop({ removeStore: true });
  if (images) await cleanDocker(images.docker, project);
  rmSync(tmp, { recursive: true, force: true });
}, 60_000);

async function deploy(image: string, service = 'web', extra: object = {}) {
  const res = await request(droplet.app)
    .post('/deployments')
    .set(auth)
    .send({ project, service, environment: 'prod', source: { image }, ...extra });
  expect(res.status).toBe(202);
  return waitDeployment(droplet.app, auth, res.body.id, 60_000);
}

describe('zero downtime through a real proxy-manager and nginx', () => {
  it('the first deploy points the domain at the new container', async () => {
    const d = await deploy(images.v1);
    if (d.status !== 'succeeded') throw new Error(`deploy ${d.status}: ${d.reason}\n${proxy?.output().slice(-2000)}`);
    expect(d.steps.map((s) => s.name)).toContain('switch');
    expect(await get()).toEqual({ status: 200, body: 'version-1' });
  }, 90_000);

  it('redeploys under a steady load with no failed request, v1 then v2', async () => {
    const results = await underLoad(async () => {
      const d = await deploy(images.v2);
      expect(d.status).toBe('succeeded');
    });
    const failed = results.filter((r) => r.status !== 200 || !/^version-[12]$/.test(r.body));
    expect(results.length).toBeGreaterThan(50);
    expect(failed).toEqual([]);
    expect(results.some((r) => r.body === 'version-1')).toBe(true);
    expect(results[results.length - 1].body).toBe('version-2');
  }, 120_000);

  it('a failed deploy leaves the route alone and the old version serving under load', async () => {
    await request(droplet.app).patch(`/projects/${project}/services/web`).set(auth).send({ health_timeout_s: 2 });
    const results = await underLoad(async () => {
      const d = await deploy(images.broken);
      expect(d.status).toBe('failed');
    });
    expect(results.filter((r) => r.status !== 200 || r.body !== 'version-2')).toEqual([]);
  }, 120_000);
});

/**
 * An app whose health CGI answers ok for its first `okChecks` checks, then 503 for good.
 * A deploy checks a new container's health path in this order: the deployer's health
 * step (stops at its first answered request), proxy-manager's probe before it switches
 * the route (require_healthy), then the deployer's verify step after the switch. With
 * okChecks = 2 the new version turns unhealthy right after the route switched.
 */
const healthCgi = (okChecks: number) => `#!/bin/sh
n=0
[ -f /tmp/hits ] && read n < /tmp/hits
n=$((n + 1))
echo "$n" > /tmp/hits
if [ "$n" -le ${okChecks} ]; then printf 'Content-Type: text/plain\\r\\n\\r\\nok\\n'; exit 0; fi
echo "health check $n: unhealthy" >&2
printf 'HTTP/1.1 503 Service Unavailable\\r\\nContent-Type: text/plain\\r\\n\\r\\nunhealthy\\n'
`;
const cgiCmd = JSON.stringify(['/bin/sh', '-c', HTTPD]);

describe('auto_rollback through a real proxy-manager and nginx', () => {
  const arDomain = `ar-${project}.mesh.test`;

  it('a new version that fails after the switch: the route goes back to the previous version, the new containers are removed', async () => {
    const good = await buildWebImage(
      images.docker,
      images.busybox,
      'mesh-test/deployer-ar:good-v2',
      { 'index.html': 'version-good', 'cgi-bin/health': healthCgi(1_000_000) },
      cgiCmd,
    );
    const flaky = await buildWebImage(
      images.docker,
      images.busybox,
      'mesh-test/deployer-ar:flaky-v2',
      { 'index.html': 'version-flaky', 'cgi-bin/health': healthCgi(2) },
      cgiCmd,
    );
    expect(
      (
        await request(droplet.app)
          .post(`/projects/${project}/services`)
          .set(auth)
          .send({ name: 'ar', type: 'web', domain: arDomain, health_path: '/cgi-bin/health', health_timeout_s: 5 })
      ).status,
    ).toBe(201);
    const first = await deploy(good, 'ar');
    expect(first.status).toBe('succeeded');
    expect(await get(arDomain)).toEqual({ status: 200, body: 'version-good' });
    const before = (await request(droplet.app).get(`/services/app-${project}-ar-prod`).set(auth)).body;

    const d = await deploy(flaky, 'ar', { auto_rollback: true });
    expect(d.status).toBe('rolled_back');
    const steps = Object.fromEntries(d.steps.map((s) => [s.name, s.status]));
    expect(steps).toMatchObject({ health: 'succeeded', switch: 'succeeded', verify: 'failed' });
    expect(d.reason).toMatch(/verify/);
    expect(d.route_switched).toBe(false);
    expect(d.last_log_lines?.join('\n')).toMatch(/health check \d+: unhealthy/);
    expect(await images.docker.listContainers({ all: true, filters: { label: [`mesh.deployment=${d.id}`] } })).toHaveLength(0);
    // The release never moved, and nginx serves the previous version again (the new one is gone).
    const after = (await request(droplet.app).get(`/services/app-${project}-ar-prod`).set(auth)).body;
    expect(after).toMatchObject({ deployment_id: first.id, containers: before.containers });
    expect(await get(arDomain)).toEqual({ status: 200, body: 'version-good' });
  }, 120_000);
});
