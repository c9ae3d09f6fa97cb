// Benchmark: redeploy of a running web service under steady load, through a real
// proxy-manager + nginx, next to the bare `docker run` + health wait measured in the
// same run. Run: cd services/deployer && corepack pnpm run build && corepack pnpm run bench
import { request as httpRequest } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, request, startNatsServer, startTestAuthority, tokenOnlyRegistry } from '../../services/deployer/test/bench-kit.js';
import { createDeployerDroplet } from '../../services/deployer/src/app.js';
import {
  cleanDocker,
  masterKey,
  portRange,
  quiet,
  testImages,
  uniqueProject,
  waitDeployment,
} from '../../services/deployer/test/helpers.js';
import { PROXY_MANAGER_MAIN, runNode, waitHealthy } from '../../services/deployer/test/process-helpers.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
/** Replicas of the service (all on the local server): the start step starts them at once. */
const REPLICAS = Number(process.env.BENCH_REPLICAS ?? 1);
const WORKERS = Number(process.env.BENCH_WORKERS ?? 4);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * q))];

const images = await testImages();
const nats = await startNatsServer();
const authority = await startTestAuthority();
const tmp = mkdtempSync(join(tmpdir(), 'bench-deploy-'));
const project = uniqueProject('bench');
const domain = `${project}.mesh.test`;
const pmPort = await freePort();
const proxyHttpPort = await freePort();
const proxy = runNode(PROXY_MANAGER_MAIN, {
  PORT: String(pmPort),
  NATS_URL: nats.url,
  DATA_DIR: join(tmp, 'proxy'),
  PROXY_HTTP_PORT: String(proxyHttpPort),
  PROXY_HTTPS_PORT: String(await freePort()),
  LOG_LEVEL: 'warn',
  UPSTREAM_RECHECK_INTERVAL_S: '0',
  ...authority.env(),
});
const droplet = await createDeployerDroplet({
  env: {
    PORT: '0',
    NATS_URL: nats.url,
    LOG_LEVEL: 'warn',
    DEPLOYER_MASTER_KEY: masterKey(),
    DEPLOY_PORT_RANGE: portRange(),
    DRAIN_S: '1',
    DATA_DIR: join(tmp, 'data'),
    ...authority.env(),
  },
  // NATS messages carry the sender's token (proxy-manager refuses a route.upsert without one).
  registry: tokenOnlyRegistry(() => authority.mint({ sub: 'deployer', scopes: ['read', 'write'] })),
  logDestination: quiet(),
});

