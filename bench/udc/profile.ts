// bench/udc/profile.ts: CPU profile of the servers' process while autocannon loads one target
// (default JWT /state). Writes the .cpuprofile under BENCH_PROF_DIR and prints self time per
// function and per package, in µs per request. `node --import tsx udc/profile.ts [bare|health|state]`
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';

const which = (process.argv[2] ?? 'state') as 'bare' | 'health' | 'state';
const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 8);
const dir = process.env.BENCH_PROF_DIR ?? '/tmp/udc-prof';
const script = fileURLToPath(new URL('./servers.ts', import.meta.url));
const child = spawn(process.execPath, ['--cpu-prof', '--cpu-prof-dir', dir, '--import', 'tsx', script], {
  stdio: ['pipe', 'ignore', 'inherit', 'pipe'],
});
const targets: Record<string, string> = await new Promise((resolve) =>
  createInterface({ input: child.stdio[3] as NodeJS.ReadableStream }).once('line', (l) => resolve(JSON.parse(l))),
);
const headers = which === 'state' ? { authorization: `Bearer ${targets.token}` } : {};
await autocannon({ url: targets[which], connections: 20, duration: 2, headers });
// V8's profile clock and process.hrtime are both the monotonic clock: keep only the samples of the measured window.
const t0 = Number(process.hrtime.bigint() / 1000n);
const r = await autocannon({ url: targets[which], connections: 20, duration: DURATION_S, headers });
const t1 = Number(process.hrtime.bigint() / 1000n);
const total = r.requests.total;
child.kill('SIGTERM');
await new Promise((res) => child.once('exit', res));
// One profile per thread: the main thread's is thread 0 (tsx's loader runs in another).
const file = readdirSync(dir).find((f) => f.endsWith(`.${child.pid}.0.001.cpuprofile`))!;
interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
const prof = JSON.parse(readFileSync(join(dir, file), 'utf8')) as {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
};
const self = new Map<number, number>();
let at = prof.startTime;
prof.samples.forEach((id, i) => {
  const dt = prof.timeDeltas[i] ?? 0;
  at += dt;
  if (at >= t0 && at <= t1) self.set(id, (self.get(id) ?? 0) + dt);
});
const byFn = new Map<string, number>();
const byPkg = new Map<string, number>();
for (const n of prof.nodes) {
  const t = self.get(n.id) ?? 0;
  if (!t) continue;
  const url = n.callFrame.url;
  const pkg =
    /node_modules\/\.pnpm\/([^/]+)/.exec(url)?.[1]?.replace(/@\d.*$/, '') ??
    (url.includes('udc-kit')
      ? 'udc-kit'
      : url.startsWith('node:')
        ? 'node:' + url.slice(5).split('/')[0]
        : url || n.callFrame.functionName);
  const key = `${n.callFrame.functionName || '(anon)'} ${url.replace(/.*node_modules\/\.pnpm\//, '').replace(/.*\/work\/main\//, '')}:${n.callFrame.lineNumber + 1}`;
  byFn.set(key, (byFn.get(key) ?? 0) + t);
  byPkg.set(pkg, (byPkg.get(pkg) ?? 0) + t);
}
const us = (t: number) => (t / total).toFixed(1);
console.log(`${which}: ${total} requests, ${(r.requests.average).toFixed(0)} req/s; profile ${file}`);
const busy = [...byPkg].filter(([k]) => k !== '(idle)').reduce((a, [, t]) => a + t, 0);
console.log(`busy (all but idle) ${us(busy)} µs per request`);
console.log('\nself time per request by package (µs):');
for (const [k, t] of [...byPkg].sort((a, b) => b[1] - a[1]).slice(0, 25)) console.log(`  ${us(t).padStart(7)}  ${k}`);
console.log('\nself time per request by function (µs):');
for (const [k, t] of [...byFn].sort((a, b) => b[1] - a[1]).slice(0, Number(process.env.TOP ?? 60)))
  console.log(`  ${us(t).padStart(7)}  ${k}`);
