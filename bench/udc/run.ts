// bench/udc: req/s and p99 of udc-kit's /health and JWT-protected /state next to a bare
// Express 5 hello route, measured in the same run with autocannon. See README.md.
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { startServerChild } from '../support/server-child.js';
import autocannon from 'autocannon';
import { fmt, median } from './stats.js';
import { cpuSeconds } from '../support/proc.js';

const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 4);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 20);
const WARMUP_S = Number(process.env.BENCH_WARMUP_S ?? 2);

interface Targets {
  bare: string;
  contract: string;
  health: string;
  state: string;
  token: string;
}

// The three targets share one child process and take turns, so they see the same machine.
const targets = await startServerChild<Targets>(fileURLToPath(new URL('./servers.ts', import.meta.url)));

// req/s swings with whatever else the machine runs; the servers' CPU time per request much
// less, so it is reported too (the same ratio, inverted, when the server is the bottleneck).
async function load(url: string, seconds: number, headers: Record<string, string> = {}) {
  const cpu0 = cpuSeconds(targets.pid);
  const r = await autocannon({ url, connections: CONNECTIONS, duration: seconds, headers });
  if (r.non2xx > 0 || r.errors > 0) throw new Error(`${url}: ${r.non2xx} non-2xx and ${r.errors} errors`);
  const cpuUs = ((cpuSeconds(targets.pid) - cpu0) / r.requests.total) * 1e6;
  return { rps: r.requests.average, p99: r.latency.p99, p50: r.latency.p50, cpuUs };
}

// /state is sent a ~1 KB Authorization header that /health and the bare route are not: parsing
// it is HTTP work any server does, so /state is also compared with the bare route sent the same
// header (which it ignores). A third baseline does /state's per-request work (token, log line,
// histogram, correlation id) straight on the stack's libraries (contract-work.ts): /state against
// it is what udc-kit adds, it against the bare route is what the contract's work costs. Each
// row's ratio is against its own baseline, named in the table.
const jwt = { authorization: `Bearer ${targets.token}` };
const cases = [
  { name: 'bare Express /hello', url: targets.bare, headers: {}, baseline: 'bare Express /hello' },
  { name: 'bare /hello + JWT header', url: targets.bare, headers: jwt, baseline: 'bare /hello + JWT header' },
  { name: 'contract work /state', url: targets.contract, headers: jwt, baseline: 'bare /hello + JWT header' },
  { name: 'udc-kit /health', url: targets.health, headers: {}, baseline: 'bare Express /hello' },
  { name: 'udc-kit /state (JWT)', url: targets.state, headers: jwt, baseline: 'bare /hello + JWT header' },
  { name: 'udc-kit /state (JWT)', url: targets.state, headers: jwt, baseline: 'bare Express /hello' },
  { name: 'udc-kit /state (JWT)', url: targets.state, headers: jwt, baseline: 'contract work /state' },
] as const;
const measured = cases.filter((c, i) => cases.findIndex((d) => d.name === c.name) === i);

console.log(`bench/udc: ${ROUNDS} rounds × ${DURATION_S} s per target, ${CONNECTIONS} connections, servers in child pid ${targets.pid}`);
for (const c of measured) await load(c.url, WARMUP_S, c.headers); // JIT, JWKS cache, connection pools
const results = new Map<string, { rps: number[]; p99: number[]; p50: number[]; cpuUs: number[] }>(
  measured.map((c) => [c.name, { rps: [], p99: [], p50: [], cpuUs: [] }]),
);
for (let round = 1; round <= ROUNDS; round++) {
  for (const c of measured) {
    const r = await load(c.url, DURATION_S, c.headers);
    const acc = results.get(c.name)!;
    acc.rps.push(r.rps);
    acc.p99.push(r.p99);
    acc.p50.push(r.p50);
    acc.cpuUs.push(r.cpuUs);
    console.log(
      `  round ${round} ${c.name.padEnd(22)} ${fmt(r.rps, 0).padStart(7)} req/s  p50 ${r.p50} ms  p99 ${r.p99} ms  server CPU ${fmt(r.cpuUs, 0)} µs/req`,
    );
  }
}

const summary = new Map(
  measured.map((c) => {
    const acc = results.get(c.name)!;
    return [c.name, { rps: median(acc.rps), p50: median(acc.p50), p99: median(acc.p99), cpuUs: median(acc.cpuUs) }];
  }),
);
console.log(
  `\nmedian over rounds            req/s   p50 ms   p99 ms   req/s vs base   CPU µs/req   base ÷ CPU   against (base)             aim · load average ${loadavg()[0].toFixed(1)}`,
);
for (const c of cases) {
  const s = summary.get(c.name)!;
  const base = summary.get(c.baseline)!;
  const aim = c.name.includes('/health') ? '≥ 0.95' : c.name.startsWith('udc-kit /state') ? '≥ 0.90' : '';
  console.log(
    `${c.name.padEnd(26)} ${fmt(s.rps, 0).padStart(8)} ${String(s.p50).padStart(8)} ${String(s.p99).padStart(8)}   ${fmt(s.rps / base.rps).padStart(13)}   ${fmt(s.cpuUs, 0).padStart(10)}   ${fmt(base.cpuUs / s.cpuUs).padStart(10)}   ${c.baseline.padEnd(26)} ${aim}`,
  );
}
targets.stop();
