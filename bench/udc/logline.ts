// bench/udc/logline.ts: process CPU (all threads: the thread pool's writes and the GC's
// helpers count) per request log line, lines emitted a few per event-loop turn with some
// short-lived garbage per "request", as under load. Variants take turns in one process; the
// process's stdout is where the lines go (send it to /dev/null). Results on stderr.
//   node --import tsx udc/logline.ts >/dev/null          (VARIANTS=kit,kitNull,kitNoLog ROUNDS=5)
// BENCH_UDC_KIT_OLD: another build of udc-kit (see README) for the kitOld and oldNull variants.
import { createRequire } from 'node:module';
type Logger = import('@droplet-mesh/udc-kit').Logger;
// pino is udc-kit's dependency, not the bench's.
interface Pino {
  (opts: object, stream: unknown): Logger;
  multistream(streams: unknown[]): unknown;
  destination(opts: object): NodeJS.WritableStream;
}
const pino = createRequire(new URL('../../packages/udc-kit/package.json', import.meta.url))('pino') as Pino;
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
type Kit = typeof import('@droplet-mesh/udc-kit');
const kit: Kit = await import('@droplet-mesh/udc-kit');
const oldDir = process.env.BENCH_UDC_KIT_OLD;
const old: Kit = oldDir ? await import(pathToFileURL(resolve(oldDir, 'index.js')).href) : kit;
const N = Number(process.env.N ?? 100_000);
const PER_TURN = Number(process.env.PER_TURN ?? 3);
const GARBAGE = Number(process.env.GARBAGE ?? 200);
function run(logger: Logger, n: number): Promise<number> {
  return new Promise((resolve) => {
    const c0 = process.cpuUsage();
    let i = 0;
    let sink: unknown[] = [];
    const step = () => {
      for (let k = 0; k < PER_TURN && i < n; k++, i++) {
        sink = [];
        for (let g = 0; g < GARBAGE; g++) sink.push({ a: g, b: 'x' + g });
        logger.info(
          {
            correlation_id: '3f1c2d4e-5a6b-4c7d-8e9f-0a1b2c3d4e5f',
            method: 'GET',
            path: '/state',
            route: '/state',
            status: 200,
            duration_ms: 1.3,
          },
          'request',
        );
      }
      if (i < n) setImmediate(step);
      else {
        const c = process.cpuUsage(c0);
        resolve((c.user + c.system) / n);
      }
    };
    step();
  });
}
const nullDest = { write() {} };
class StrRing {
  a: string[] = [];
  i = 0;
  push(l: string) {
    this.a[this.i] = l;
    this.i = (this.i + 1) % 1000;
  }
}
const mk = (ring?: { push(l: string): void }) =>
  pino(
    { level: 'info' },
    pino.multistream([
      { level: 'trace' as const, stream: nullDest },
      ...(ring ? [{ level: 'trace' as const, stream: { write: (l: string) => ring.push(l) } }] : []),
    ]),
  );
const variants: Record<string, () => Logger> = {
  nullNoRing: () => mk(),
  nullStrRing: () => mk(new StrRing()),
  nullLogRing: () => mk(new kit.LogRing(1000)),
  kit: () => kit.createLogger('bench', 'info').logger,
  kit1k: () => kit.createLogger('bench', 'info', { destination: pino.destination({ dest: 1, sync: false, minLength: 1024 }) }).logger,
  kit2k: () => kit.createLogger('bench', 'info', { destination: pino.destination({ dest: 1, sync: false, minLength: 2048 }) }).logger,
  kit8k: () => kit.createLogger('bench', 'info', { destination: pino.destination({ dest: 1, sync: false, minLength: 8192 }) }).logger,
  kitBuf: () => {
    const d = pino.destination({ dest: 1, sync: false, minLength: 4096, contentMode: 'buffer' });
    return kit.createLogger('bench', 'info', { destination: { write: (l: string) => d.write(Buffer.from(l) as never) } as never }).logger;
  },
  kitMin: () => kit.createLogger('bench', 'info', { destination: pino.destination({ dest: 1, sync: false, minLength: 4096 }) }).logger,
  kitSync: () => kit.createLogger('bench', 'info', { destination: pino.destination({ dest: 1, sync: true }) }).logger,
  kitNull: () => kit.createLogger('bench', 'info', { destination: nullDest as unknown as NodeJS.WritableStream }).logger,
  oldNull: () => old.createLogger('bench', 'info', { destination: nullDest as unknown as NodeJS.WritableStream }).logger,
  kitOld: () => old.createLogger('bench', 'info').logger,
  kitNoLog: () => kit.createLogger('bench', 'warn').logger,
};
const names = (process.env.VARIANTS ?? 'kit,kitNull,kitNoLog').split(',');
const loggers = Object.fromEntries(names.map((n) => [n, variants[n]()]));
for (const n of names) await run(loggers[n], 20_000);
const res: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
for (let r = 0; r < Number(process.env.ROUNDS ?? 5); r++) for (const n of names) res[n].push(await run(loggers[n], N));
for (const n of names)
  console.error(
    n.padEnd(12),
    res[n].map((x) => x.toFixed(2)).join(' '),
    ' median',
    [...res[n]].sort((a, b) => a - b)[res[n].length >> 1].toFixed(2),
  );
