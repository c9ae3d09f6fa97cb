// Benchmark: provisioning a local server in one call (deployer → multi-cloud-manager →
// a Docker Engine in its own network namespace → its ready report → registered, engine
// answering over mutual TLS), next to the baseline measured in the same run: starting the
// same engine by hand (startNamespacedEngine with a mesh certificate) until it answers /_ping
// over mutual TLS. Then a server lost: three servers, a web service with 3 replicas behind
// nginx, one engine killed; health-monitor at its default check interval (one monitor)
// declares it down and the deployer moves its replica: the time until the route no longer
// points at it, in parts (detection, decision, start, route switch), next to a plain
// redeploy of the same service measured in the same run. Needs root (ip netns, dockerd).
// Run: corepack pnpm run build at the root, then cd bench && corepack pnpm run bench:servers
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  copyImages,
  Docker,
  freePort,
  request,
  startNamespacedEngine,
  startNatsServer,
  startTestAuthority,
  tokenOnlyRegistry,
} from '../../services/deployer/test/bench-kit.js';
import { createDeployerDroplet } from '../../services/deployer/src/app.js';
import { createMeshCa, engineIdentity, issueCertificate } from '../../services/deployer/src/domain/mesh-ca.js';
import {
  cleanDocker,
  masterKey,
  portRange,
  quiet,
  testImages,
  uniqueProject,
  waitDeployment,
} from '../../services/deployer/test/helpers.js';
import { MCM_MAIN, PROXY_MANAGER_MAIN, runNode, waitHealthy } from '../../services/deployer/test/process-helpers.js';
import { createHealthMonitor } from '../../services/health-monitor/src/health-monitor.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const f = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

const nats = await startNatsServer();
const authority = await startTestAuthority();
const tmp = mkdtempSync(join(tmpdir(), 'bench-servers-'));
const mcmPort = await freePort();
const mcm = runNode(MCM_MAIN, { PORT: String(mcmPort), NATS_URL: nats.url, LOG_LEVEL: 'warn', ...authority.env() });
const port = await freePort();
const droplet = await createDeployerDroplet({
  env: {
    PORT: String(port),
    NATS_URL: nats.url,
    LOG_LEVEL: 'warn',
    DEPLOYER_MASTER_KEY: masterKey(),
    DEPLOY_PORT_RANGE: portRange(),
    DATA_DIR: join(tmp, 'data'),
    DEPLOYER_PUBLIC_URL: `http://127.0.0.1:${port}`,
    ...authority.env(),
  },
  registry: tokenOnlyRegistry(() => authority.mint({ sub: 'deployer', scopes: ['read', 'write', 'admin'] })),
  logDestination: quiet(),
});
const lostCleanup: Array<() => Promise<unknown>> = [];
const admin = { Authorization: `Bearer ${authority.mint({ scopes: ['read', 'write', 'admin'] })}` };
const manual: Array<{ stop(): Promise<void> }> = [];

/** By hand: certificate from a mesh CA, engine started, /_ping over mutual TLS answers. */
async function baseline(i: number): Promise<number> {
  const ca = await createMeshCa();
  const id = `manual-${i}`;
  const client = await issueCertificate(ca, { kind: 'client', commonName: 'bench' });
  const t0 = performance.now();
  // Its certificate names its address (known once the namespace exists) beside its identity.
  const e = await startNamespacedEngine({
    tls: async (address) => {
      const server = await issueCertificate(ca, { kind: 'server', commonName: id, addresses: [engineIdentity(id), address] });
      return { ca: ca.certPem, cert: server.cert, key: server.key };
    },
  });
  manual.push(e);
  const docker = new Docker({
    host: e.address,
    port: e.port,
    protocol: 'https',
    ca: ca.certPem,
    cert: client.cert,
    key: client.key,
  });
  await docker.ping();
  return performance.now() - t0;
}

/** One call: POST /servers/provision until GET /servers/{id} shows it registered and its engine answers. */
async function provision(name: string): Promise<{ total: number; steps: Array<{ status: string; at: string }> }> {
  const t0 = performance.now();
  const res = await request(droplet.app)
    .post('/servers/provision')
    .set(admin)
    .send({ provider: 'local', region: 'local', size: 'small', name });
  if (res.status !== 202) throw new Error(`provision: ${res.status} ${JSON.stringify(res.body)}`);
  for (;;) {
    const s = await request(droplet.app).get(`/servers/${name}`).set(admin);
    if (s.status === 200 && !s.body.provisioning) break;
    if (['failed', 'expired'].includes(s.body.status)) throw new Error(`provision failed: ${s.body.reason}`);
    if (performance.now() - t0 > 120_000) throw new Error('provision did not finish in 120 s');
    await new Promise((r) => setTimeout(r, 50));
  }
  const total = performance.now() - t0;
  const engine = await request(droplet.app).get(`/servers/${name}/engine`).set(admin);
  if (engine.status !== 200) throw new Error(`engine of ${name} does not answer: ${JSON.stringify(engine.body)}`);
  const steps = (await request(droplet.app).get(`/servers/provision/${name}`).set(admin)).body.steps;
  return { total, steps };
}

