// bench/health: detection time, false incidents with a degraded monitor, check throughput.
// Run: cd services/health-monitor && corepack pnpm run build && corepack pnpm run bench
// Knobs (env): BENCH_KILLS (20), BENCH_FALSE_RUN_S (300), BENCH_THROUGHPUT_S (20), BENCH_TARGETS (1000),
// BENCH_ONLY (detection,false,throughput), BENCH_MONITOR_NODE_ARGS
import { spawn, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { cpuSeconds } from '../support/proc.js';

const serviceDir = fileURLToPath(new URL('../../services/health-monitor/', import.meta.url));
const requireFromService = createRequire(`${serviceDir}package.json`);
const load = async (spec: string) => import(pathToFileURL(requireFromService.resolve(spec)).href);
const { Bus } = await load('@droplet-mesh/udc-kit');
const { Agent, request } = await load('undici');
const { freePort, waitFor, startNatsServer } = (await load(
  '@droplet-mesh/udc-kit/testing',
)) as typeof import('@droplet-mesh/udc-kit/testing');

const KILLS = Number(process.env.BENCH_KILLS ?? 20);
const FALSE_RUN_S = Number(process.env.BENCH_FALSE_RUN_S ?? 300);
const THROUGHPUT_S = Number(process.env.BENCH_THROUGHPUT_S ?? 20);
const THROUGHPUT_TARGETS = Number(process.env.BENCH_TARGETS ?? 1000);
const TARGET_SCRIPT = `${serviceDir}test/fixtures/target-server.mjs`;

// Whatever happens (a failed wait throws), no process this benchmark started outlives it.
const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

interface Proc {
  child: ChildProcess;
  kill(sig?: NodeJS.Signals): Promise<void>;
}
function run(args: string[], env: Record<string, string> = {}, cwd?: string): Proc {
  const child = spawn(process.execPath, args, {
    cwd,
    env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'error', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.add(child);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    child,
    async kill(sig: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(sig);
      const t = setTimeout(() => child.kill('SIGKILL'), 8000);
      await exited;
      clearTimeout(t);
    },
  };
}
async function startTargets(ports: number[]): Promise<Proc> {
  const p = run([TARGET_SCRIPT, ...ports.map(String)]);
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('target server did not start')), 10_000);
    p.child.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && (clearTimeout(t), resolve()));
  });
  return p;
}
// BENCH_MONITOR_NODE_ARGS: node flags for the monitors (e.g. `--cpu-prof --cpu-prof-dir=/tmp/p` to profile one).
const monitorNodeArgs = process.env.BENCH_MONITOR_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
const monitor = (env: Record<string, string>) => run([...monitorNodeArgs, 'dist/main.js'], env, serviceDir);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return { min: s[0], median: s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2, max: s[s.length - 1] };
};
const fmt = (x: { min: number; median: number; max: number }) => `min ${x.min} ms, median ${x.median} ms, max ${x.max} ms`;
async function blackhole(): Promise<{ url: string; close(): void }> {
  const port = await freePort();
  const server = createServer(() => undefined);
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
  return { url: `http://127.0.0.1:${port}/health`, close: () => server.close() };
}
function clusterEnv(nats: string, id: string, port: number, targets: unknown[], extra: Record<string, string> = {}) {
  return {
    MONITOR_ID: id,
    PORT: String(port),
    NATS_URL: nats,
    CHECK_INTERVAL_MS: '1000',
    CHECK_TIMEOUT_MS: '500',
    RECHECK_DELAY_MS: '200',
    FAILS_TO_SUSPECT: '2',
    OKS_TO_RECOVER: '2',
    MEMBER_HEARTBEAT_MS: '500',
    MEMBER_TTL_MS: '2000',
    RECOVERY_POLICY: 'alert',
    DIGEST_INTERVAL_MIN: '0',
    STATIC_TARGETS: JSON.stringify(targets),
    ...extra,
  };
}

/** Baseline detector: one loop, GET every interval, "down" at the first failure. */
function naiveDetector(url: string, intervalMs: number, onDown: () => void) {
  let stopped = false;
  let wasUp = true;
  void (async () => {
    while (!stopped) {
      const ok = await fetch(url, { signal: AbortSignal.timeout(500) }).then(
        (r) => r.ok,
        () => false,
      );
      if (!ok && wasUp) onDown();
      wasUp = ok;
      await sleep(intervalMs);
    }
  })();
  return () => (stopped = true);
}

