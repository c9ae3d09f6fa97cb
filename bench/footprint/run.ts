// bench/footprint: each droplet started cold (a new `node services/<name>/dist/main.js`) N
// times against a real nats-server: time from spawn to the first /health 200, and RSS once
// idle; next to a bare Express app started the same way, and to the libraries a droplet must
// use set up without our code (mandated-stack.mjs). See README.md.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { randomBytes } from 'node:crypto';
import { freePort, startNatsServer } from '@droplet-mesh/udc-kit/testing';
import { fmt, median } from '../udc/stats.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const IDLE_MS = Number(process.env.BENCH_IDLE_MS ?? 3000);
const START_DEADLINE_MS = 30_000;
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DROPLETS = ['registry', 'multi-cloud-manager', 'proxy-manager', 'deployer', 'health-monitor', 'console'];

interface Target {
  name: string;
  main: string;
  /** node's arguments before `main`. */
  nodeArgs: readonly string[];
  env: Record<string, string>;
}

// Droplets start with the node arguments users' droplets get (`npm start` and the images' CMD),
// from their one definition; BENCH_DROPLET_NODE_ARGS (space-separated, may be empty) overrides
// it to measure another set, e.g. none.
const { DROPLET_NODE_ARGS } = (await import(pathToFileURL(join(ROOT, 'scripts', 'droplet-node-args.mjs')).href)) as {
  DROPLET_NODE_ARGS: readonly string[];
};
for (const file of ['droplet.Dockerfile', 'proxy-manager.Dockerfile']) {
  const cmd = /^CMD (\[.*\])$/m.exec(readFileSync(join(ROOT, 'deploy', file), 'utf8'))?.[1];
  const expected = JSON.stringify(['node', ...DROPLET_NODE_ARGS, 'dist/main.js']);
  if (!cmd || JSON.stringify(JSON.parse(cmd)) !== expected)
    throw new Error(
      `deploy/${file}: CMD ${cmd} is not ${expected} (scripts/droplet-node-args.mjs): the bench would not start droplets as the images do`,
    );
}
const dropletNodeArgs =
  process.env.BENCH_DROPLET_NODE_ARGS === undefined ? DROPLET_NODE_ARGS : process.env.BENCH_DROPLET_NODE_ARGS.split(/\s+/).filter(Boolean);

const nats = await startNatsServer();
const dataRoot = mkdtempSync(join(tmpdir(), 'bench-footprint-'));
const common = {
  NATS_URL: nats.url,
  LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'info',
  // No REGISTRY_KEY: the droplets do not register (they need the registry for tokens only then).
  REGISTRY_ADMIN_KEY: randomBytes(24).toString('base64url'),
  DEPLOYER_MASTER_KEY: randomBytes(32).toString('base64'),
  CERT_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
  PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
  HOME: process.env.HOME ?? tmpdir(),
};

const bareExpress = fileURLToPath(new URL('./bare-express.mjs', import.meta.url));
const mandatedStack = fileURLToPath(new URL('./mandated-stack.mjs', import.meta.url));
// The baseline as a plain `node app.js`, and (when they differ) with the droplets' node arguments;
// then the floor: the libraries a droplet must use, set up once, without our code.
const targets: Target[] = [{ name: 'bare Express', main: bareExpress, nodeArgs: [], env: {} }];
if (dropletNodeArgs.length > 0) targets.push({ name: 'bare Express +args', main: bareExpress, nodeArgs: dropletNodeArgs, env: {} });
targets.push({ name: 'mandated stack', main: mandatedStack, nodeArgs: dropletNodeArgs, env: {} });
targets.push({ name: 'mandated + dockerode', main: mandatedStack, nodeArgs: dropletNodeArgs, env: { FLOOR_DOCKER: '1' } });
// The droplets that drive Docker Engines are held to the floor that includes dockerode.
const DOCKER_DROPLETS = new Set(['deployer', 'multi-cloud-manager']);
for (const name of DROPLETS) {
  const main = join(ROOT, 'services', name, 'dist', 'main.js');
  if (!existsSync(main)) {
    console.log(`  (${name}: no ${main}; build it to include it)`);
    continue;
  }
  targets.push({ name, main, nodeArgs: dropletNodeArgs, env: {} });
}

