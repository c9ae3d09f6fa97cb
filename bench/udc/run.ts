// bench/udc: req/s and p99 of udc-kit's /health and JWT-protected /state next to a bare
// Express 5 hello route, measured in the same run with autocannon. See README.md.
import { fileURLToPath } from 'node:url';
import { startServerChild } from '../support/server-child.js';
import autocannon from 'autocannon';
import { fmt, median } from './stats.js';

const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 4);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 20);
const WARMUP_S = Number(process.env.BENCH_WARMUP_S ?? 2);

interface Targets {
  bare: string;
  health: string;
  state: string;
  token: string;
}

// The three targets share one child process and take turns, so they see the same machine.
const targets = await startServerChild<Targets>(fileURLToPath(new URL('./servers.ts', import.meta.url)));

async function load(url: string, seconds: number, headers: Record<string, string> = {}) {
  const r = await autocannon({ url, connections: CONNECTIONS, duration: seconds, headers });
  if (r.non2xx > 0 || r.errors > 0) throw new Error(`${url}: ${r.non2xx} non-2xx and ${r.errors} errors`);
  return { rps: r.requests.average, p99: r.latency.p99, p50: r.latency.p50 };
}

const cases = [
  { name: 'bare Express /hello', url: targets.bare, headers: {} },
  { name: 'udc-kit /health', url: targets.health, headers: {} },
  { name: 'udc-kit /state (JWT)', url: targets.state, headers: { authorization: `Bearer ${targets.token}` } },
] as const;

console.log(`bench/udc: ${ROUNDS} rounds × ${DURATION_S} s per target, ${CONNECTIONS} connections, servers in child pid ${targets.pid}`);
for (const c of cases) await load(c.url, WARMUP_S, c.headers); // JIT, JWKS cache, connection pools
const results = new Map<string, { rps: number[]; p99: number[]; p50: number[] }>(cases.map((c) => [c.name, { rps: [], p99: [], p50: [] }]));
for (let round = 1; round <= ROUNDS; round++) {
  for (const c of cases) {
    const r = await load(c.url, DURATION_S, c.headers);
    const acc = results.get(c.name)!;
    acc.rps.push(r.rps);
    acc.p99.push(r.p99);
    acc.p50.push(r.p50);
    console.log(`  round ${round} ${c.name.padEnd(22)} ${fmt(r.rps, 0).padStart(7)} req/s  p50 ${r.p50} ms  p99 ${r.p99} ms`);
  }
}

const summary = cases.map((c) => {
  const acc = results.get(c.name)!;
  return { name: c.name, rps: median(acc.rps), p50: median(acc.p50), p99: median(acc.p99) };
});
const base = summary[0];
console.log('\nmedian over rounds            req/s   p50 ms   p99 ms   req/s vs bare   aim');
for (const s of summary) {
  const ratio = s.rps / base.rps;
  const aim = s.name.includes('/health') ? '≥ 0.85' : s.name.includes('/state') ? '≥ 0.70' : '';
  console.log(
    `${s.name.padEnd(26)} ${fmt(s.rps, 0).padStart(8)} ${String(s.p50).padStart(8)} ${String(s.p99).padStart(8)}   ${fmt(ratio).padStart(13)}   ${aim}`,
  );
}
targets.stop();