async function serverLost(): Promise<void> {
  const images = await testImages();
  const project = uniqueProject('bl');
  const writer = { Authorization: `Bearer ${authority.mint({ scopes: ['read', 'write'] })}` };
  const pmPort = await freePort();
  const proxy = runNode(PROXY_MANAGER_MAIN, {
    PORT: String(pmPort),
    NATS_URL: nats.url,
    DATA_DIR: join(tmp, 'proxy'),
    PROXY_HTTP_PORT: String(await freePort()),
    PROXY_HTTPS_PORT: String(await freePort()),
    LOG_LEVEL: 'warn',
    UPSTREAM_RECHECK_INTERVAL_S: '0',
    ...authority.env(),
  });
  lostCleanup.push(() => proxy.stop());
  await waitHealthy(`http://127.0.0.1:${pmPort}`, proxy, 30_000);
  const post = (p: string, b: object, auth = writer) => request(droplet.app).post(p).set(auth).send(b);
  await post('/projects', { name: project });
  await post(`/projects/${project}/environments`, { name: 'prod' });
  await post(`/projects/${project}/services`, {
    name: 'web',
    type: 'web',
    domain: `${project}.mesh.test`,
    health_path: '/health',
    replicas: 3,
  });
  const ids = ['a', 'b', 'c'].map((x) => `${project}-${x}`);
  const engines = await Promise.all(
    ids.map((id) =>
      startNamespacedEngine({
        tls: async (address) => {
          const r = await post('/mesh-ca/engine-certificates', { server_id: id, addresses: [address] }, admin);
          return { ca: r.body.ca, cert: r.body.cert, key: r.body.key };
        },
      }),
    ),
  );
  lostCleanup.push(() => Promise.allSettled(engines.map((e) => e.stop())));
  lostCleanup.push(() => cleanDocker(images.docker, project));
  for (const [i, e] of engines.entries()) {
    await copyImages(images.docker, e.docker, [images.v1]);
    await post('/servers', { id: ids[i], docker_host: e.dockerHost, tls: 'mesh', environments: [`${project}/prod`] }, admin);
  }
  const deploy = async () => {
    const t0 = performance.now();
    const r = await post('/deployments', { project, service: 'web', environment: 'prod', source: { image: images.v1 } });
    const done = await waitDeployment(droplet.app, writer, r.body.id, 150_000);
    if (done.status !== 'succeeded') throw new Error(`deploy ${done.status}: ${done.reason}`);
    return { ms: performance.now() - t0, d: done };
  };
  await deploy();
  // The baseline: a plain redeploy of the same service (request -> route switched), measured twice.
  const switchedAfter = (d: { created_at?: unknown; steps?: unknown }) => {
    const sw = (d.steps as Array<{ name: string; finished_at?: string }>).find((x) => x.name === 'switch');
    return Date.parse(sw?.finished_at ?? '') - Date.parse(String(d.created_at));
  };
  const plain: number[] = [];
  for (let i = 0; i < 2; i++) plain.push(switchedAfter((await deploy()).d));
  const monitor = createHealthMonitor({
    env: {
      PORT: '0',
      NATS_URL: nats.url,
      MONITOR_ID: 'bench',
      MONITORS_PER_TARGET: '1',
      CONTROL_CHECK_URLS: '[]',
      DIGEST_INTERVAL_MIN: '0',
      ...authority.env(),
    },
    registry: tokenOnlyRegistry(() => authority.mint({ sub: 'health-monitor', scopes: ['read', 'write'] })),
    logDestination: quiet(),
  });
  lostCleanup.push(() => monitor.stop());
  await monitor.start();
  const incidents: Array<{ at: number; target_id: string }> = [];
  droplet.ctx.bus.nc.subscribe('udc.health-monitor.events.incident.opened', {
    callback: (_e, m) => void incidents.push({ at: Date.now(), target_id: (m.json() as { target_id: string }).target_id }),
  });
  // Wait until the monitor has seen every engine up.
  const ok = new Set<string>();
  droplet.ctx.bus.nc.subscribe('health-monitor.observations', {
    callback: (_e, m) => {
      for (const o of m.json() as { target_id: string; ok: boolean }[]) if (o.ok) ok.add(o.target_id);
    },
  });
  const t = Date.now();
  while (ids.some((id) => !ok.has(`server-engine-${id}`))) {
    if (Date.now() - t > 60_000) throw new Error('health-monitor never saw the engines up');
    await new Promise((r) => setTimeout(r, 200));
  }
  const before = (await request(droplet.app).get(`/services/app-${project}-web-prod`).set(writer)).body.deployment_id;
  const killedAt = Date.now();
  engines[2].kill();
  let moved: { id: string } | undefined;
  while (!moved) {
    if (Date.now() - killedAt > 180_000) throw new Error('the replica did not move within 180 s');
    const rel = (await request(droplet.app).get(`/services/app-${project}-web-prod`).set(writer)).body;
    if (rel.deployment_id !== before && rel.containers.every((c: { server_id: string }) => c.server_id !== ids[2]))
      moved = { id: rel.deployment_id };
    else await new Promise((r) => setTimeout(r, 100));
  }
  const servingElsewhere = Date.now() - killedAt;
  const dep = (await request(droplet.app).get(`/deployments/${moved.id}`).set(writer)).body;
  const incident = incidents.find((i) => i.target_id === `server-engine-${ids[2]}`);
  const step = (n: string) =>
    (dep.steps as Array<{ name: string; duration_ms?: number }>).find((x) => x.name === n)?.duration_ms ?? Number.NaN;
  const detection = (incident?.at ?? Number.NaN) - killedAt;
  const decision = Date.parse(dep.created_at) - (incident?.at ?? Number.NaN);
  const b = median(plain);
  const timing = monitor.droplet.ctx.config;
  console.log(
    `server lost (3 servers, 3 replicas behind nginx, health-monitor defaults: CHECK_INTERVAL_MS ${timing.CHECK_INTERVAL_MS}, CHECK_TIMEOUT_MS ${timing.CHECK_TIMEOUT_MS}, one monitor)`,
  );
  console.log(`  baseline: plain redeploy, request -> route switched:  median ${f(b)}  (${plain.map(f).join(', ')})`);
  console.log(
    `  engine killed -> route without it, 3 replicas again:   ${f(servingElsewhere)}  (goal <= 60 s; ratio ${(servingElsewhere / b).toFixed(2)}x baseline)`,
  );
  console.log(`    detection (kill -> incident.opened):   ${f(detection)}`);
  console.log(`    decision (incident -> deployment):      ${f(decision)}`);
  console.log(`    start + health (steps start, health):   ${f(step('start') + step('health'))}`);
  console.log(`    route switch (step switch):             ${f(step('switch'))}`);
}

