// bench/ha: what a three-node NATS cluster costs and buys the mesh.
//
// 1. KV write → every replica's in-memory view updated: a writer puts a key; two "droplet
//    replicas" (each its own connection, on different nodes of the cluster) watch the bucket
//    and note when they see that revision. The figure is the time until the *last* watcher has
//    it, p50/p99, on a three-node cluster (bucket replicas 3) next to a single node (replicas 1),
//    measured alternately in the same run, as a ratio.
// 2. Failover: a droplet's connection is on node X; X is killed (-9). Time until the droplet's
//    next KV write is acknowledged, on the cluster (it moves to another node) next to one node
//    restarted by a supervisor (what a single machine can do), as a ratio.
import { performance } from 'node:perf_hooks';
import { Bus } from '@droplet-mesh/udc-kit';
import { startNatsCluster, startNatsServer } from '@droplet-mesh/udc-kit/testing';
import { fmt, percentile } from '../udc/stats.js';

const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 1000);
const BLOCK = 100;
const WARMUP = 100;
const FAILOVERS = Number(process.env.BENCH_FAILOVERS ?? 5);

type KV = Awaited<ReturnType<Bus['kv']>>;

/** A new cluster answers "temporarily unavailable" (or times out) while it elects: retry for a while. */
async function eventually<T>(fn: () => Promise<T>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

/** Writes that needed a retry (a timeout), by setup: reported next to the figures. */
const retried = { single: 0, cluster: 0 };

interface Setup {
  name: string;
  writer: KV;
  /** Resolves when every watcher has seen `revision`. */
  seenByAll(revision: number): Promise<void>;
  close(): Promise<void>;
}

async function setup(name: string, urls: string[], replicas: number): Promise<Setup> {
  const writerBus = await Bus.connect({ url: urls[0], name: `bench-writer-${name}`, replicas });
  const writer = await eventually(() => writerBus.kv('bench-ha', { history: 1 }));
  const watchers: Bus[] = [];
  const seen: number[] = [];
  const waiting = new Map<number, () => void>();
  const check = () => {
    const low = Math.min(...seen);
    for (const [rev, done] of waiting)
      if (rev <= low) {
        waiting.delete(rev);
        done();
      }
  };
  // Two replicas of a droplet, each connected to another node than the writer when there is one.
  for (let i = 0; i < 2; i++) {
    const bus = await Bus.connect({ url: urls[(i + 1) % urls.length], name: `bench-replica-${name}-${i}`, replicas });
    watchers.push(bus);
    seen.push(0);
    const iter = await eventually(async () => (await bus.kv('bench-ha', { history: 1 })).watch({ key: '>' }));
    void (async () => {
      for await (const e of iter) {
        seen[i] = Math.max(seen[i], e.revision);
        check();
      }
    })();
  }
  return {
    name,
    writer,
    seenByAll: (revision) =>
      new Promise<void>((resolve) => {
        waiting.set(revision, resolve);
        check();
      }),
    async close() {
      for (const b of [writerBus, ...watchers]) await b.close();
    },
  };
}

async function once(s: Setup, i: number): Promise<number> {
  const t0 = performance.now();
  // A timed-out write is retried and counts with its whole time.
  const revision = await eventually(() =>
    s.writer.put(`k${i % 50}`, String(i)).catch((err) => {
      retried[s.name as keyof typeof retried]++;
      throw err;
    }),
  );
  await s.seenByAll(revision);
  return performance.now() - t0;
}

async function propagation(): Promise<{ single: number[]; cluster: number[] }> {
  const single = await startNatsServer();
  const cluster = await startNatsCluster({ size: 3 });
  const a = await setup('single', [single.url], 1);
  const b = await setup('cluster', cluster.url.split(','), 3);
  try {
    for (let i = 0; i < WARMUP; i++) {
      await once(a, i);
      await once(b, i);
    }
    const out = { single: [] as number[], cluster: [] as number[] };
    for (let done = 0; done < SAMPLES; done += BLOCK) {
      for (let i = 0; i < BLOCK; i++) out.single.push(await once(a, i));
      for (let i = 0; i < BLOCK; i++) out.cluster.push(await once(b, i));
    }
    return out;
  } finally {
    await a.close();
    await b.close();
    await single.stop({ removeStore: true });
    await cluster.stop();
  }
}

/**
 * From kill -9 of the connected node to the first acknowledged KV write after it. A write sent
 * into a dead connection waits for the client's 5 s JetStream timeout, so a new one is sent
 * every 100 ms (the earlier ones are left to time out): the figure is when the droplet can write
 * again, to within 100 ms.
 */
async function failoverOnce(kill: () => Promise<void>, bus: Bus, kv: KV): Promise<{ write: number; reconnect: number }> {
  await eventually(() => kv.put('probe', 'before'));
  const t0 = performance.now();
  // When the connection is back (on another node, or the restarted one): the client's own event.
  let reconnect = Number.NaN;
  const status = bus.nc.status();
  void (async () => {
    for await (const e of status)
      if (e.type === 'reconnect') {
        reconnect = performance.now() - t0;
        break;
      }
  })();
  const killing = kill();
  const write = await new Promise<number>((resolve, reject) => {
    let done = false;
    const timer = setInterval(() => {
      if (performance.now() - t0 > 60_000) {
        clearInterval(timer);
        reject(new Error('no write within 60 s of the kill'));
      }
      kv.put('probe', 'after').then(
        () => {
          if (done) return;
          done = true;
          clearInterval(timer);
          resolve(performance.now() - t0);
        },
        () => undefined,
      );
    }, 100);
  });
  await killing;
  status.stop();
  return { write, reconnect };
}

interface Failovers {
  single: number[];
  cluster: number[];
  singleReconnect: number[];
  clusterReconnect: number[];
  /** Kills that took the bucket stream's leader with them (a new one is elected first). */
  leaderKilled: number;
  /** Write times of those kills, and of the others. */
  leaderWrites: number[];
  followerWrites: number[];
}

async function failover(): Promise<Failovers> {
  const out: Failovers = {
    single: [],
    cluster: [],
    singleReconnect: [],
    clusterReconnect: [],
    leaderKilled: 0,
    leaderWrites: [],
    followerWrites: [],
  };
  // One node, restarted by a supervisor at once (what npm start does; its backoff starts at 250 ms).
  const single = await startNatsServer();
  const sBus = await Bus.connect({ url: single.url, name: 'bench-failover-single' });
  const sKv = await sBus.kv('bench-failover', { history: 1 });
  for (let i = 0; i < FAILOVERS; i++) {
    const r = await failoverOnce(
      async () => {
        single.process.kill('SIGKILL');
        await new Promise((res) => single.process.once('exit', res));
        await new Promise((res) => setTimeout(res, 250));
        await single.restart();
      },
      sBus,
      sKv,
    );
    out.single.push(r.write);
    out.singleReconnect.push(r.reconnect);
  }
  await sBus.close();
  await single.stop({ removeStore: true });

  // Three nodes: kill the one the droplet is connected to; it comes back (as under npm start) before the next round.
  const cluster = await startNatsCluster({ size: 3 });
  const cBus = await Bus.connect({ url: cluster.url, name: 'bench-failover-cluster', replicas: 3 });
  const cKv = await eventually(() => cBus.kv('bench-failover', { history: 1 }));
  for (let i = 0; i < FAILOVERS; i++) {
    const port = Number(cBus.nc.getServer().split(':').pop());
    const node = cluster.nodes.find((n) => n.port === port);
    if (!node) throw new Error(`connected to ${cBus.nc.getServer()}, not a node of the cluster`);
    const leader = await eventually(async () => (await (await cBus.jetstreamManager()).streams.info('KV_bench-failover')).cluster?.leader);
    const tookLeader = leader === cluster.names[cluster.nodes.indexOf(node)];
    if (tookLeader) out.leaderKilled++;
    const r = await failoverOnce(
      async () => {
        node.process.kill('SIGKILL');
        await new Promise((res) => node.process.once('exit', res));
      },
      cBus,
      cKv,
    );
    out.cluster.push(r.write);
    out.clusterReconnect.push(r.reconnect);
    (tookLeader ? out.leaderWrites : out.followerWrites).push(r.write);
    await node.restart();
    await new Promise((r) => setTimeout(r, 3000)); // it catches up before the next kill
  }
  await cBus.close();
  await cluster.stop();
  return out;
}

const sorted = <T extends { single: number[]; cluster: number[] }>(o: T): T => {
  for (const xs of Object.values(o)) if (Array.isArray(xs)) xs.sort((a: number, b: number) => a - b);
  return o;
};

const p = sorted(await propagation());
const row = (name: string, xs: number[]) =>
  `| ${name.padEnd(38)} | ${fmt(percentile(xs, 50)).padStart(7)} | ${fmt(percentile(xs, 99)).padStart(7)} |`;
console.log(`\nKV write → both replicas' views updated (${SAMPLES} writes each, alternating blocks of ${BLOCK})\n`);
console.log('| setup                                  | p50 ms  | p99 ms  |');
console.log('| -------------------------------------- | ------: | ------: |');
console.log(row('one nats-server, bucket replicas 1', p.single));
console.log(row('three nats-servers, bucket replicas 3', p.cluster));
console.log(`\nwrites retried after a timeout: single ${retried.single}, cluster ${retried.cluster}`);
console.log(
  `\ncluster ÷ single: p50 ${(percentile(p.cluster, 50) / percentile(p.single, 50)).toFixed(2)}×, p99 ${(percentile(p.cluster, 99) / percentile(p.single, 99)).toFixed(2)}×`,
);

const f = sorted(await failover());
console.log(`\nFailover: kill -9 of the node a droplet is connected to → its next acknowledged KV write (${FAILOVERS} kills each)\n`);
console.log('| setup                                  | reconnected p50 | write p50 ms | write max ms |');
console.log('| -------------------------------------- | --------------: | -----------: | -----------: |');
const frow = (name: string, reconnect: number[], write: number[]) =>
  `| ${name.padEnd(38)} | ${fmt(percentile(reconnect, 50)).padStart(15)} | ${fmt(percentile(write, 50)).padStart(12)} | ${fmt(Math.max(...write)).padStart(12)} |`;
console.log(frow('one nats-server, restarted at once', f.singleReconnect, f.single));
console.log(frow('three nats-servers, another takes over', f.clusterReconnect, f.cluster));
console.log(
  `\nkills that took the stream's leader too (an election first): ${f.leaderKilled} of ${FAILOVERS}; write p50 ${fmt(percentile(f.leaderWrites, 50))} ms for those, ${fmt(percentile(f.followerWrites, 50))} ms for the others`,
);
console.log(`cluster ÷ single (write p50): ${(percentile(f.cluster, 50) / percentile(f.single, 50)).toFixed(2)}×`);
process.exit(0);
