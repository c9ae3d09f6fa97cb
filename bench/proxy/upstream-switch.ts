// bench/proxy/upstream-switch: an upstream change (PUT moving an existing route to another
// upstream) → the new upstream serving, with the Lua balancer (no reload) next to the reload
// path (NGINX_LUA=off) and a bare `nginx -s reload` on that same nginx, all in one run; then
// 20 keep-alive clients during 100 upstream changes in each mode (connection errors, non-2xx);
// and a structural change (PUT of a new route → serving: nginx -t + reload) next to a hand-written
// route file + bare `nginx -s reload` → serving on the same nginx, in each mode.
// Run: cd services/proxy-manager && corepack pnpm run bench:upstreams
//   (BENCH_ROUTES=1000 BENCH_SAMPLES=20 BENCH_MODES=off,auto BENCH_FILL_WAVE=100)
import { execFile, spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { Agent, request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Bus } from '../../services/proxy-manager/node_modules/@droplet-mesh/udc-kit/dist/index.js';
import { createProxyManager } from '../../services/proxy-manager/src/app.js';
import { freePort, quiet, startUpstream, viaNginx, type Upstream } from '../../services/proxy-manager/test/support/http.js';

const run = promisify(execFile);
const ROUTES = Number(process.env.BENCH_ROUTES ?? 1000);
const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 20);
/** Routes PUT at once while filling (10,000 routes: 1,000, so the fill takes few reloads). */
const FILL_WAVE = Number(process.env.BENCH_FILL_WAVE ?? 100);
/** Structural samples (each is two reloads of the whole config; at 10,000 routes a few suffice). */
const STRUCTURAL_SAMPLES = Number(process.env.BENCH_STRUCTURAL_SAMPLES ?? SAMPLES);
const MODES = (process.env.BENCH_MODES ?? 'off,auto').split(',') as Array<'off' | 'auto'>;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const p95 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * 0.95))];
const ms = (n: number) => `${n.toFixed(1)} ms`;

async function waitServes(port: number, host: string, marker: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      if ((await viaNginx(port, host, '/', 2000)).body.includes(marker)) return;
    } catch {
      /* not yet */
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  throw new Error(`${host} did not serve ${marker} within ${timeoutMs} ms`);
}

interface Mesh {
  pm: ReturnType<typeof createProxyManager>;
  httpPort: number;
  put(name: string, port: number): Promise<number>;
  close(): Promise<void>;
}

async function startMesh(nginxLua: 'auto' | 'off'): Promise<Mesh> {
  const dataDir = mkdtempSync(join(tmpdir(), 'bench-upstreams-'));
  chmodSync(dataDir, 0o755);
  const natsPort = await freePort();
  const nats = spawn(
    process.env.NATS_SERVER_BIN ?? 'nats-server',
    ['-js', '-a', '127.0.0.1', '-p', String(natsPort), '-sd', join(dataDir, 'nats')],
    { stdio: 'ignore' },
  );
  const bus = await Bus.connect({ url: `nats://127.0.0.1:${natsPort}`, name: 'bench-upstreams', connectTimeoutMs: 10_000 });
  const token = 'bench-token-0123456789abcdef';
  const httpPort = await freePort();
  const pm = createProxyManager({
    env: {
      PORT: '0',
      NATS_URL: `nats://127.0.0.1:${natsPort}`,
      DATA_DIR: dataDir,
      PROXY_HTTP_PORT: String(httpPort),
      PROXY_HTTPS_PORT: String(await freePort()),
      LOG_LEVEL: 'warn',
      ALLOW_SIMPLE_TOKEN: 'true',
      API_TOKEN: token,
      UPSTREAM_RECHECK_INTERVAL_S: '0',
      // Each change on its own: the figure is one change's latency, not a batch's.
      RECONCILE_COALESCE_MS: '0',
      NGINX_LUA: nginxLua,
      // Filling thousands of routes on a loaded machine: a reload may take long to confirm.
      NGINX_RELOAD_TIMEOUT_MS: '60000',
    },
    bus,
    logDestination: quiet,
  });
  const { url } = await pm.start({ port: 0 });
  if ((nginxLua === 'auto') !== !!pm.dynamic) throw new Error(`NGINX_LUA=${nginxLua} but the Lua balancer is ${pm.dynamic ? 'on' : 'off'}`);
  const put = async (name: string, port: number) => {
    const res = await fetch(`${url}/proxies/${name}`, {
      method: 'PUT',
      headers: { Authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ domain: `${name}.bench`, require_healthy: false, upstreams: [{ host: '127.0.0.1', port }] }),
    });
    const text = await res.text();
    if (res.status >= 300) console.error(`  PUT ${name} (NGINX_LUA=${nginxLua}): ${res.status} ${text.slice(0, 400)}`);
    return res.status;
  };
  return {
    pm,
    httpPort,
    put,
    async close() {
      await pm.stop();
      await bus.close();
      nats.kill('SIGTERM');
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

async function fill(m: Mesh, port: number): Promise<void> {
  for (let done = 0; done < ROUTES; done += FILL_WAVE) {
    const n = Math.min(FILL_WAVE, ROUTES - done);
    const codes = await Promise.all(Array.from({ length: n }, (_, i) => m.put(`r-${done + i}`, port)));
    if (codes.some((c) => c >= 300)) throw new Error(`fill failed: ${codes.find((c) => c >= 300)}`);
  }
  await waitServes(m.httpPort, `r-${ROUTES - 1}.bench`, 'upstream');
}

/** PUT moving r-0 between the upstreams → the new one serving. */
async function switchTimes(m: Mesh, blue: Upstream, green: Upstream): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    const to = i % 2 === 0 ? green : blue;
    const t0 = performance.now();
    const code = await m.put('r-0', to.port);
    if (code !== 200) throw new Error(`switch ${i}: ${code}`);
    await waitServes(m.httpPort, 'r-0.bench', `upstream ${to.name}`);
    out.push(performance.now() - t0);
  }
  return out;
}

