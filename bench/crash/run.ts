// Benchmark (issue 16, item 2): an app container killed → incident opened, and → serving again,
// with the deployer and health-monitor at their default settings (one monitor). The deployer
// sees the container die from Docker's events, tells health-monitor (which opens the incident)
// and starts it again. Next to it, measured in the same run, the path without events: a plain
// process checked by the same monitor, killed with kill -9, found down by its checks alone.
// Needs Docker. Run: corepack pnpm run build at the root, then cd bench && corepack pnpm run bench:crash
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Bus } from '@droplet-mesh/udc-kit';
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
import { createHealthMonitor } from '../../services/health-monitor/src/health-monitor.js';

// The deployer restarts one container at most 5 times a minute before calling it a crash loop.
const ROUNDS = Math.min(5, Number(process.env.BENCH_ROUNDS ?? 5));
const TARGET_SCRIPT = fileURLToPath(new URL('../../services/health-monitor/test/fixtures/target-server.mjs', import.meta.url));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, fn: () => boolean | Promise<boolean>, timeoutMs = 60_000, everyMs = 10): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}

async function answers(port: number): Promise<boolean> {
  try {
    return (await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(500) })).ok;
  } catch {
    return false;
  }
}

function startProcessTarget(port: number): ChildProcess {
  return spawn(process.execPath, [TARGET_SCRIPT, String(port)], { stdio: 'ignore' });
}

const images = await testImages();
const nats = await startNatsServer();
const authority = await startTestAuthority();
const tmp = mkdtempSync(join(tmpdir(), 'bench-crash-'));
const project = uniqueProject('bc');
const appTarget = `app-${project}-web-prod`;
const deployer = await createDeployerDroplet({
  env: {
    PORT: '0',
    NATS_URL: nats.url,
    LOG_LEVEL: 'warn',
    DEPLOYER_MASTER_KEY: masterKey(),
    DEPLOY_PORT_RANGE: portRange(),
    DATA_DIR: join(tmp, 'data'),
    NODE_BASE_IMAGE: images.nodeBase,
    ...authority.env(),
  },
  registry: tokenOnlyRegistry(() => authority.mint({ sub: 'deployer', scopes: ['read', 'write'] })),
  logDestination: quiet(),
});
await deployer.start();
const auth = { Authorization: `Bearer ${authority.mint({ scopes: ['read', 'write'] })}` };
const post = (p: string, b: object) => request(deployer.app).post(p).set(auth).send(b);
await post('/projects', { name: project });
await post(`/projects/${project}/environments`, { name: 'prod' });
await post(`/projects/${project}/services`, { name: 'web', type: 'web', health_path: '/health' });
const dep = await post('/deployments', { project, service: 'web', environment: 'prod', source: { image: images.v1 } });
if ((await waitDeployment(deployer.app, auth, dep.body.id, 120_000)).status !== 'succeeded') throw new Error('the deploy failed');
const service = await request(deployer.app).get(`/services/${appTarget}`).set(auth);
const container = service.body.containers[0] as { container_id: string; port: number };

const processPort = await freePort();
let processTarget = startProcessTarget(processPort);
await until('the process target', () => answers(processPort));

// One monitor at its defaults, checking both (a registry would list the app; static targets say the same here).
const bus = await Bus.connect({ url: nats.url, name: 'bench-crash' });
const opened = new Map<string, number>();
const resolved = new Map<string, number>();
bus.nc.subscribe('health-monitor.incident.*', {
  callback: (_e, m) => {
    const i = m.json<{ target_id: string }>();
    (m.subject.endsWith('.opened') ? opened : m.subject.endsWith('.resolved') ? resolved : new Map()).set(i.target_id, Date.now());
  },
});
const monitor = createHealthMonitor({
  env: {
    PORT: '0',
    NATS_URL: nats.url,
    MONITOR_ID: 'bench',
    DIGEST_INTERVAL_MIN: '0',
    SERVER_ENGINE_CHECKS: 'false',
    STATIC_TARGETS: JSON.stringify([
      { id: appTarget, url: `http://127.0.0.1:${container.port}` },
      { id: 'process', url: `http://127.0.0.1:${processPort}` },
    ]),
    ...authority.env(),
  },
  logDestination: quiet(),
});
await monitor.start();
const settings = monitor.engine!;
await sleep(3000);

const container_ = { incident: [] as number[], serving: [] as number[], resolved: [] as number[] };
const checks = { incident: [] as number[] };
try {
  for (let round = 1; round <= ROUNDS; round++) {
    await until('no open incident', () => !settings.incidents.openFor(appTarget) && !settings.incidents.openFor('process'), 60_000, 50);
    await sleep(1500);
    opened.clear();
    resolved.clear();

    const killedAt = Date.now();
    await images.docker.getContainer(container.container_id).kill({ signal: 'SIGKILL' });
    await until('serving again', () => answers(container.port), 30_000);
    container_.serving.push(Date.now() - killedAt);
    await until('the incident', () => opened.has(appTarget), 30_000);
    container_.incident.push(opened.get(appTarget)! - killedAt);
    await until('the incident resolved', () => resolved.has(appTarget), 60_000);
    container_.resolved.push(resolved.get(appTarget)! - killedAt);

    const processKilledAt = Date.now();
    processTarget.kill('SIGKILL');
    await until('the process incident', () => opened.has('process'), 30_000);
    checks.incident.push(opened.get('process')! - processKilledAt);
    processTarget = startProcessTarget(processPort);
    await until('the process target back', () => answers(processPort));
    console.log(
      `round ${round}: container killed → incident ${container_.incident.at(-1)} ms, serving ${container_.serving.at(-1)} ms, resolved ${container_.resolved.at(-1)} ms; process killed → incident by checks ${checks.incident.at(-1)} ms`,
    );
  }
  const row = (name: string, xs: number[], aim: string) =>
    console.log(`${name.padEnd(46)} median ${String(median(xs)).padStart(5)} ms  max ${String(Math.max(...xs)).padStart(5)} ms  (${aim})`);
  console.log(`\n${ROUNDS} rounds, health-monitor and deployer at their defaults:`);
  row('app container killed → incident (event)', container_.incident, 'aim ≤ 1,000 ms');
  row('app container killed → serving again', container_.serving, 'aim ≤ 3,000 ms');
  row('app container killed → incident resolved', container_.resolved, '');
  row('baseline: process killed → incident (checks)', checks.incident, 'defaults promise ≤ 3,000 ms');
  console.log(`ratio, event ÷ checks at the median: ${(median(container_.incident) / median(checks.incident)).toFixed(2)}`);
} finally {
  processTarget.kill('SIGKILL');
  await monitor.stop();
  await deployer.deployer.idle();
  await deployer.stop();
  await bus.close();
  await cleanDocker(images.docker, project);
  await authority.close();
  await nats.stop({ removeStore: true });
  rmSync(tmp, { recursive: true, force: true });
}
process.exit(0);