async function detection(): Promise<void> {
  const nats = await startNatsServer();
  const bus = await Bus.connect({ url: nats.url, name: 'bench' });
  const port = await freePort();
  let target = await startTargets([port]);
  const targets = [{ id: 'web', url: `http://127.0.0.1:${port}` }];
  const mons = await Promise.all(['b1', 'b2', 'b3'].map(async (id) => monitor(clusterEnv(nats.url, id, await freePort(), targets))));
  const opened: number[] = [];
  const resolved: number[] = [];
  bus.nc.subscribe('health-monitor.incident.opened', { callback: () => opened.push(Date.now()) });
  bus.nc.subscribe('health-monitor.incident.resolved', { callback: () => resolved.push(Date.now()) });
  let naiveDownAt = 0;
  const stopNaive = naiveDetector(`http://127.0.0.1:${port}/health`, 1000, () => (naiveDownAt = Date.now()));
  await sleep(4000);
  const quorum: number[] = [];
  const naive: number[] = [];
  for (let i = 0; i < KILLS; i++) {
    const before = opened.length;
    naiveDownAt = 0;
    const killedAt = Date.now();
    await target.kill('SIGKILL');
    await waitFor('incident opened', () => opened.length > before && naiveDownAt > 0, 15_000, 10);
    quorum.push(opened[before] - killedAt);
    naive.push(naiveDownAt - killedAt);
    target = await startTargets([port]);
    await waitFor('incident resolved', () => resolved.length > before, 20_000, 50);
    await sleep(500 + Math.random() * 1000); // kills land at random points of the check cycle
  }
  stopNaive();
  const q = stats(quorum);
  const n = stats(naive);
  console.log(`detection (kill -9 → incident opened), ${KILLS} kills, 1 s interval, 3 monitors, quorum 2:`);
  console.log(`  health-monitor: ${fmt(q)}`);
  console.log(`  baseline (one prober, first failure = down, same kills): ${fmt(n)}`);
  console.log(
    `  ratio median ${(q.median / n.median).toFixed(2)}x, max ${(q.max / n.max).toFixed(2)}x; incidents opened ${opened.length} for ${KILLS} kills`,
  );
  for (const m of mons) await m.kill();
  await target.kill();
  await bus.close();
  await nats.stop({ removeStore: true });
}

async function falseIncidents(): Promise<void> {
  const nats = await startNatsServer();
  const bus = await Bus.connect({ url: nats.url, name: 'bench' });
  const hole = await blackhole();
  const ports = await Promise.all(Array.from({ length: 5 }, () => freePort()));
  const server = await startTargets(ports);
  const targets = Array.from({ length: 20 }, (_, i) => ({ id: `svc-${i}`, url: `http://127.0.0.1:${ports[i % ports.length]}` }));
  const mons = await Promise.all(
    ['f1', 'f2', 'f3'].map(async (id) =>
      monitor(
        clusterEnv(
          nats.url,
          id,
          await freePort(),
          targets,
          id === 'f3' ? { CHECK_URL_OVERRIDE_FOR_TESTS: JSON.stringify({ '*': hole.url }) } : {},
        ),
      ),
    ),
  );
  let incidents = 0;
  const degradedFailing = new Set<string>();
  const suspectedByDegraded = new Set<string>();
  bus.nc.subscribe('health-monitor.incident.opened', { callback: () => incidents++ });
  bus.nc.subscribe('health-monitor.observations', {
    callback: (_e: unknown, m: { json: <T>() => T }) => {
      for (const o of m.json<
        { monitor_id: string; target_id: string; ok: boolean; consecutive_failures: number; monitor_degraded: boolean }[]
      >())
        if (o.monitor_id === 'f3' && !o.ok && o.consecutive_failures >= 2) {
          suspectedByDegraded.add(o.target_id);
          if (o.monitor_degraded) degradedFailing.add(o.target_id);
        }
    },
  });
  await sleep(FALSE_RUN_S * 1000);
  console.log(`false incidents over ${FALSE_RUN_S} s, 20 healthy targets, 3 monitors, one with its network cut:`);
  console.log(`  health-monitor: ${incidents} incidents`);
  console.log(
    `  baseline (the cut monitor deciding alone): ${suspectedByDegraded.size} targets falsely down; it flagged itself degraded for ${degradedFailing.size}`,
  );
  console.log(`  ratio ${incidents}/${suspectedByDegraded.size}`);
  for (const m of mons) await m.kill();
  await server.kill();
  hole.close();
  await bus.close();
  await nats.stop({ removeStore: true });
}

