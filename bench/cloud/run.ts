// bench/cloud: GET /multi/list over the three cloud emulators, each with 100 ms injected
// latency and 1,000 instances (several pages), next to the slowest provider listed alone
// (GET /multi/list?provider=X) measured in the same run. Aim: total <= 1.3x slowest alone.
// Also prints the requests one /multi/list makes to each provider.
// Run: cd services/multi-cloud-manager && corepack pnpm run bench
import { Writable } from 'node:stream';
import { startAllEmulators } from '../../services/multi-cloud-manager/node_modules/@droplet-mesh/cloud-emulators/dist/index.js';
import {
  startNatsServer,
  startTestAuthority,
} from '../../services/multi-cloud-manager/node_modules/@droplet-mesh/udc-kit/dist/testing/index.js';
import { createMultiCloudDroplet } from '../../services/multi-cloud-manager/src/app.js';

const INSTANCES = Number(process.env.BENCH_INSTANCES ?? 1000);
const LATENCY_MS = Number(process.env.BENCH_LATENCY_MS ?? 100);
const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 5);
const PROVIDERS = ['digitalocean', 'hetzner', 'vultr'] as const;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const nats = await startNatsServer();
const authority = await startTestAuthority();
// Contract validation is off here (the test suites prove the contract); it would only add emulator CPU.
const emus = await startAllEmulators({ seedInstances: INSTANCES, latencyMs: LATENCY_MS, validateContract: false, token: 'bench-token' });
const droplet = createMultiCloudDroplet({
  env: {
    PORT: '0',
    NATS_URL: nats.url,
    ...authority.env(),
    LOCAL_PROVIDER_ENABLED: 'false',
    DO_TOKEN: 'bench-token',
    HETZNER_TOKEN: 'bench-token',
    VULTR_TOKEN: 'bench-token',
    DO_API_URL: emus.digitalocean.apiUrl,
    HETZNER_API_URL: emus.hetzner.apiUrl,
    VULTR_API_URL: emus.vultr.apiUrl,
    LOG_LEVEL: 'warn',
  },
  registry: false,
  logDestination: new Writable({ write: (_c, _e, cb) => cb() }),
});
const { url } = await droplet.start();
const headers = { authorization: `Bearer ${authority.mint({ scopes: ['read'] })}` };

async function timedList(query = ''): Promise<{ ms: number; total: number; errors: string[] }> {
  const started = performance.now();
  const res = await fetch(`${url}/multi/list${query}`, { headers });
  const body = (await res.json()) as { total: number; providers: Array<{ provider: string; status: string }> };
  const ms = performance.now() - started;
  if (res.status !== 200) throw new Error(`/multi/list${query} answered ${res.status}`);
  return { ms, total: body.total, errors: body.providers.filter((p) => p.status === 'error').map((p) => p.provider) };
}

try {
  // Warm up once: connections, and the Vultr plan catalog used for prices (cached afterwards).
  await timedList();

  const before = Object.fromEntries(PROVIDERS.map((p) => [p, emus[p].requests.length]));
  const one = await timedList();
  const requests = Object.fromEntries(PROVIDERS.map((p) => [p, emus[p].requests.length - before[p]]));
  if (one.total !== INSTANCES * 3 || one.errors.length)
    throw new Error(`expected ${INSTANCES * 3} instances and no errors, got ${one.total} (${one.errors.join(', ')})`);

  const alone: Record<string, number[]> = Object.fromEntries(PROVIDERS.map((p) => [p, []]));
  const combined: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    for (const p of PROVIDERS) alone[p].push((await timedList(`?provider=${p}`)).ms);
    combined.push((await timedList()).ms);
  }
  const aloneMedian = Object.fromEntries(PROVIDERS.map((p) => [p, median(alone[p])]));
  const slowest = PROVIDERS.reduce((a, b) => (aloneMedian[a] >= aloneMedian[b] ? a : b));
  const total = median(combined);
  const ratio = total / aloneMedian[slowest];

  console.log(`bench/cloud: ${INSTANCES} instances per provider, ${LATENCY_MS} ms latency per request, median of ${SAMPLES}`);
  for (const p of PROVIDERS)
    console.log(`  ${p.padEnd(13)} alone ${aloneMedian[p].toFixed(0).padStart(6)} ms   requests per /multi/list: ${requests[p]}`);
  console.log(`  /multi/list (all three)  ${total.toFixed(0).padStart(6)} ms`);
  console.log(`  ratio to slowest alone (${slowest}): ${ratio.toFixed(2)}x  (aim <= 1.3x) ${ratio <= 1.3 ? 'OK' : 'OVER'}`);
} finally {
  await droplet.stop();
  await emus.close();
  await authority.close();
  await nats.stop({ removeStore: true });
}
