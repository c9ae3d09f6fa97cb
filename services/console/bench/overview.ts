// bench: the console's first load and the overview becoming interactive in Debian's chromium,
// with a mesh holding 1,000 instances (three cloud emulators), 500 routes (a real proxy-manager
// and nginx) and the registry, proxy-manager, multi-cloud-manager and health-monitor running.
// Baseline, measured in the same run: the same API calls the overview makes, sent straight to
// the droplets from Node in parallel (what any client pays before it can draw anything).
// Aims: JavaScript <= 150 KB gzipped; overview interactive <= 1 s.
// Not here: the deployer (it needs the Docker Engine; the overview asks it only for running and
// queued deployments, so the size of its history does not reach the page).
// Run: cd services/console && corepack pnpm run bench   (after `build`)
import { createServer } from 'node:http';
import { chromium } from 'playwright-core';
import {
  ADMIN_KEY,
  CHROMIUM,
  CHROMIUM_ARGS,
  closeAll,
  operatorToken,
  startConsole,
  startHealthMonitor,
  startMultiCloud,
  startNatsServer,
  startProxyManager,
  startRegistry,
  type Closer,
} from '../test/support/mesh.js';

const INSTANCES = Number(process.env.BENCH_INSTANCES ?? 1000);
const ROUTES = Number(process.env.BENCH_ROUTES ?? 500);
const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 7);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const log = (line: string) => process.stdout.write(`${line}\n`);

const closers: Closer[] = [];
const nats = await startNatsServer();
try {
  const registry = await startRegistry(nats.url);
  closers.push(registry);
  const upstream = createServer((_req, res) => res.end('ok'));
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', () => r()));
  closers.push({ close: () => new Promise<void>((r) => upstream.close(() => r())) });
  const upstreamPort = (upstream.address() as { port: number }).port;
  const pm = await startProxyManager(nats.url, registry.url);
  closers.push(pm);
  const mcm = await startMultiCloud(nats.url, registry.url, Math.ceil(INSTANCES / 3), false);
  closers.push(mcm);
  const hm = await startHealthMonitor(nats.url, registry.url, []);
  closers.push(hm);
  const consoleApp = await startConsole(nats.url, registry.url, { env: { CONSOLE_DISCOVERY_CACHE_MS: '3000' } });
  closers.push(consoleApp);

  const token = await operatorToken(registry.url);
  const auth = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  const t0 = Date.now();
  for (let i = 0; i < ROUTES; i += 20) {
    await Promise.all(
      Array.from({ length: Math.min(20, ROUTES - i) }, (_, k) =>
        fetch(`${pm.url}/proxies/bench-${i + k}`, {
          method: 'PUT',
          headers: auth,
          body: JSON.stringify({ domain: `r${i + k}.bench.test`, upstream_host: '127.0.0.1', upstream_port: upstreamPort }),
        }).then((r) => {
          if (!r.ok) throw new Error(`route ${i + k}: HTTP ${r.status}`);
        }),
      ),
    );
  }
  log(`set-up: ${ROUTES} routes in ${Date.now() - t0} ms; ${INSTANCES} instances on three emulated providers`);

  // Baseline: the overview's API calls straight to the droplets, in parallel.
  const urls = async () => {
    const list = (await (await fetch(`${registry.url}/droplets?kind=service&per_page=200`, { headers: auth })).json()) as {
      items: Array<{ id: string; url: string }>;
    };
    const at = (id: string) => list.items.find((d) => d.id === id)!.url;
    return [
      `${at('health-monitor')}/incidents?status=active&per_page=10`,
      `${at('multi-cloud-manager')}/multi/summary`,
      ...list.items.map((d) => `${d.url}/health`),
    ];
  };
  const direct: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    const s = performance.now();
    await Promise.all((await urls()).map((u) => fetch(u, { headers: auth }).then((r) => r.arrayBuffer())));
    direct.push(performance.now() - s);
  }

  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 30_000 });
  closers.push({ close: () => browser.close() });
  const signIn = await fetch(`${consoleApp.url}/session`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ admin_key: ADMIN_KEY }),
  });
  const cookie = (signIn.headers.get('set-cookie') ?? '').split(';')[0].split('=');
  const overview: number[] = [];
  const routesPage: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    // A fresh context each time: an empty cache, as on a first visit.
    const context = await browser.newContext();
    await context.addCookies([{ name: cookie[0], value: cookie[1], url: consoleApp.url, httpOnly: true, sameSite: 'Strict' }]);
    const page = await context.newPage();
    page.setDefaultTimeout(30_000);
    await page.goto(`${consoleApp.url}/`, { waitUntil: 'commit' });
    // Interactive: every section drawn with its data (droplets with their health, incidents, cost).
    await page.locator('tr[data-droplet="multi-cloud-manager"] td:nth-child(3) .badge', { hasText: 'active' }).waitFor();
    await page.locator('section[aria-labelledby="fleet-h"] tbody tr').first().waitFor();
    await page.locator('section[aria-labelledby="incidents-h"] p').first().waitFor();
    overview.push(await page.evaluate(() => performance.now()));
    const s = performance.now();
    await page.getByRole('link', { name: 'Routes' }).click();
    await page.locator('tr[data-route="bench-0"]').waitFor();
    routesPage.push(performance.now() - s);
    await context.close();
  }
  const js = consoleApp.web().scriptBytesGzipped();
  log('');
  log('| measure                                                      | median   | aim      |');
  log('| ------------------------------------------------------------ | -------- | -------- |');
  log(`| JavaScript of the first load, gzipped                        | ${(js / 1024).toFixed(1).padStart(5)} KB | <= 150 KB |`);
  log(`| overview interactive (navigation start → every section drawn) | ${median(overview).toFixed(0).padStart(5)} ms | <= 1000 ms |`);
  log(`| baseline: the same API calls straight to the droplets         | ${median(direct).toFixed(0).padStart(5)} ms |          |`);
  log(
    `| routes page drawn with ${ROUTES} routes (page 1 of 25 each)        | ${median(routesPage).toFixed(0).padStart(5)} ms |          |`,
  );
  log('');
  log(`samples: overview ${overview.map((x) => x.toFixed(0)).join(', ')} ms; baseline ${direct.map((x) => x.toFixed(0)).join(', ')} ms`);
  const ok = js <= 150 * 1024 && median(overview) <= 1000;
  log(ok ? 'within the aims' : 'OUTSIDE the aims');
  process.exitCode = ok ? 0 : 1;
} finally {
  await closeAll(closers, nats);
}
