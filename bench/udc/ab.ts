// bench/udc/ab.ts: two builds of udc-kit (or one build under two environments) side by side, for a
// before/after less blurred by the machine's drift: each side's servers run in their own child,
// and short turns alternate A, B, A, B … against the same target. Prints each pair's server CPU
// per request and the median of B ÷ A.
//   BENCH_AB_A=<dir|''> BENCH_AB_B=<dir|''> [BENCH_AB_ENV_A='K=V …'] [BENCH_AB_ENV_B=…] node --import tsx udc/ab.ts [state|health|bare]
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { startServerChild } from '../support/server-child.js';
import { fmt, median } from './stats.js';
import { cpuSeconds } from '../support/proc.js';

const which = (process.argv[2] ?? 'state') as 'bare' | 'health' | 'state';
const TURNS = Number(process.env.BENCH_AB_TURNS ?? 12);
const TURN_S = Number(process.env.BENCH_AB_TURN_S ?? 2);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 20);
const script = fileURLToPath(new URL('./servers.ts', import.meta.url));

interface Targets {
  bare: string;
  health: string;
  state: string;
  token: string;
}
function envOf(kit: string | undefined, extra: string | undefined): Record<string, string> {
  const env: Record<string, string> = {};
  if (kit) env.BENCH_UDC_KIT = kit;
  for (const kv of (extra ?? '').split(/\s+/).filter(Boolean)) {
    const i = kv.indexOf('=');
    env[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return env;
}
async function withEnv<T>(env: Record<string, string>, f: () => Promise<T>): Promise<T> {
  const saved = { ...process.env };
  delete process.env.BENCH_UDC_KIT;
  Object.assign(process.env, env);
  try {
    return await f();
  } finally {
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
  }
}
const sides = {
  A: await withEnv(envOf(process.env.BENCH_AB_A, process.env.BENCH_AB_ENV_A), () => startServerChild<Targets>(script)),
  B: await withEnv(envOf(process.env.BENCH_AB_B, process.env.BENCH_AB_ENV_B), () => startServerChild<Targets>(script)),
};
async function turn(t: Targets & { pid: number }, seconds: number) {
  const headers = which === 'state' ? { authorization: `Bearer ${t.token}` } : {};
  const cpu0 = cpuSeconds(t.pid);
  const r = await autocannon({ url: t[which], connections: CONNECTIONS, duration: seconds, headers });
  if (r.non2xx > 0 || r.errors > 0) throw new Error(`${t[which]}: ${r.non2xx} non-2xx and ${r.errors} errors`);
  return { rps: r.requests.average, cpuUs: ((cpuSeconds(t.pid) - cpu0) / r.requests.total) * 1e6 };
}
console.log(
  `ab ${which}: A=${process.env.BENCH_AB_A || 'dist'} ${process.env.BENCH_AB_ENV_A ?? ''} · B=${process.env.BENCH_AB_B || 'dist'} ${process.env.BENCH_AB_ENV_B ?? ''}`,
);
await turn(sides.A, 2);
await turn(sides.B, 2);
const ratios: number[] = [];
const a: number[] = [];
const b: number[] = [];
for (let i = 1; i <= TURNS; i++) {
  // Alternate who goes first, so neither side always follows the other.
  const [x, y] =
    i % 2
      ? [await turn(sides.A, TURN_S), await turn(sides.B, TURN_S)]
      : (([q, p]) => [p, q])([await turn(sides.B, TURN_S), await turn(sides.A, TURN_S)]);
  a.push(x.cpuUs);
  b.push(y.cpuUs);
  ratios.push(y.cpuUs / x.cpuUs);
  console.log(
    `  turn ${String(i).padStart(2)}  A ${fmt(x.cpuUs, 0)} µs/req ${fmt(x.rps, 0)} req/s   B ${fmt(y.cpuUs, 0)} µs/req ${fmt(y.rps, 0)} req/s   B÷A ${fmt(y.cpuUs / x.cpuUs)}`,
  );
}
console.log(`median: A ${fmt(median(a), 1)} µs/req, B ${fmt(median(b), 1)} µs/req, B÷A ${fmt(median(ratios), 3)}`);
sides.A.stop();
sides.B.stop();
