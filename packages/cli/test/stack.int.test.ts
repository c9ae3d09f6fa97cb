import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startAllEmulators, type AllEmulators } from '@droplet-mesh/cloud-emulators';
import { createDeployerDroplet } from '@droplet-mesh/deployer/dist/app.js';
import { buildImageFromDir, ensureBusyboxImage, ensureDockerEngine } from '@droplet-mesh/docker-testing';
import { createMultiCloudDroplet } from '@droplet-mesh/multi-cloud-manager/dist/app.js';
import { freePort, startNatsServer, waitFor, type NatsServerHandle } from '@droplet-mesh/udc-kit/testing';
import { expectNoStack, quiet, runCli, scratchHome } from './support/cli.js';
import { ADMIN_KEY, startProxyManager, startRegistry } from './support/mesh.js';

// meshctl stack against the real orchestrator (its own process, so the test can kill -9 it),
// the real deployer on Docker, proxy-manager with nginx, and multi-cloud-manager over the
// cloud emulators.

const CLOUD_TOKEN = 'meshctl-stack-cloud-token-0123456789';
const ORCHESTRATOR_MAIN = fileURLToPath(new URL('../node_modules/@droplet-mesh/orchestrator/dist/main.js', import.meta.url));
const project = `st${randomBytes(3).toString('hex')}`;
const stack = `cli-${project}`;
const tmp = mkdtempSync(join(tmpdir(), 'meshctl-stack-'));
const home = scratchHome();
let nats: NatsServerHandle;
let reg: Awaited<ReturnType<typeof startRegistry>>;
let proxy: Awaited<ReturnType<typeof startProxyManager>>;
let deployer: Awaited<ReturnType<typeof createDeployerDroplet>>;
let mcm: ReturnType<typeof createMultiCloudDroplet>;
let emus: AllEmulators;
let upstream: Server;
let upstreamPort: number;
let image: string;
let token: string;
let orchPort: number;
let orchEnv: Record<string, string>;
let orch: ChildProcess | undefined;
let orchOut = '';

const env = () => ({
  HOME: home.home,
  MESHCTL_CONFIG: home.config,
  MESHCTL_TOKEN: token,
  MESHCTL_ORCHESTRATOR_URL: `http://127.0.0.1:${orchPort}`,
});
const stackFile = join(tmp, `${stack}.yaml`);

function writeStack(o: { route?: boolean } = {}) {
  writeFileSync(
    stackFile,
    `servers:
  edge:
    provider: hetzner
    region: fsn1
    size: cx22
    image: ubuntu-24.04
  db:
    provider: digitalocean
    region: fra1
    size: s-1vcpu-1gb
    image: ubuntu-24-04-x64
projects:
  ${project}:
    environments:
      prod:
        services:
          web:
            image: ${image}
${
  o.route === false
    ? ''
    : `routes:
  docs-${project}:
    domain: docs-${project}.mesh.test
    upstreams: [{ host: 127.0.0.1, port: ${upstreamPort} }]
    require_healthy: false
`
}`,
  );
}

async function startOrchestrator(): Promise<void> {
  const child = spawn(process.execPath, [ORCHESTRATOR_MAIN], {
    env: { PATH: process.env.PATH ?? '', ...orchEnv },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  orch = child;
  child.stdout?.on('data', (d) => (orchOut = (orchOut + String(d)).slice(-20_000)));
  child.stderr?.on('data', (d) => (orchOut = (orchOut + String(d)).slice(-20_000)));
  await waitFor(
    'the orchestrator process to answer /health',
    async () => {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`the orchestrator exited: ${orchOut.slice(-1500)}`);
      return (
        (await fetch(`http://127.0.0.1:${orchPort}/health`, { signal: AbortSignal.timeout(1000) }).catch(() => undefined))?.status === 200
      );
    },
    30_000,
    100,
  );
}

async function killOrchestrator(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  const child = orch;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.kill(signal);
  });
}