try {
  await waitHealthy(`http://127.0.0.1:${mcmPort}`, mcm, 30_000);
  await droplet.start({ port, host: '127.0.0.1' });
  const prefix = uniqueProject('bs');
  const base: number[] = [];
  const prov: number[] = [];
  const created: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    base.push(await baseline(i));
    const { total, steps } = await provision(`${prefix}-${i}`);
    prov.push(total);
    const at = (s: string) => Date.parse(steps.find((x: { status: string }) => x.status === s)?.at ?? '');
    created.push(at('waiting_for_callback') - at('creating_instance'));
  }
  const b = median(base);
  const p = median(prov);
  console.log(`servers benchmark (${ROUNDS} rounds, local provider)`);
  console.log(`  baseline: engine started by hand until /_ping over mTLS:  median ${f(b)}  (${base.map(f).join(', ')})`);
  console.log(`  POST /servers/provision until registered:                median ${f(p)}  (${prov.map(f).join(', ')})`);
  console.log(`  ratio ${(p / b).toFixed(2)}x baseline, overhead ${f(p - b)}`);
  const made = created.filter(Number.isFinite);
  if (made.length) console.log(`  of which multi-cloud-manager answering the create (engine up): median ${f(median(made))}`);
  if (process.env.BENCH_LOST !== '0') await serverLost();
} finally {
  await droplet.stop();
  await mcm.stop();
  await Promise.allSettled(manual.map((e) => e.stop()));
  for (const c of lostCleanup.reverse()) await c().catch(() => undefined);
  await authority.close();
  await nats.stop();
  rmSync(tmp, { recursive: true, force: true });
}
process.exit(0);
