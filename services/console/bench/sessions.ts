// bench: what keeping sessions in NATS costs a request. Sessions live in a JetStream KV bucket
// (the token sealed); every request with the cookie reads its entry, so a sign-out on any
// replica is refused at once. Measured in one run, sequential requests over keep-alive:
//   baseline  GET /health of the console (no session)
//   session   GET /session (one KV read, the decrypted session reused)
//   forward   GET /api/example/version through the console, next to the same call straight to
//             the example droplet with the bearer token
// Run: cd services/console && node --import tsx bench/sessions.ts   (after `build`)
import {
  closeAll,
  operatorToken,
  startConsole,
  startExample,
  startNatsServer,
  startRegistry,
  ADMIN_KEY,
  type Closer,
} from '../test/support/mesh.js';

const N = Number(process.env.BENCH_REQUESTS ?? 2000);
const log = (line: string) => process.stdout.write(`${line}\n`);
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((xs.length * p) / 100))];

async function timed(url: string, headers: Record<string, string>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < N; i++) {
    const t = performance.now();
    const r = await fetch(url, { headers });
    await r.arrayBuffer();
    if (r.status !== 200) throw new Error(`${url}: HTTP ${r.status}`);
    out.push(performance.now() - t);
  }
  return out;
}

const closers: Closer[] = [];
const nats = await startNatsServer();
try {
  const registry = await startRegistry(nats.url);
  closers.push(registry);
  const example = await startExample(nats.url, registry.url);
  closers.push(example);
  const consoleApp = await startConsole(nats.url, registry.url, { env: { CONSOLE_DISCOVERY_CACHE_MS: '3000' } });
  closers.push(consoleApp);
  const res = await fetch(`${consoleApp.url}/session`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ admin_key: ADMIN_KEY }),
  });
  const cookie = (res.headers.get('set-cookie') ?? '').split(';')[0];
  const bearer = { authorization: `Bearer ${await operatorToken(registry.url)}` };

  // Warm-up: JIT, keep-alive connections, the discovery cache.
  for (const [url, h] of [
    [`${consoleApp.url}/health`, {}],
    [`${consoleApp.url}/session`, { cookie }],
    [`${consoleApp.url}/api/example/version`, { cookie }],
    [`${example.url}/version`, bearer],
  ] as const)
    for (let i = 0; i < 200; i++) await (await fetch(url, { headers: h })).arrayBuffer();

  const rows: Array<[string, number[]]> = [];
  rows.push(['console /health (baseline, no session)', await timed(`${consoleApp.url}/health`, {})]);
  rows.push(['console /session (KV read per request)', await timed(`${consoleApp.url}/session`, { cookie })]);
  rows.push(['example /version direct (baseline)', await timed(`${example.url}/version`, bearer)]);
  rows.push(['example /version through the console', await timed(`${consoleApp.url}/api/example/version`, { cookie })]);
  const p50 = Object.fromEntries(rows.map(([k, v]) => [k, pct(v, 50)]));
  log(`console sessions in NATS KV: ${N} sequential requests each`);
  log('| request | p50 ms | p95 ms | ratio |');
  log('| --- | ---: | ---: | ---: |');
  for (const [k, v] of rows) {
    const base = k.startsWith('console') ? p50[rows[0][0]] : p50[rows[2][0]];
    log(`| ${k} | ${pct(v, 50).toFixed(2)} | ${pct(v, 95).toFixed(2)} | ${(pct(v, 50) / base).toFixed(2)} |`);
  }
} finally {
  await closeAll(closers, nats);
}
