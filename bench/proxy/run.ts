// bench/proxy: time from PUT to the new route answering through nginx at 1, 100 and
// 1,000 existing routes, next to a bare `nginx -s reload` measured in the same run;
// then a request load on existing routes during 100 route changes (non-2xx count).
// Run: cd services/proxy-manager && corepack pnpm run bench
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { Agent, request as httpRequest } from 'node:http';
import { promisify } from 'node:util';
import { spawn } from 'node:child_process';
import { mkdtempSync, chmodSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Bus } from '../../services/proxy-manager/node_modules/@droplet-mesh/udc-kit/dist/index.js';
import { createProxyManager } from '../../services/proxy-manager/src/app.js';
import { freePort, quiet, startUpstream, viaNginx } from '../../services/proxy-manager/test/support/http.js';

const run = promisify(execFile);
const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 10);
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
    await new Promise((r) => setTimeout(r, 2));
  }
  throw new Error(`${host} did not serve ${marker} within ${timeoutMs} ms`);
}

const blue = await startUpstream('blue');
const green = await startUpstream('green');
// Real nats-server with JetStream and the droplet's own nginx, all on 127.0.0.1.
const dataDir = mkdtempSync(join(tmpdir(), 'bench-proxy-'));
chmodSync(dataDir, 0o755);
const natsPort = await freePort();
const nats = spawn(
  process.env.NATS_SERVER_BIN ?? 'nats-server',
  ['-js', '-a', '127.0.0.1', '-p', String(natsPort), '-sd', join(dataDir, 'nats')],
  { stdio: 'ignore' },
);
const bus = await Bus.connect({ url: `nats://127.0.0.1:${natsPort}`, name: 'bench-proxy', connectTimeoutMs: 10_000 });
const API_TOKEN = 'bench-token-0123456789abcdef';
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
    API_TOKEN,
    UPSTREAM_RECHECK_INTERVAL_S: '0',
    // The reload path: its baseline hand-edits an address in a route file, which balanced
    // routes do not hold (upstream-switch.ts measures the Lua balancer).
    NGINX_LUA: 'off',
  },
  bus,
  logDestination: quiet,
});
const { url: apiUrl } = await pm.start({ port: 0 });
const h = {
  pm,
  httpPort,
  async close() {
    await pm.stop();
    await bus.close();
    nats.kill('SIGTERM');
    rmSync(dataDir, { recursive: true, force: true });
  },
};
const auth = { Authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/json' };
const call = async (method: string, path: string, body?: unknown) => {
  const res = await fetch(`${apiUrl}${path}`, { method, headers: auth, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: res.status, body: (await res.json().catch(() => undefined)) as unknown };
};
const put = (name: string, port: number) =>
  call('PUT', `/proxies/${name}`, { domain: `${name}.bench`, require_healthy: false, upstreams: [{ host: '127.0.0.1', port }] });
const nginxArgs = ['-p', h.pm.paths.prefix, '-c', h.pm.paths.confFile, '-e', h.pm.paths.errorLog];

const rows: string[] = [];
try {
  let existing = 0;
  for (const target of [1, 100, 1000]) {
    // Fill up to `target` existing routes (in bursts of 100: the reconciler coalesces them).
    while (existing < target) {
      const n = Math.min(100, target - existing);
      const res = await Promise.all(Array.from({ length: n }, (_, i) => put(`r-${existing + i}`, blue.port)));
      if (res.some((r) => r.status >= 300)) throw new Error(`fill failed: ${JSON.stringify(res.find((r) => r.status >= 300)?.body)}`);
      existing += n;
    }
    await waitServes(h.httpPort, `r-${existing - 1}.bench`, 'upstream blue');

    // Baseline, same nginx, same routes: hand-edit one file, `nginx -s reload`, wait until it serves.
    const bareReturn: number[] = [];
    const bareServe: number[] = [];
    const file = `${h.pm.paths.sitesAvailable}/mesh-r-0.conf`;
    const original = await readFile(file, 'utf8');
    for (let i = 0; i < SAMPLES; i++) {
      const [from, to] = i % 2 === 0 ? [blue, green] : [green, blue];
      await writeFile(file, original.split(`127.0.0.1:${blue.port}`).join(`127.0.0.1:${to.port}`));
      const t0 = performance.now();
      await run(h.pm.config.NGINX_BIN, [...nginxArgs, '-s', 'reload']);
      bareReturn.push(performance.now() - t0);
      await waitServes(h.httpPort, 'r-0.bench', `upstream ${to.name}`);
      bareServe.push(performance.now() - t0);
      void from;
    }
    await writeFile(file, original);
    await run(h.pm.config.NGINX_BIN, [...nginxArgs, '-s', 'reload']);
    await waitServes(h.httpPort, 'r-0.bench', 'upstream blue');

    // The droplet: PUT a new route, then poll nginx until it answers from the new upstream.
    const putAnswered: number[] = [];
    const putServing: number[] = [];
    for (let i = 0; i < SAMPLES; i++) {
      const name = `probe-${target}-${i}`;
      const t0 = performance.now();
      const res = await put(name, green.port);
      putAnswered.push(performance.now() - t0);
      if (res.status !== 201) throw new Error(`PUT ${name}: ${res.status} ${JSON.stringify(res.body)}`);
      await waitServes(h.httpPort, `${name}.bench`, 'upstream green');
      putServing.push(performance.now() - t0);
      await call('DELETE', `/proxies/${name}`);
    }
    rows.push(
      `${String(target).padStart(5)} routes | PUT→serving median ${ms(median(putServing))} p95 ${ms(p95(putServing))} (PUT answered ${ms(median(putAnswered))}) | bare nginx -s reload→serving ${ms(median(bareServe))} (command returned ${ms(median(bareReturn))}) | ratio ${(median(putServing) / median(bareServe)).toFixed(2)}x`,
    );
    console.log(rows[rows.length - 1]);
  }

  // Load on existing routes during 100 route changes.
  const agent = new Agent({ keepAlive: true, maxSockets: 16 });
  let ok = 0;
  let bad = 0;
  let errors = 0;
  const statuses = new Map<number, number>();
  let loading = true;
  const one = (host: string) =>
    new Promise<void>((resolve) => {
      const req = httpRequest({ host: '127.0.0.1', port: h.httpPort, path: '/', headers: { host }, agent, timeout: 5000 }, (res) => {
        res.resume();
        res.on('end', () => {
          if (res.statusCode && res.statusCode >= 200 && res.statusCode < 300) ok++;
          else {
            bad++;
            statuses.set(res.statusCode ?? 0, (statuses.get(res.statusCode ?? 0) ?? 0) + 1);
          }
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
  const workers = Array.from({ length: 8 }, async (_, w) => {
    let i = 0;
    while (loading) await one(`r-${(w * 97 + i++ * 13) % 1000}.bench`);
  });
  const t0 = performance.now();
  for (let i = 0; i < 100; i++) {
    // Each change moves one existing route between upstreams (both healthy): traffic must not notice.
    const res = await put(`r-${i}`, i % 2 === 0 ? green.port : blue.port);
    if (res.status !== 200) throw new Error(`change ${i}: ${res.status}`);
  }
  const changesMs = performance.now() - t0;
  loading = false;
  await Promise.all(workers);
  agent.destroy();
  const line = `load during 100 route changes (${(changesMs / 1000).toFixed(1)} s, 1000 routes): ${ok} ok, ${bad} non-2xx ${bad ? JSON.stringify(Object.fromEntries(statuses)) : ''}, ${errors} connection errors`;
  rows.push(line);
  console.log(line);
  console.log(`nginx -t runs: ${h.pm.nginx.tests}, reloads: ${h.pm.nginx.reloads}`);
} finally {
  await h.close();
  await blue.close();
  await green.close();
}
