// bench/registry: 10,000 simulated droplets heartbeating over NATS at a 30 s interval
// (~333/s), then at 10x that rate. Reports the registry's CPU share, heartbeat-to-record
// p50/p99 (from the registry's own histogram), whether any heartbeat was lost, next to raw
// NATS publish throughput measured in the same run.
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect } from '@nats-io/transport-node';
import { freePort, startNatsServer, waitFor } from '@droplet-mesh/udc-kit/testing';
import { cpuSeconds } from '../support/proc.js';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const DROPLETS = Number(process.env.BENCH_DROPLETS ?? 10_000);
const PHASE_S = Number(process.env.BENCH_PHASE_S ?? 20);
const ADMIN_KEY = 'bench-admin-key-0123456789';
const TICKS = 100; // clock ticks per second on Linux

async function metrics(url: string) {
  const text = await (await fetch(`${url}/metrics`)).text();
  const total = Number(/^registry_heartbeats_total\{[^}]*\} (\S+)/m.exec(text)?.[1] ?? 0);
  const buckets = [...text.matchAll(/^registry_heartbeat_lag_seconds_bucket\{le="([^"]+)"[^}]*\} (\S+)/gm)].map((m) => ({
    le: m[1] === '+Inf' ? Infinity : Number(m[1]),
    n: Number(m[2]),
  }));
  return { total, buckets };
}

function quantile(before: { le: number; n: number }[], after: { le: number; n: number }[], q: number): string {
  const diff = after.map((b, i) => ({ le: b.le, n: b.n - (before[i]?.n ?? 0) }));
  const count = diff[diff.length - 1]?.n ?? 0;
  const hit = diff.find((b) => b.n >= q * count);
  return hit ? (hit.le === Infinity ? '>2.5 s' : `≤${(hit.le * 1000).toFixed(1)} ms`) : 'n/a';
}

async function main() {
  const nats = await startNatsServer();
  const port = await freePort();
  const reg = spawn(process.execPath, [join(REPO, 'services/registry/dist/main.js')], {
    env: {
      ...process.env,
      PORT: String(port),
      NATS_URL: nats.url,
      REGISTRY_ADMIN_KEY: ADMIN_KEY,
      LOG_LEVEL: 'warn',
      HEARTBEAT_INTERVAL_S: '30',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitFor('registry', async () => (await fetch(`${url}/health`)).ok, 30_000);
    const nc = await connect({ servers: nats.url });

    // Baseline: raw NATS publish throughput to one subscriber, same machine, same run.
    const N = 200_000;
    let got = 0;
    const sub = nc.subscribe('bench.raw', { callback: () => got++ });
    const t0 = performance.now();
    for (let i = 0; i < N; i++) nc.publish('bench.raw', JSON.stringify({ id: `d-${i % DROPLETS}`, sent_at_ms: Date.now() }));
    await nc.flush();
    await waitFor('raw messages', () => got === N, 30_000, 5);
    const rawRate = N / ((performance.now() - t0) / 1000);
    sub.unsubscribe();

    process.stdout.write(`registering ${DROPLETS} droplets…\n`);
    const ids = Array.from({ length: DROPLETS }, (_, i) => `bench-${i}`);
    for (let i = 0; i < ids.length; i += 100) {
      await Promise.all(
        ids.slice(i, i + 100).map(async (id) => {
          const r = await fetch(`${url}/droplets`, {
            method: 'POST',
            headers: { 'x-registry-key': ADMIN_KEY, 'content-type': 'application/json' },
            body: JSON.stringify({ id, url: 'http://127.0.0.1:1', kind: 'service', heartbeat_interval_s: 30 }),
          });
          if (r.status !== 201 && r.status !== 200) throw new Error(`register ${id}: ${r.status}`);
        }),
      );
    }

    const rows: string[] = [];
    for (const rate of [DROPLETS / 30, (DROPLETS / 30) * 10]) {
      const before = await metrics(url);
      const cpu0 = cpuSeconds(reg.pid!);
      const start = performance.now();
      let sent = 0;
      // Publish in 10 ms slices at the target rate.
      while (performance.now() - start < PHASE_S * 1000) {
        const due = Math.floor(((performance.now() - start) / 1000) * rate);
        for (; sent < due; sent++)
          nc.publish(`registry.heartbeat.${ids[sent % DROPLETS]}`, JSON.stringify({ status: 'active', sent_at_ms: Date.now() }));
        await new Promise((r) => setTimeout(r, 10));
      }
      await nc.flush();
      await waitFor('registry to count every heartbeat', async () => (await metrics(url)).total - before.total >= sent, 30_000, 200).catch(
        () => undefined,
      );
      const elapsed = (performance.now() - start) / 1000;
      const after = await metrics(url);
      const cpu = ((cpuSeconds(reg.pid!) - cpu0) / elapsed) * 100;
      const recorded = after.total - before.total;
      rows.push(
        `${rate.toFixed(0).padStart(6)}/s  sent ${sent}  recorded ${recorded}  lost ${sent - recorded}  ` +
          `registry CPU ${cpu.toFixed(1)}% of one core  lag p50 ${quantile(before.buckets, after.buckets, 0.5)}  p99 ${quantile(before.buckets, after.buckets, 0.99)}  ` +
          `(rate / raw NATS publish = ${(rate / rawRate).toFixed(4)})`,
      );
    }
    process.stdout.write(`\nraw NATS publish→subscribe: ${rawRate.toFixed(0)} msg/s (baseline, same run)\n${rows.join('\n')}\n`);
    await nc.close();
  } finally {
    reg.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 500));
    await nats.stop({ removeStore: true });
  }
}

await main();