async function throughput(): Promise<void> {
  const nats = await startNatsServer();
  const bus = await Bus.connect({ url: nats.url, name: 'bench' });
  const ports = await Promise.all(Array.from({ length: 10 }, () => freePort()));
  const server = await startTargets(ports);
  const targets = Array.from({ length: THROUGHPUT_TARGETS }, (_, i) => ({
    id: `t-${i}`,
    url: `http://127.0.0.1:${ports[i % ports.length]}`,
    health_path: `/health/${i}`,
  }));
  // Ask for far more than one process can do (1,000 targets every 100 ms) and see what it sustains.
  const mon = monitor({
    ...clusterEnv(nats.url, 'tp', await freePort(), targets),
    CHECK_INTERVAL_MS: '100',
    CHECK_TIMEOUT_MS: '1000',
    CHECK_CONCURRENCY: '256',
    MONITORS_PER_TARGET: '1',
  });
  let count = 0;
  let failedChecks = 0;
  const errors = new Map<string, number>();
  bus.nc.subscribe('health-monitor.observations', {
    callback: (_err: unknown, msg: { json<T>(): T }) => {
      for (const o of msg.json<{ ok: boolean; error?: string; latency_ms: number }[]>()) {
        count++;
        if (!o.ok) {
          failedChecks++;
          errors.set(o.error ?? '?', (errors.get(o.error ?? '?') ?? 0) + 1);
        }
      }
    },
  });
  await waitFor('checks flowing', () => count > THROUGHPUT_TARGETS, 30_000, 100);
  await sleep(3000);
  const c0 = count,
    f0 = failedChecks,
    t0 = Date.now(),
    cpu0 = cpuSeconds(mon.child.pid!);
  await sleep(THROUGHPUT_S * 1000);
  const rate = (count - c0) / ((Date.now() - t0) / 1000);
  const failedShare = (failedChecks - f0) / Math.max(1, count - c0);
  const cpu = (cpuSeconds(mon.child.pid!) - cpu0) / ((Date.now() - t0) / 1000);
  await mon.kill();

  // Baselines, in this process, over the same URLs at the same concurrency: the bare undici GET loop
  // the issue names (`request()` and `body.dump()`), and the leaner one the monitor's probe uses since
  // (`dispatch()` with a handler that only keeps the status), so neither ratio flatters the monitor.
  const urls = targets.map((t) => `${t.url}${t.health_path}`);
  const loops: Record<string, (agent: InstanceType<typeof Agent>, url: string) => Promise<void>> = {
    'request()': async (agent, url) => {
      const res = await request(url, { dispatcher: agent });
      await res.body.dump();
    },
    'dispatch()': (agent, url) =>
      new Promise<void>((resolve, reject) => {
        const u = new URL(url);
        agent.dispatch(
          { origin: u.origin, path: u.pathname, method: 'GET' },
          {
            onRequestStart: () => undefined,
            onResponseData: () => undefined,
            onResponseEnd: () => resolve(),
            onResponseError: (_c: unknown, e: Error) => reject(e),
          },
        );
      }),
  };
  console.log(
    `checks per second, one monitor, ${THROUGHPUT_TARGETS} targets (${THROUGHPUT_S} s, 2 shared cores, target server on the same machine):`,
  );
  console.log(
    `  health-monitor: ${rate.toFixed(0)} checks/s at ${(cpu * 100).toFixed(0)}% of one core (${(rate / Math.max(cpu, 0.01)).toFixed(0)} checks per CPU-second), ${(failedShare * 100).toFixed(1)}% failed (timeouts when the machine is overloaded)`,
  );
  if (errors.size) console.log(`  failed checks by error: ${[...errors].map(([e, n]) => `${e} ${n}`).join(', ')}`);
  for (const [name, get] of Object.entries(loops)) {
    const agent = new Agent({ keepAliveTimeout: 30_000, connections: 4 });
    let done = 0;
    let stop = false;
    const b0 = Date.now(),
      bcpu0 = process.cpuUsage();
    await Promise.all(
      Array.from({ length: 256 }, async (_, w) => {
        for (let i = w; !stop; i += 256) {
          await get(agent, urls[i % urls.length]);
          done++;
          if (Date.now() - b0 > THROUGHPUT_S * 1000) stop = true;
        }
      }),
    );
    const bsecs = (Date.now() - b0) / 1000;
    const bu = process.cpuUsage(bcpu0);
    const brate = done / bsecs;
    const bcpu = (bu.user + bu.system) / 1e6 / bsecs;
    await agent.close();
    console.log(
      `  baseline (bare undici ${name} GET loop): ${brate.toFixed(0)} GET/s at ${(bcpu * 100).toFixed(0)}% of one core (${(brate / Math.max(bcpu, 0.01)).toFixed(0)} per CPU-second); monitor ÷ baseline: ${(rate / brate).toFixed(2)}x throughput, ${(rate / cpu / (brate / bcpu)).toFixed(2)}x per CPU-second`,
    );
  }
  await server.kill();
  await bus.close();
  await nats.stop({ removeStore: true });
}

const only = process.env.BENCH_ONLY?.split(',');
if (!only || only.includes('detection')) await detection();
if (!only || only.includes('false')) await falseIncidents();
if (!only || only.includes('throughput')) await throughput();