/** Hand-edit r-1's file and `nginx -s reload` → serving (the static files of NGINX_LUA=off only). */
async function bareReloadTimes(m: Mesh, blue: Upstream, green: Upstream): Promise<number[]> {
  const args = ['-p', m.pm.paths.prefix, '-c', m.pm.paths.confFile, '-e', m.pm.paths.errorLog];
  const file = `${m.pm.paths.sitesAvailable}/mesh-r-1.conf`;
  const original = await readFile(file, 'utf8');
  const out: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    const to = i % 2 === 0 ? green : blue;
    await writeFile(file, original.split(`127.0.0.1:${blue.port}`).join(`127.0.0.1:${to.port}`));
    const t0 = performance.now();
    await run(m.pm.config.NGINX_BIN, [...args, '-s', 'reload']);
    await waitServes(m.httpPort, 'r-1.bench', `upstream ${to.name}`);
    out.push(performance.now() - t0);
  }
  await writeFile(file, original);
  await run(m.pm.config.NGINX_BIN, [...args, '-s', 'reload']);
  return out;
}

/**
 * A structural change: PUT of a new route → serving (nginx -t, then a reload), next to the same
 * change by hand on the same nginx: a copy of r-1's file under a new domain + `nginx -s reload` → serving.
 */
async function structuralTimes(m: Mesh, blue: Upstream): Promise<{ put: number[]; bare: number[] }> {
  const args = ['-p', m.pm.paths.prefix, '-c', m.pm.paths.confFile, '-e', m.pm.paths.errorLog];
  const template = await readFile(`${m.pm.paths.sitesAvailable}/mesh-r-1.conf`, 'utf8');
  const put: number[] = [];
  const bare: number[] = [];
  for (let i = 0; i < STRUCTURAL_SAMPLES; i++) {
    let t0 = performance.now();
    const code = await m.put(`s-${i}`, blue.port);
    if (code !== 201) throw new Error(`structural ${i}: ${code}`);
    await waitServes(m.httpPort, `s-${i}.bench`, `upstream ${blue.name}`, 120_000);
    put.push(performance.now() - t0);
    // A static upstream block needs its own name; a balanced route's file names none.
    let text = template.split('r-1.bench').join(`bare-${i}.bench`);
    if (text.includes('upstream mesh_r_1 {')) text = text.split('mesh_r_1').join(`bare_${i}`);
    await writeFile(`${m.pm.paths.sitesEnabled}/bare-${i}.conf`, text);
    t0 = performance.now();
    await run(m.pm.config.NGINX_BIN, [...args, '-s', 'reload']);
    // r-1's copy serves whichever upstream r-1 was last switched to.
    await waitServes(m.httpPort, `bare-${i}.bench`, 'upstream ', 120_000);
    bare.push(performance.now() - t0);
  }
  return { put, bare };
}

