// The real mesh in this process: nats-server, the registry, proxy-manager (its own nginx),
// the deployer (the real Docker Engine), multi-cloud-manager over the cloud emulators, and
// the orchestrator, every droplet registered with the registry and trusting its tokens.
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Writable } from 'node:stream';
import { startAllEmulators, type AllEmulators } from '@droplet-mesh/cloud-emulators';
import { createDeployerDroplet } from '@droplet-mesh/deployer/dist/app.js';
import { createHealthMonitor } from '@droplet-mesh/health-monitor/dist/health-monitor.js';
import { buildWebImage, ensureBusyboxImage, ensureDockerEngine } from '@droplet-mesh/docker-testing';

/** dockerode's client, as docker-testing hands it out (this package does not depend on dockerode itself). */
type Docker = Awaited<ReturnType<typeof ensureDockerEngine>>;
import { createMultiCloudDroplet } from '@droplet-mesh/multi-cloud-manager/dist/app.js';
import { createProxyManager } from '@droplet-mesh/proxy-manager';
import { createRegistryDroplet } from '@droplet-mesh/registry/dist/app.js';
import { Bus } from '@droplet-mesh/udc-kit';
import {
  freePort,
  getViaNginx,
  startNatsServer,
  startPebble,
  waitFor,
  type NatsServerHandle,
  type Pebble,
} from '@droplet-mesh/udc-kit/testing';
import { createOrchestratorDroplet, type OrchestratorDroplet } from '../../src/app.js';

export const ADMIN_KEY = 'orchestrator-test-admin-key-0123456789';
export const CLOUD_TOKEN = 'orchestrator-test-cloud-token-0123456789';
export const quiet = () => new Writable({ write: (_c, _e, cb) => cb() });

interface Closer {
  close(): Promise<void>;
}

export const meshEnv = (natsUrl: string, registryUrl: string) => ({
  PORT: '0',
  NATS_URL: natsUrl,
  LOG_LEVEL: 'warn',
  REGISTRY_URL: registryUrl,
  REGISTRY_KEY: ADMIN_KEY,
  JWKS_URL: `${registryUrl}/.well-known/jwks.json`,
});

export async function operatorToken(registryUrl: string): Promise<string> {
  const res = await fetch(`${registryUrl}/auth/token?droplet_id=operator`, { method: 'POST', headers: { 'x-registry-key': ADMIN_KEY } });
  if (!res.ok) throw new Error(`operator token: HTTP ${res.status}`);
  return ((await res.json()) as { token: string }).token;
}

export async function waitRegistered(registryUrl: string, id: string): Promise<void> {
  const token = await operatorToken(registryUrl);
  await waitFor(
    `'${id}' registered`,
    async () => (await fetch(`${registryUrl}/droplets/${id}`, { headers: { authorization: `Bearer ${token}` } })).status === 200,
    15_000,
    100,
  );
}

/** A web app image FROM the host's busybox: httpd on $PORT serving index.html (its version) and /health. */
const webImage = (docker: Docker, busybox: string, tag: string, index: string, cmd?: string) =>
  buildWebImage(docker, busybox, tag, { 'index.html': index, health: 'ok' }, cmd);

export interface Images {
  docker: Docker;
  busybox: string;
  v1: string;
  v2: string;
  broken: string;
  /** version-3, healthy only after 4 s: a deploy that is still running when a test kills something. */
  slow: string;
}

export async function testImages(): Promise<Images> {
  const docker = await ensureDockerEngine();
  const busybox = await ensureBusyboxImage(docker);
  return {
    docker,
    busybox,
    v1: await webImage(docker, busybox, 'mesh-test/orch-app:v1', 'version-1'),
    v2: await webImage(docker, busybox, 'mesh-test/orch-app:v2', 'version-2'),
    broken: await webImage(docker, busybox, 'mesh-test/orch-app:broken', 'never', '["/bin/sh", "-c", "echo failing for good; sleep 3600"]'),
    slow: await webImage(
      docker,
      busybox,
      'mesh-test/orch-app:slow',
      'version-3',
      '["/bin/sh", "-c", "sleep 4; exec httpd -f -p 0.0.0.0:$PORT -h /www"]',
    ),
  };
}