function rssMb(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(timer);
}

/** One cold start: ms from spawn to the first /health 200, and RSS (MB) after IDLE_MS of idling. */
async function coldStart(t: Target, run: number): Promise<{ startMs: number; rss: number; status: string }> {
  const port = await freePort();
  const dataDir = join(dataRoot, `${t.name.replace(/\W+/g, '-')}-${run}`);
  const env = {
    ...common,
    ...t.env,
    PORT: String(port),
    HOST: '127.0.0.1',
    DATA_DIR: dataDir,
    // proxy-manager's nginx on free ports, under the run's own directory.
    PROXY_HTTP_PORT: String(await freePort()),
    PROXY_HTTPS_PORT: String(await freePort()),
  };
  const t0 = process.hrtime.bigint();
  const child = spawn(process.execPath, [...t.nodeArgs, t.main], { env, stdio: ['ignore', 'ignore', 'pipe'], cwd: dataRoot });
  let stderr = '';
  child.stderr!.on('data', (c) => (stderr = (stderr + c).slice(-2000)));
  const deadline = Date.now() + START_DEADLINE_MS;
  let startMs = NaN;
  let status = 'no answer';
  try {
    while (Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`${t.name} exited with ${child.exitCode}: ${stderr.trim()}`);
      try {
        const res = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(1000) });
        const body = (await res.json().catch(() => ({}))) as { status?: string };
        status = `${res.status} ${body.status ?? ''}`.trim();
        if (res.status === 200) {
          startMs = Number(process.hrtime.bigint() - t0) / 1e6;
          break;
        }
      } catch {
        // not listening yet
      }
      await sleep(10);
    }
    await sleep(IDLE_MS);
    const rss = child.pid ? rssMb(child.pid) : NaN;
    return { startMs, rss, status };
  } finally {
    await stop(child);
    rmSync(dataDir, { recursive: true, force: true });
  }
}

console.log(
  `bench/footprint: ${RUNS} cold starts per target against nats-server ${nats.url}; RSS read ${IDLE_MS} ms after /health 200; droplets: node ${[...dropletNodeArgs, 'main.js'].join(' ')}`,
);
const rows: { name: string; startMs: number; rss: number; note: string }[] = [];
for (const t of targets) {
  const starts: number[] = [];
  const rss: number[] = [];
  const notes = new Set<string>();
  for (let run = 1; run <= RUNS; run++) {
    try {
      const r = await coldStart(t, run);
      if (Number.isNaN(r.startMs)) notes.add(`/health never 200 in ${START_DEADLINE_MS / 1000} s (last: ${r.status})`);
      else starts.push(r.startMs);
      rss.push(r.rss);
      console.log(`  ${t.name.padEnd(20)} run ${run}: /health 200 after ${fmt(r.startMs, 0)} ms, idle RSS ${fmt(r.rss, 1)} MB`);
    } catch (err) {
      notes.add((err as Error).message.slice(0, 300));
      console.log(`  ${t.name.padEnd(20)} run ${run}: ${(err as Error).message.slice(0, 300)}`);
    }
  }
  rows.push({ name: t.name, startMs: median(starts), rss: median(rss), note: [...notes].join('; ') });
}

const base = rows[0]!;
const floorOf = (name: string) => rows.find((r) => r.name === (DOCKER_DROPLETS.has(name) ? 'mandated + dockerode' : 'mandated stack'))!;
console.log(`\nmedian of ${RUNS}          start→/health 200   × bare   idle RSS MB   × bare   × floor   aim: ≤ 1000 ms, ≤ 60 MB`);
for (const r of rows) {
  console.log(
    `${r.name.padEnd(22)} ${fmt(r.startMs, 0).padStart(14)} ms ${fmt(r.startMs / base.startMs, 1).padStart(8)} ${fmt(r.rss, 1).padStart(13)} ${fmt(r.rss / base.rss, 2).padStart(8)} ${fmt(r.rss / floorOf(r.name).rss, 2).padStart(9)}${r.note ? `   ${r.note}` : ''}`,
  );
}
await nats.stop({ removeStore: true });
rmSync(dataRoot, { recursive: true, force: true });