function get(): Promise<{ ok: boolean; body: string }> {
  return new Promise((resolve) => {
    const req = httpRequest(
      { host: '127.0.0.1', port: proxyHttpPort, path: '/', headers: { Host: domain }, agent: false, timeout: 5000 },
      (res) => {
        let body = '';
        res.on('data', (c) => (body += String(c)));
        res.on('end', () => resolve({ ok: res.statusCode === 200, body: body.trim() }));
      },
    );
    req.on('error', (e) => resolve({ ok: false, body: String(e) }));
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

/**
 * Bare baseline: create + start a container on a port and poll its health path. `bridged`:
 * the same on the mesh's app network with the port published on loopback and the deployer's
 * confinement (what isolation costs in the engine itself: a network namespace and a proxy).
 */
async function bareRun(port: number, bridged = false): Promise<number> {
  const t0 = performance.now();
  const c = await images.docker.createContainer({
    Image: images.v1,
    Env: [`PORT=${port}`],
    Labels: { 'mesh.managed': 'true', 'mesh.project': project },
    ...(bridged ? { ExposedPorts: { [`${port}/tcp`]: {} } } : {}),
    HostConfig: bridged
      ? {
          NetworkMode: 'mesh-apps',
          PortBindings: { [`${port}/tcp`]: [{ HostIp: '127.0.0.1', HostPort: String(port) }] },
          CapDrop: ['ALL'],
          SecurityOpt: ['no-new-privileges:true'],
          Init: true,
        }
      : { NetworkMode: 'host', Init: true },
  });
  await c.start();
  for (;;) {
    const ok = await fetch(`http://127.0.0.1:${port}/health`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    await new Promise((r) => setTimeout(r, 150));
  }
  const ms = performance.now() - t0;
  await c.remove({ force: true });
  return ms;
}

try {
  await waitHealthy(`http://127.0.0.1:${pmPort}`, proxy, 30_000);
  const { url: deployerUrl } = await droplet.start();
  const auth = { Authorization: `Bearer ${authority.mint({ scopes: ['read', 'write'] })}` };
  const post = (p: string, b: object) => request(droplet.app).post(p).set(auth).send(b);
  await post('/projects', { name: project });
  await post(`/projects/${project}/environments`, { name: 'prod' });
  await post(`/projects/${project}/services`, { name: 'web', type: 'web', domain, health_path: '/health', replicas: REPLICAS });
  const first = await post('/deployments', { project, service: 'web', environment: 'prod', source: { image: images.v1 } });
  const firstDone = await waitDeployment(droplet.app, auth, first.body.id);
  if (firstDone.status !== 'succeeded')
    throw new Error(`first deploy ${firstDone.status}: ${firstDone.reason ?? ''} (steps: ${JSON.stringify(firstDone.steps ?? [])})`);

  // The baselines run under the same load as the deploys (the same request loops through
  // nginx to the running service): both then compete with the same work for the 2 cores.
  const underLoad = async <T>(fn: () => Promise<T>): Promise<T> => {
    let running = true;
    const loops = Array.from({ length: WORKERS }, async () => {
      while (running) await get();
    });
    try {
      return await fn();
    } finally {
      running = false;
      await Promise.all(loops);
    }
  };
  const baseline: number[] = [];
  const bridgedBaseline: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    baseline.push(await underLoad(async () => bareRun(await freePort())));
    bridgedBaseline.push(await underLoad(async () => bareRun(await freePort(), true)));
  }

  const stepTimes = new Map<string, number[]>();
  const toServing: number[] = [];
  const total: number[] = [];
  let requests = 0;
  let failed = 0;
  // GET /deployments/:id of the deploy under way, as a client following it polls it, next to
  // GET /health of the same deployer in the same loop (the baseline): one keep-alive client each.
  const statusMs: number[] = [];
  const healthMs: number[] = [];
  const timed = async (path: string, into: number[]) => {
    const t = performance.now();
    const r = await fetch(`${deployerUrl}${path}`, { headers: auth });
    await r.arrayBuffer();
    if (!r.ok) throw new Error(`GET ${path}: ${r.status}`);
    into.push(performance.now() - t);
  };
  for (let i = 0; i < ROUNDS; i++) {
    const next = i % 2 === 0 ? 'version-2' : 'version-1';
    let running = true;
    let seenAt: number | undefined;
    const t0 = performance.now();
    const loops = Array.from({ length: WORKERS }, async () => {
      while (running) {
        const r = await get();
        requests++;
        if (!r.ok) failed++;
        if (r.body === next && seenAt === undefined) seenAt = performance.now();
      }
    });
    const res = await post('/deployments', {
      project,
      service: 'web',
      environment: 'prod',
      source: { image: next === 'version-2' ? images.v2 : images.v1 },
    });
    const polling = (async () => {
      while (running) {
        await timed(`/deployments/${res.body.id}`, statusMs);
        await timed('/health', healthMs);
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    const d = await waitDeployment(droplet.app, auth, res.body.id, 120_000);
    const t1 = performance.now();
    await new Promise((r) => setTimeout(r, 300));
    running = false;
    await Promise.all([...loops, polling]);
    if (d.status !== 'succeeded') throw new Error(`deploy ${d.status}: ${d.reason}`);
    for (const st of d.steps) stepTimes.set(st.name, [...(stepTimes.get(st.name) ?? []), st.duration_ms ?? 0]);
    total.push(t1 - t0);
    toServing.push((seenAt ?? t1) - t0);
  }

  const b = median(baseline);
  const s = median(toServing);
  const f = (n: number) => `${Math.round(n)} ms`;
  console.log(`deploy benchmark (${ROUNDS} rounds, ${REPLICAS} replica(s), ${WORKERS} concurrent request loops through nginx)`);
  console.log(`  requests during redeploys:        ${requests}, failed: ${failed}`);
  console.log(`  baseline docker run + health:     median ${f(b)} (under the same request load)`);
  const bb = median(bridgedBaseline);
  console.log(`  baseline, bridge + published port: median ${f(bb)}`);
  console.log(`  deployer request -> new version:  median ${f(s)}  (ratio ${(s / b).toFixed(2)}x baseline, overhead ${f(s - b)})`);
  console.log(`  ratio to the bridged baseline:    ${(s / bb).toFixed(2)}x (overhead ${f(s - bb)})`);
  console.log(`  deployer steps (median): ${[...stepTimes].map(([n, xs]) => `${n} ${f(median(xs))}`).join(', ')}`);
  const ms = (n: number) => `${n.toFixed(1)} ms`;
  const [sp50, sp99, hp50, hp99] = [quantile(statusMs, 0.5), quantile(statusMs, 0.99), quantile(healthMs, 0.5), quantile(healthMs, 0.99)];
  console.log(
    `  GET /deployments/:id while deploying: ${statusMs.length} calls, p50 ${ms(sp50)}, p99 ${ms(sp99)}, max ${ms(Math.max(...statusMs))}` +
      `  (GET /health baseline p50 ${ms(hp50)}, p99 ${ms(hp99)}; p99 ratio ${(sp99 / hp99).toFixed(2)}x)`,
  );
  console.log(`  deployer request -> deploy done:  median ${f(median(total))} (includes the drain of DRAIN_S=1 s and image cleanup)`);
} finally {
  await droplet.deployer.idle();
  await droplet.stop();
  await proxy.stop();
  await authority.close();
  await nats.stop({ removeStore: true });
  await cleanDocker(images.docker, project);
  rmSync(tmp, { recursive: true, force: true });
}