/** 20 keep-alive clients (one connection each, no retry) on r-0..r-19 during 100 upstream changes of those routes. */
async function keepAliveDuringChanges(m: Mesh, blue: Upstream, green: Upstream) {
  let ok = 0;
  let non2xx = 0;
  let errors = 0;
  let loading = true;
  const agents = Array.from({ length: 20 }, () => new Agent({ keepAlive: true, maxSockets: 1 }));
  const one = (agent: Agent, host: string) =>
    new Promise<void>((resolve) => {
      const req = httpRequest({ host: '127.0.0.1', port: m.httpPort, path: '/', headers: { host }, agent, timeout: 5000 }, (res) => {
        res.resume();
        res.on('end', () => {
          if (res.statusCode && res.statusCode < 300) ok++;
          else non2xx++;
          resolve();
        });
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', () => {
        errors++;
        resolve();
      });
      req.end();
    });
  const clients = agents.map(async (agent, c) => {
    while (loading) await one(agent, `r-${c}.bench`);
  });
  const reloads = m.pm.nginx.reloads;
  // A refused change is counted (and printed), not fatal: the load figures still mean something.
  let refused = 0;
  for (let i = 0; i < 100; i++) {
    const code = await m.put(`r-${i % 20}`, Math.floor(i / 20) % 2 === 0 ? green.port : blue.port);
    if (code !== 200) refused++;
  }
  loading = false;
  await Promise.all(clients);
  for (const a of agents) a.destroy();
  return { ok, non2xx, errors, reloads: m.pm.nginx.reloads - reloads, refused };
}

const blue = await startUpstream('blue');
const green = await startUpstream('green');
const date = new Date().toISOString().slice(0, 10);
try {
  const figures: Record<
    string,
    {
      put: number[];
      load: Awaited<ReturnType<typeof keepAliveDuringChanges>>;
      bare?: number[];
      test: number[];
      structural: { put: number[]; bare: number[] };
    }
  > = {};
  for (const mode of MODES) {
    const m = await startMesh(mode);
    try {
      await fill(m, blue.port);
      // What a structural change pays for the config parse: nginx -t over the whole config.
      const test: number[] = [];
      for (let i = 0; i < 5; i++) {
        const t0 = performance.now();
        if (!(await m.pm.nginx.test()).ok) throw new Error('nginx -t failed');
        test.push(performance.now() - t0);
      }
      const bare = mode === 'off' ? await bareReloadTimes(m, blue, green) : undefined;
      const put = await switchTimes(m, blue, green);
      const load = await keepAliveDuringChanges(m, blue, green);
      const structural = await structuralTimes(m, blue);
      figures[mode] = { put, load, bare, test, structural };
    } finally {
      await m.close();
    }
  }
  const bare = figures.off?.bare;
  console.log(`bench/proxy/upstream-switch ${date}, ${ROUTES} routes, ${SAMPLES} samples`);
  if (bare) console.log(`  bare nginx -s reload → serving (baseline):   median ${ms(median(bare))} p95 ${ms(p95(bare))}`);
  for (const [mode, label] of [
    ['off', 'reload path (NGINX_LUA=off)'],
    ['auto', 'Lua balancer (NGINX_LUA=auto)'],
  ] as const) {
    const f = figures[mode];
    if (!f) continue;
    const ratio = bare ? ` | ${(median(f.put) / median(bare)).toFixed(2)}x the bare reload` : '';
    console.log(`  upstream change PUT → serving, ${label.padEnd(30)} median ${ms(median(f.put))} p95 ${ms(p95(f.put))}${ratio}`);
    const s = f.structural;
    if (s.put.length > 0)
      console.log(
        `    structural change (new route) PUT → serving: median ${ms(median(s.put))} p95 ${ms(p95(s.put))} | hand-written file + bare nginx -s reload → serving: median ${ms(median(s.bare))} | difference ${ms(median(s.put) - median(s.bare))}`,
      );
    else console.log('    structural change: skipped (BENCH_STRUCTURAL_SAMPLES=0)');
    console.log(`    nginx -t over the whole config (what a structural change parses): median ${ms(median(f.test))}`);
    console.log(
      `    20 keep-alive clients during 100 upstream changes: ${f.load.ok} ok, ${f.load.non2xx} non-2xx, ${f.load.errors} connection errors, ${f.load.reloads} reloads, ${f.load.refused} changes refused`,
    );
  }
} finally {
  await blue.close();
  await green.close();
}
