// bench/message: round-trip latency of the UDC path (HTTP POST /send on droplet alpha → NATS →
// beta's /message handler → reply → HTTP answer) next to two baselines: a raw NATS
// request/reply, and the fair one, a bare Express route doing a raw NATS request to a raw
// responder (the same physical path without udc-kit).
import { Agent, request as httpRequest } from 'node:http';
import { fileURLToPath } from 'node:url';
import { startServerChild } from '../support/server-child.js';
import { connect } from '@nats-io/transport-node';
import { fmt, percentile } from '../udc/stats.js';

const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 3000);
const BLOCK = 250; // alternate the two paths in blocks so both see the same machine
const WARMUP = 300;

interface Targets {
  natsUrl: string;
  sendUrl: string;
  relayUrl: string;
  token: string;
}

const t = await startServerChild<Targets>(fileURLToPath(new URL('./servers.ts', import.meta.url)));

const nc = await connect({ servers: t.natsUrl, name: 'bench-requester', noAsyncTraces: true });
const envelope = JSON.stringify({
  source: 'bench',
  target: 'raw',
  message_type: 'query',
  payload: { action: 'echo', text: 'x'.repeat(32) },
  trace_id: 'bench-trace',
});
const sendBody = JSON.stringify({
  target: 'beta',
  message_type: 'query',
  payload: { action: 'echo', text: 'x'.repeat(32) },
  retry_count: 0,
  timeout_ms: 5000,
});
const agent = new Agent({ keepAlive: true, maxSockets: 1 });

async function rawOnce(): Promise<number> {
  const t0 = process.hrtime.bigint();
  await nc.request('bench.raw', envelope, { timeout: 5000 });
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

const relayBody = JSON.stringify({
  source: 'bench',
  target: 'raw',
  message_type: 'query',
  payload: { action: 'echo', text: 'x'.repeat(32) },
});

function sendOnce(): Promise<number> {
  return postOnce(t.sendUrl, sendBody, { authorization: `Bearer ${t.token}` });
}

function relayOnce(): Promise<number> {
  return postOnce(t.relayUrl, relayBody, {});
}

function postOnce(url: string, payload: string, extra: Record<string, string>): Promise<number> {
  const t0 = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      url,
      {
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload), ...extra },
      },
      (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => {
          if (res.statusCode !== 200 || !body.includes('"result":"success"'))
            return reject(new Error(`${url} answered ${res.statusCode}: ${body.slice(0, 200)}`));
          resolve(Number(process.hrtime.bigint() - t0) / 1e6);
        });
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

console.log(`bench/message: ${SAMPLES} sequential round trips per path, in alternating blocks of ${BLOCK}; servers in child pid ${t.pid}`);
for (let i = 0; i < WARMUP; i++) {
  await rawOnce();
  await relayOnce();
  await sendOnce();
}
const rawMs: number[] = [];
const relayMs: number[] = [];
const sendMs: number[] = [];
while (rawMs.length < SAMPLES) {
  for (let i = 0; i < BLOCK; i++) rawMs.push(await rawOnce());
  for (let i = 0; i < BLOCK; i++) relayMs.push(await relayOnce());
  for (let i = 0; i < BLOCK; i++) sendMs.push(await sendOnce());
}
rawMs.sort((a, b) => a - b);
relayMs.sort((a, b) => a - b);
sendMs.sort((a, b) => a - b);

const row = (name: string, xs: number[]) =>
  `${name.padEnd(42)} ${fmt(percentile(xs, 50), 3).padStart(8)} ${fmt(percentile(xs, 99), 3).padStart(8)}`;
console.log(`\n${'path'.padEnd(42)} ${'p50 ms'.padStart(8)} ${'p99 ms'.padStart(8)}`);
console.log(row('raw NATS request/reply', rawMs));
console.log(row('bare Express → raw NATS request → reply', relayMs));
console.log(row('HTTP /send → NATS → handler → reply', sendMs));
const ratio = (a: number[], b: number[], p: number) => fmt(percentile(a, p) / percentile(b, p));
console.log(
  `ratio /send ÷ Express+NATS (fair baseline): p50 ${ratio(sendMs, relayMs, 50)}x, p99 ${ratio(sendMs, relayMs, 99)}x   (aim p50 ≤ 1.3x)`,
);
console.log(`ratio /send ÷ raw NATS:                     p50 ${ratio(sendMs, rawMs, 50)}x, p99 ${ratio(sendMs, rawMs, 99)}x`);

agent.destroy();
await nc.close();
t.stop();