async function call(base: string, path: string, init: RequestInit = {}) {
  const res = await fetch(`${base}${path}`, {
    ...init,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...init.headers },
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

/** The stack's instances at the emulators (through multi-cloud-manager), counted by name. */
async function stackInstanceNames(): Promise<string[]> {
  const r = await call(mcmUrl, '/instances?per_page=200');
  return (r.body.items as Array<{ name: string; status: string; labels: Record<string, string> }>)
    .filter((i) => i.labels?.['mesh-stack'] === stack && i.status !== 'deleting')
    .map((i) => i.name)
    .sort();
}
let mcmUrl: string;

beforeAll(async () => {
  const docker = await ensureDockerEngine();
  const busybox = await ensureBusyboxImage(docker);
  const site = join(tmp, 'site');
  mkdirSync(join(site, 'www'), { recursive: true });
  writeFileSync(join(site, 'www', 'index.html'), 'stack-v1');
  writeFileSync(join(site, 'www', 'health'), 'ok');
  writeFileSync(
    join(site, 'Dockerfile'),
    `FROM ${busybox}\nCOPY www /www\nCMD ["/bin/sh", "-c", "exec httpd -f -p 0.0.0.0:$PORT -h /www"]\n`,
  );
  image = await buildImageFromDir(docker, site, `mesh-test/${project}:v1`);
  upstreamPort = await freePort();
  upstream = createServer((_q, s) => s.end('docs'));
  await new Promise<void>((r) => upstream.listen(upstreamPort, '127.0.0.1', () => r()));

  nats = await startNatsServer();
  reg = await startRegistry(nats.url);
  const tokenRes = await fetch(`${reg.url}/auth/token?droplet_id=operator`, { method: 'POST', headers: { 'x-registry-key': ADMIN_KEY } });
  token = ((await tokenRes.json()) as { token: string }).token;
  const meshEnv = {
    PORT: '0',
    NATS_URL: nats.url,
    LOG_LEVEL: 'warn',
    REGISTRY_URL: reg.url,
    REGISTRY_KEY: ADMIN_KEY,
    JWKS_URL: `${reg.url}/.well-known/jwks.json`,
  };
  proxy = await startProxyManager(nats.url, reg.url);
  const lo = 30000 + Math.floor(Math.random() * 150) * 200;
  deployer = await createDeployerDroplet({
    env: {
      ...meshEnv,
      DEPLOYER_MASTER_KEY: randomBytes(32).toString('base64'),
      DEPLOY_PORT_RANGE: `${lo}-${lo + 199}`,
      DRAIN_S: '0',
      HEALTH_TIMEOUT_S: '6',
      DATA_DIR: join(tmp, 'deployer'),
    },
    logDestination: quiet(),
  });
  await deployer.start();
  // Creating an instance takes a second and a half: long enough to kill the orchestrator during it.
  emus = await startAllEmulators({ token: CLOUD_TOKEN, seedInstances: 0, actionDurationMs: 1500 });
  mcm = createMultiCloudDroplet({
    env: {
      ...meshEnv,
      DO_TOKEN: CLOUD_TOKEN,
      HETZNER_TOKEN: CLOUD_TOKEN,
      VULTR_TOKEN: CLOUD_TOKEN,
      DO_API_URL: emus.digitalocean.apiUrl,
      HETZNER_API_URL: emus.hetzner.apiUrl,
      VULTR_API_URL: emus.vultr.apiUrl,
      LOCAL_PROVIDER_ENABLED: 'false',
      ACTION_POLL_INTERVAL_MS: '50',
      ACTION_WAIT_TIMEOUT_S: '10',
    },
    logDestination: quiet(),
  });
  mcmUrl = (await mcm.start()).url;
  orchPort = await freePort();
  orchEnv = {
    ...meshEnv,
    PORT: String(orchPort),
    POLL_INTERVAL_MS: '100',
    LEASE_STALE_S: '2',
    RESUME_INTERVAL_S: '0.5',
    STEP_RETRY_S: '10',
    DRIFT_INTERVAL_S: '1',
  };
  await startOrchestrator();
  // The orchestrator finds the others through the registry.
  for (const id of ['deployer', 'proxy-manager', 'multi-cloud-manager', 'orchestrator'])
    await waitFor(`${id} registered`, async () => (await call(reg.url, `/droplets/${id}`)).status === 200, 15_000, 100);
}, 180_000);

afterAll(async () => {
  await killOrchestrator('SIGTERM');
  await mcm?.stop().catch(() => undefined);
  await emus?.close().catch(() => undefined);
  await deployer?.deployer.idle().catch(() => undefined);
  await deployer?.stop().catch(() => undefined);
  await proxy?.close();
  await reg?.droplet.stop().catch(() => undefined);
  await nats?.stop({ removeStore: true }).catch(() => undefined);
  await new Promise((r) => upstream?.close(r));
  const docker = await ensureDockerEngine();
  for (const c of await docker.listContainers({ all: true, filters: { label: ['mesh.managed=true', `mesh.project=${project}`] } }))
    await docker
      .getContainer(c.Id)
      .remove({ force: true })
      .catch(() => undefined);
  rmSync(tmp, { recursive: true, force: true });
  home.remove();
}, 120_000);

describe('meshctl stack', () => {
  it('validate: a bad file is refused with the file and each path in it; nothing is planned', async () => {
    const bad = join(tmp, 'bad.yaml');
    writeFileSync(
      bad,
      `servers:\n  edge: { provider: hetzner, region: fsn1, size: cx22, image: u, colour: red }\nprojects:\n  p:\n    environments:\n      prod:\n        services:\n          web: { image: app:1, replicas: many }\n`,
    );
    const r = await runCli(['stack', 'validate', '-f', bad, '--name', 'bad'], env());
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`error: INVALID_REQUEST: ${bad}: the stack file is invalid`);
    expect(r.stderr).toMatch(/^ {2}servers\.edge: .*colour/m);
    expect(r.stderr).toMatch(/^ {2}projects\.p\.environments\.prod\.services\.web\.replicas: /m);
    expectNoStack(r.stderr);
    const j = await runCli(['stack', 'validate', '-f', bad, '--name', 'bad', '--json'], env());
    expect(JSON.parse(j.stdout).error.details.fields.map((f: { path: string }) => f.path)).toContain(
      'projects.p.environments.prod.services.web.replicas',
    );
    expect((await call(`http://127.0.0.1:${orchPort}`, '/stacks/bad')).status).toBe(404);
  });

  it('plan shows every step with the monthly cost; --json is the plan', async () => {
    writeStack();
    const ok = await runCli(['stack', 'validate', '-f', stackFile], env());
    expect(ok).toMatchObject({ code: 0 });
    expect(ok.stdout).toContain('valid (');
    const r = await runCli(['stack', 'plan', '-f', stackFile], env());
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('create server/edge/0');
    expect(r.stdout).toContain(`deploy release/${project}/prod/web`);
    expect(r.stdout).toMatch(/monthly cost: \+\d+\.\d\d /);
    const j = JSON.parse((await runCli(['stack', 'plan', '-f', stackFile, '--json'], env())).stdout);
    expect(j.steps.map((s: { id: string }) => s.id)).toEqual([
      'server/edge/0',
      'server/db/0',
      `project/${project}`,
      `environment/${project}/prod`,
      `service/${project}/prod/web`,
      `release/${project}/prod/web`,
      `route/docs-${project}`,
    ]);
  }, 60_000);

  it('apply follows the progress; the orchestrator killed -9 mid-apply resumes it, with no duplicate instance', async () => {
    const running = runCli(['stack', 'apply', '-f', stackFile], env(), { timeoutMs: 120_000 });
    // kill -9 while the first server is being created at its provider.
    await waitFor(
      'a server step to run',
      async () => {
        const s = await call(`http://127.0.0.1:${orchPort}`, `/stacks/${stack}`);
        if (s.status !== 200 || !s.body.last_apply) return false;
        const a = await call(`http://127.0.0.1:${orchPort}`, `/stacks/${stack}/applies/${s.body.last_apply.id}`);
        return a.body.steps[0].status === 'running';
      },
      30_000,
      50,
    );
    await killOrchestrator();
    await startOrchestrator();
    const r = await running;
    expect(r.stderr).toContain('[1/7] create server/edge/0: running');
    expect(r.stderr).toMatch(/\[7\/7\] create route\/docs-\S+: succeeded/);
    expect(r.stdout).toMatch(/apply [0-9a-f-]{36} succeeded\n$/);
    expect(r.code).toBe(0);
    expect(await stackInstanceNames()).toEqual([`${stack}-db-0`, `${stack}-edge-0`]);
    const applies = await call(`http://127.0.0.1:${orchPort}`, `/stacks/${stack}/applies`);
    expect(applies.body.items[0]).toMatchObject({ status: 'succeeded', resumed: 1 });

    const again = await runCli(['stack', 'apply', '-f', stackFile], env());
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/no changes/);
    const status = await runCli(['stack', 'status', '-f', stackFile], env());
    expect(status.stdout).toContain(`stack ${stack}: applied`);
    // promote reaches the orchestrator: this stack has no uat, so there is nothing to promote.
    const promote = await runCli(['stack', 'promote', '--name', stack, '--from', 'uat', '--to', 'prod'], env());
    expect(promote.code).toBe(1);
    expect(promote.stderr).toContain("error: INVALID_REQUEST: no service exists in both 'uat' and 'prod'");
  }, 180_000);

  it('diff shows drift once a route is deleted behind the stack; destroy needs --yes, then leaves nothing', async () => {
    expect((await call(proxy.url, `/proxies/docs-${project}`, { method: 'DELETE' })).status).toBe(200);
    // DRIFT_INTERVAL_S=1: the periodic check sees it within an interval or two.
    await waitFor(
      'the drift check to report the route',
      async () => {
        const s = await runCli(['stack', 'status', '--name', stack], env());
        return s.stdout.includes(`drift: route/docs-${project} missing`);
      },
      10_000,
      250,
    );
    const d = await runCli(['stack', 'diff', '--name', stack], env());
    expect(d.code).toBe(2);
    expect(d.stdout).toContain(`drift route/docs-${project}: missing`);

    const refused = await runCli(['stack', 'destroy', '--name', stack], env());
    expect(refused.code).toBe(1);
    expect(refused.stdout).toContain('delete server/edge/0');
    expect(refused.stderr).toContain('only with --yes');
    const refusedJson = await runCli(['stack', 'destroy', '--name', stack, '--json'], env());
    expect(refusedJson.code).toBe(1);
    expect(JSON.parse(refusedJson.stdout).error.details.plan.steps.map((s: { id: string }) => s.id)).toContain('server/edge/0');
    expect(await stackInstanceNames()).toHaveLength(2);
    const r = await runCli(['stack', 'destroy', '--name', stack, '--yes'], env(), { timeoutMs: 90_000 });
    expect(r.stdout).toMatch(/apply [0-9a-f-]{36} succeeded\n$/);
    expect(r.code).toBe(0);
    expect(await stackInstanceNames()).toEqual([]);
    expect((await call(proxy.url, `/proxies/app-${project}-web-prod-prod`)).status).toBe(404);
  }, 120_000);
});