/** Remove the containers and deploy images a project left (by the deployer's labels). */
export async function cleanDocker(docker: Docker, project: string): Promise<void> {
  for (const c of await docker.listContainers({ all: true, filters: { label: ['mesh.managed=true', `mesh.project=${project}`] } }))
    await docker
      .getContainer(c.Id)
      .remove({ force: true })
      .catch(() => undefined);
  for (const i of await docker.listImages({ filters: { reference: [`mesh-apps/${project}-*`] } }))
    for (const t of i.RepoTags ?? [])
      await docker
        .getImage(t)
        .remove()
        .catch(() => undefined);
}

/** A plain HTTP upstream for a stack's extra route: answers `text` (and /health). */
export async function startUpstream(text: string): Promise<{ port: number; close(): Promise<void> }> {
  const port = await freePort();
  const server: Server = createServer((_req, res) => res.end(text));
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
  return {
    port,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

const DEPLOYER_MAIN = fileURLToPath(new URL('../../node_modules/@droplet-mesh/deployer/dist/main.js', import.meta.url));

/** The deployer as its own process, so that a test can kill -9 it. */
function deployerProcess(env: Record<string, string>) {
  let child: ChildProcess | undefined;
  let out = '';
  const url = `http://127.0.0.1:${env.PORT}`;
  const alive = () => !!child && child.exitCode === null && child.signalCode === null;
  return {
    output: () => out,
    async start() {
      child = spawn(process.execPath, [DEPLOYER_MAIN], {
        env: { PATH: process.env.PATH ?? '', ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      child.stdout?.on('data', (d) => (out = (out + String(d)).slice(-20_000)));
      child.stderr?.on('data', (d) => (out = (out + String(d)).slice(-20_000)));
      await waitFor(
        'the deployer process to answer /health',
        async () => {
          if (!alive()) throw new Error(`the deployer exited: ${out.slice(-1500)}`);
          return (await fetch(`${url}/health`, { signal: AbortSignal.timeout(1000) })).status === 200;
        },
        30_000,
        100,
      );
    },
    /** kill -9: no drain, no deregistration. */
    async kill() {
      if (!alive()) return;
      const c = child!;
      await new Promise<void>((resolve) => {
        c.once('exit', () => resolve());
        c.kill('SIGKILL');
      });
    },
    async stop() {
      if (!alive()) return;
      const c = child!;
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => c.kill('SIGKILL'), 15_000);
        c.once('exit', () => {
          clearTimeout(t);
          resolve();
        });
        c.kill('SIGTERM');
      });
    },
  };
}

export interface Mesh {
  nats: NatsServerHandle;
  registryUrl: string;
  proxyHttpPort: number;
  /** Let's Encrypt's test CA, answering HTTP-01 through the proxy's nginx. */
  pebble: Pebble;
  emus: AllEmulators;
  token: string;
  orchestratorUrl: string;
  orchestrator: OrchestratorDroplet;
  /** Stop the orchestrator as a crash would leave it (applies stay `running` in KV), then start a new one. */
  restartOrchestrator(): Promise<void>;
  stopOrchestrator(): Promise<void>;
  startOrchestrator(): Promise<void>;
  /** With `deployerProcess`: kill -9 the deployer, and start it again on the same port and data. */
  killDeployer(): Promise<void>;
  startDeployer(): Promise<void>;
  /** GET through nginx for a domain. */
  viaProxy(domain: string): Promise<{ status: number; body: string }>;
  close(): Promise<void>;
}

export async function startMesh(
  opts: {
    orchestratorEnv?: Record<string, string>;
    deployerProcess?: boolean;
    healthMonitor?: boolean;
    /** multi-cloud-manager makes local servers (real engines in their own network namespace) for the deployer's provisioning. */
    localServers?: boolean;
  } = {},
): Promise<Mesh> {
  const closers: Closer[] = [];
  const nats = await startNatsServer();
  const tmp = mkdtempSync(join(tmpdir(), 'orch-mesh-'));
  chmodSync(tmp, 0o755); // nginx workers (nobody) read the webroot inside it
  try {
    const reg = await createRegistryDroplet({
      env: { PORT: '0', NATS_URL: nats.url, REGISTRY_ADMIN_KEY: ADMIN_KEY, HEARTBEAT_INTERVAL_S: '30', LOG_LEVEL: 'warn' },
      logDestination: quiet(),
    });
    const { url: registryUrl } = await reg.droplet.start();
    closers.push({ close: () => reg.droplet.stop() });

    const proxyHttpPort = await freePort();
    const pebble = await startPebble({ httpPort: proxyHttpPort });
    closers.push({ close: () => pebble.stop() });
    const pmDir = join(tmp, 'proxy');
    mkdirSync(pmDir, { mode: 0o755 });
    const pmBus = await Bus.connect({ url: nats.url, name: 'proxy-manager-orch-test' });
    const pm = createProxyManager({
      env: {
        ...meshEnv(nats.url, registryUrl),
        DATA_DIR: pmDir,
        PROXY_HTTP_PORT: String(proxyHttpPort),
        PROXY_HTTPS_PORT: String(await freePort()),
        UPSTREAM_RECHECK_INTERVAL_S: '0',
        UPSTREAM_HEALTH_TIMEOUT_MS: '1000',
        RECONCILE_COALESCE_MS: '20',
        ACME_DIRECTORY_URL: pebble.directoryUrl,
        ACME_CA_BUNDLE: pebble.apiCaFile,
        ACME_EMAIL: 'ops@example.com',
      },
      bus: pmBus,
      logDestination: quiet(),
    });
    await pm.start({ port: 0 });
    closers.push({
      async close() {
        await pm.stop().catch(() => undefined);
        await pmBus.close().catch(() => undefined);
      },
    });

    const lo = 31000 + Math.floor(Math.random() * 100) * 200;
    const depEnv = {
      ...meshEnv(nats.url, registryUrl),
      DEPLOYER_MASTER_KEY: randomBytes(32).toString('base64'),
      DEPLOY_PORT_RANGE: `${lo}-${lo + 199}`,
      DRAIN_S: '0',
      HEALTH_TIMEOUT_S: '6',
      DEPLOY_LEASE_TTL_S: '2',
      RECOVERY_INTERVAL_S: '1',
      DATA_DIR: join(tmp, 'deployer'),
      // A machine that cannot boot here (an emulated cloud) fails its provisioning after this long.
      PROVISION_TIMEOUT_S: '10',
      SERVER_ALLOW_FROM: '127.0.0.1/32',
    };
    let depProc: ReturnType<typeof deployerProcess> | undefined;
    if (opts.deployerProcess) {
      depProc = deployerProcess({ ...depEnv, PORT: String(await freePort()) });
      await depProc.start();
      const p = depProc;
      closers.push({ close: () => p.stop() });
    } else {
      const dep = await createDeployerDroplet({ env: depEnv, logDestination: quiet() });
      await dep.start();
      closers.push({
        async close() {
          await dep.deployer.idle();
          await dep.stop();
        },
      });
    }

    const emus = await startAllEmulators({ token: CLOUD_TOKEN, seedInstances: 1, actionDurationMs: 100 });
    closers.push({ close: () => emus.close() });
    const mcm = createMultiCloudDroplet({
      env: {
        ...meshEnv(nats.url, registryUrl),
        DO_TOKEN: CLOUD_TOKEN,
        HETZNER_TOKEN: CLOUD_TOKEN,
        VULTR_TOKEN: CLOUD_TOKEN,
        DO_API_URL: emus.digitalocean.apiUrl,
        HETZNER_API_URL: emus.hetzner.apiUrl,
        VULTR_API_URL: emus.vultr.apiUrl,
        LOCAL_PROVIDER_ENABLED: opts.localServers ? 'true' : 'false',
        ACTION_POLL_INTERVAL_MS: '50',
        ACTION_WAIT_TIMEOUT_S: '10',
        PROVIDER_LIST_TIMEOUT_MS: '5000',
        PROVIDER_TIMEOUT_MS: '3000',
      },
      logDestination: quiet(),
    });
    await mcm.start();
    closers.push({ close: () => mcm.stop() });
    if (opts.healthMonitor) {
      // Only for its notification settings (a stack's alerts:): it checks nothing here.
      const hm = createHealthMonitor({
        env: { ...meshEnv(nats.url, registryUrl), CHECK_INTERVAL_MS: '600000', DIGEST_INTERVAL_MIN: '0', SERVER_ENGINE_CHECKS: 'false' },
        logDestination: quiet(),
      });
      await hm.start();
      closers.push({ close: () => hm.stop() });
      await waitRegistered(registryUrl, 'health-monitor');
    }
    for (const id of ['proxy-manager', 'deployer', 'multi-cloud-manager']) await waitRegistered(registryUrl, id);

    const orchPort = await freePort();
    const orchEnv = {
      ...meshEnv(nats.url, registryUrl),
      PORT: String(orchPort),
      POLL_INTERVAL_MS: '100',
      LEASE_STALE_S: '2',
      RESUME_INTERVAL_S: '0.5',
      DEPLOY_TIMEOUT_S: '90',
      STEP_RETRY_S: '10',
      DRIFT_INTERVAL_S: '1',
      ...opts.orchestratorEnv,
    };
    let orchestrator = await createOrchestratorDroplet({ env: orchEnv, logDestination: quiet() });
    let running = false;
    const startOrchestrator = async () => {
      if (running) return;
      orchestrator = await createOrchestratorDroplet({ env: orchEnv, logDestination: quiet() });
      await orchestrator.droplet.start();
      running = true;
    };
    const stopOrchestrator = async () => {
      if (!running) return;
      running = false;
      // Like a crash: the applies stop where they are (their state stays `running` in KV).
      await orchestrator.orchestrator().stop();
      await orchestrator.droplet.stop();
    };
    await orchestrator.droplet.start();
    running = true;
    closers.push({ close: stopOrchestrator });
    await waitRegistered(registryUrl, 'orchestrator');

    const mesh: Mesh = {
      nats,
      registryUrl,
      proxyHttpPort,
      pebble,
      emus,
      token: await operatorToken(registryUrl),
      orchestratorUrl: `http://127.0.0.1:${orchPort}`,
      get orchestrator() {
        return orchestrator;
      },
      startOrchestrator,
      stopOrchestrator,
      async killDeployer() {
        if (!depProc) throw new Error('startMesh({ deployerProcess: true }) runs the deployer as a process');
        await depProc.kill();
      },
      async startDeployer() {
        if (!depProc) throw new Error('startMesh({ deployerProcess: true }) runs the deployer as a process');
        await depProc.start();
      },
      async restartOrchestrator() {
        await stopOrchestrator();
        await startOrchestrator();
      },
      viaProxy: (domain) => getViaNginx(proxyHttpPort, domain),
      async close() {
        for (const c of [...closers].reverse()) await c.close().catch(() => undefined);
        await nats.stop({ removeStore: true }).catch(() => undefined);
        rmSync(tmp, { recursive: true, force: true });
      },
    };
    return mesh;
  } catch (err) {
    for (const c of [...closers].reverse()) await c.close().catch(() => undefined);
    await nats.stop({ removeStore: true }).catch(() => undefined);
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
}

/** A small JSON client for the orchestrator's API with the operator's token. */
export function api(mesh: Mesh) {
  const call = async (method: string, path: string, body?: unknown, contentType = 'application/json') => {
    const res = await fetch(`${mesh.orchestratorUrl}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${mesh.token}`,
        ...(body !== undefined ? { 'content-type': contentType } : {}),
      },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
      signal: AbortSignal.timeout(150_000),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  };
  return {
    call,
    plan: (stack: string, file: unknown) =>
      typeof file === 'string'
        ? call('POST', `/stacks/${stack}/plan`, file, 'application/yaml')
        : call('POST', `/stacks/${stack}/plan`, file),
    apply: (stack: string, planId: string, extra: object = {}) =>
      call('POST', `/stacks/${stack}/apply?wait=true`, { plan_id: planId, ...extra }),
  };
}
