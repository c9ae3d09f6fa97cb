// bench/orchestrator: a stack of 100 services on 50 servers. The droplets the orchestrator
// reads (multi-cloud-manager, the deployer, proxy-manager) are one in-process HTTP stub
// answering from memory at once, so providers' latency is excluded while the orchestrator's
// own HTTP client, planner and KV writes (real NATS JetStream) are measured.
//   baseline: reading the live state alone (observe), measured in the same run
//   plan (empty mesh: every step a create), plan (applied: no-op), no-op apply (plan id → finished)
// Aims: plan <= 1 s, no-op apply <= 2 s.
// Run: cd bench && corepack pnpm run bench:orchestrator
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { Bus, createLogger, type RegistryLink } from '@droplet-mesh/udc-kit';
import { startNatsServer } from '@droplet-mesh/udc-kit/testing';
import { plan as planSteps } from '../../services/orchestrator/src/domain/planner.js';
import { desiredResources, type Resource } from '../../services/orchestrator/src/domain/resources.js';
import { parseStackSource } from '../../services/orchestrator/src/domain/stack-parse.js';
import { MeshClient } from '../../services/orchestrator/src/live/mesh-client.js';
import { observe } from '../../services/orchestrator/src/live/observe.js';
import { Orchestrator } from '../../services/orchestrator/src/orchestrator.js';
import { BUCKET, Store } from '../../services/orchestrator/src/store.js';

const SERVICES = Number(process.env.BENCH_SERVICES ?? 100);
const SERVERS = Number(process.env.BENCH_SERVERS ?? 50);
const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 7);
const STACK = 'bench';
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

// 100 web services over 2 projects × 2 environments, each placed on the stack's 50 servers (2 replicas).
const services = (offset: number) =>
  Object.fromEntries(
    Array.from({ length: SERVICES / 4 }, (_, i) => [
      `s${offset + i}`,
      { image: `bench/s${offset + i}:1`, domain: `s${offset + i}.bench.test`, replicas: 2, placement: ['node'] },
    ]),
  );
const file = parseStackSource({
  servers: { node: { provider: 'hetzner', region: 'fsn1', size: 'cx22', image: 'ubuntu-24.04', count: SERVERS } },
  projects: {
    a: { environments: { prod: { services: services(0) }, uat: { services: services(25) } } },
    b: { environments: { prod: { services: services(50) }, uat: { services: services(75) } } },
  },
});
const desired = desiredResources(STACK, file);
const byPath = new Map<string, unknown>();
let applied = false;

/** What each droplet answers for a resource once it exists (the shapes observe reads). */
function answers(r: Resource): Array<[string, unknown]> {
  const a = r.attrs as Record<string, string>;
  switch (r.kind) {
    case 'project':
      return [[`/projects/${a.name}`, { name: a.name, description: a.description }]];
    case 'environment':
      return [[`/projects/${a.project}/environments/${a.name}`, { name: a.name, env: a.env }]];
    case 'service':
      return [[`/projects/${a.project}/services/${a.deployer_service}`, { ...a, name: a.deployer_service }]];
    case 'placement':
      return [[`/projects/${a.project}/services/${a.deployer_service}/placements/${a.environment}`, { servers: a.servers }]];
    case 'release':
      return [
        [`/services/${a.target}`, { deployment_id: `d-${a.target}`, image: a.image, containers: [{}, {}] }],
        [`/deployments/d-${a.target}`, { status: 'succeeded', source: { kind: 'image', image: a.image } }],
      ];
    default:
      return [];
  }
}
for (const r of desired) for (const [p, v] of answers(r)) byPath.set(p, v);
const servers = desired.filter((r) => r.kind === 'server');
// Every deployer server serves every environment its services are placed in.
const envRefs = ['a/prod', 'a/uat', 'b/prod', 'b/uat'];
for (const s of servers) byPath.set(`/servers/${s.attrs.name}`, { id: s.attrs.name, environments: envRefs });
const instances = servers.map((s, i) => ({
  id: `hetzner:${i}`,
  provider: 'hetzner',
  provider_id: String(1000 + i),
  name: s.attrs.name,
  status: 'active',
  region: 'fsn1',
  size: 'cx22',
  image: 'ubuntu-24.04',
  tags: [],
  labels: { 'mesh-stack': STACK, 'mesh-server': 'node', 'mesh-index': s.id.split('/')[2] },
  price_monthly: 4.5,
}));

const stub = createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://stub');
  const send = (status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  if (url.pathname === '/instances') {
    const page = Number(url.searchParams.get('page') ?? 1);
    const items = applied ? instances.slice((page - 1) * 200, page * 200) : [];
    return send(200, {
      providers: [{ provider: 'hetzner', status: 'ok' }],
      items,
      pagination: { next_page: applied && page * 200 < instances.length ? page + 1 : null },
    });
  }
  const list = /^\/projects\/([^/]+)\/services$/.exec(url.pathname);
  if (list)
    return send(200, {
      items: applied
        ? desired
            .filter((r) => r.kind === 'service' && r.attrs.project === list[1])
            .map((r) => ({ ...r.attrs, name: r.attrs.deployer_service }))
        : [],
      pagination: { next_page: null },
    });
  if (url.pathname === '/servers')
    return send(200, {
      items: applied ? servers.map((s) => ({ id: s.attrs.name, environments: envRefs })) : [],
      pagination: { next_page: null },
    });
  if (url.pathname === '/catalog/sizes') return send(200, { items: [{ slug: 'cx22', price_monthly: 4.5, currency: 'EUR' }] });
  if (url.pathname.startsWith('/proxies/')) return send(404, { status: 'error', error: { code: 'NOT_FOUND', message: 'no route' } });
  const v = applied ? byPath.get(url.pathname) : undefined;
  return v ? send(200, v) : send(404, { status: 'error', error: { code: 'NOT_FOUND', message: 'absent' } });
});
await new Promise<void>((r) => stub.listen(0, '127.0.0.1', () => r()));
const stubUrl = `http://127.0.0.1:${(stub.address() as AddressInfo).port}`;

const nats = await startNatsServer();
const bus = await Bus.connect({ url: nats.url, name: 'bench-orchestrator' });
const link = { token: async () => 'bench', get: async () => undefined } as unknown as RegistryLink;
const mesh = new MeshClient(() => link, { deployer: stubUrl, 'proxy-manager': stubUrl, 'multi-cloud-manager': stubUrl }, 30_000);
const store = new Store(await bus.kv(BUCKET, { history: 5 }));
const orchestrator = new Orchestrator({
  store,
  mesh,
  logger: createLogger('bench', 'warn', { destination: new Writable({ write: (_c, _e, cb) => cb() }) }).logger,
  emit: () => undefined,
  leaseStaleMs: 15_000,
  deployTimeoutMs: 60_000,
  serverTimeoutMs: 60_000,
  pollMs: 100,
  retryMs: 0,
});

async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t = performance.now();
  const value = await fn();
  return { ms: performance.now() - t, value };
}
/** Each fn run SAMPLES times, turn by turn (so drift in the machine's load hits all alike), after 2 warm-up rounds; medians. */
async function interleaved(fns: Array<() => Promise<unknown>>): Promise<number[]> {
  const ms: number[][] = fns.map(() => []);
  for (let round = 0; round < SAMPLES + 2; round++)
    for (const [i, fn] of fns.entries()) {
      const r = await timed(fn);
      if (round >= 2) ms[i].push(r.ms);
    }
  return ms.map(median);
}
const line = (what: string, ms: number, base: number, aim?: number) =>
  console.log(
    `  ${what.padEnd(34)} ${ms.toFixed(0).padStart(6)} ms   ${(ms / base).toFixed(2)}x the baseline${aim ? `   (aim <= ${aim} ms) ${ms <= aim ? 'OK' : 'OVER'}` : ''}`,
  );

try {
  console.log(
    `bench/orchestrator: ${SERVICES} services on ${SERVERS} servers (${desired.length} resources), droplets answer from memory, median of ${SAMPLES}`,
  );

  // Empty mesh: every step a create.
  const expectSteps = (n: number) => (p: { steps: Array<{ action: string; id: string }> }) => {
    if (p.steps.length !== n)
      throw new Error(`expected ${n} steps, got ${p.steps.length}: ${p.steps.slice(0, 5).map((s) => `${s.action} ${s.id}`)}`);
  };
  const [baseEmpty, planEmpty, pure] = await interleaved([
    () => observe(mesh, STACK, desired, {}),
    async () => expectSteps(desired.length)(await orchestrator.plan(STACK, file, '')),
    async () => planSteps(desired, {}, {}, {}),
  ]);
  console.log('  empty mesh (everything to create):');
  line('read the live state (baseline)', baseEmpty, baseEmpty);
  line('plan (read, plan, store)', planEmpty, baseEmpty, 1000);
  line('planner alone (no I/O)', pure, baseEmpty);

  // Applied: a no-op plan, then a no-op apply (from a saved plan id to the apply's end).
  applied = true;
  const o = await observe(mesh, STACK, desired, {});
  if (Object.keys(o.live).length !== desired.length) throw new Error(`live has ${Object.keys(o.live).length} of ${desired.length}`);
  const noopApply = async () => {
    const p = await orchestrator.plan(STACK, file, '');
    expectSteps(0)(p);
    const t = performance.now();
    const a = await orchestrator.apply(STACK, p.id, 'rollback');
    const done = await orchestrator.finished(a.id);
    if (done?.status !== 'succeeded') throw new Error(`apply ${done?.status}`);
    return performance.now() - t;
  };
  const applyAlone: number[] = [];
  const [base, planNoop, planAndApply] = await interleaved([
    () => observe(mesh, STACK, desired, {}),
    async () => expectSteps(0)(await orchestrator.plan(STACK, file, '')),
    async () => applyAlone.push(await noopApply()),
  ]);
  console.log('  applied mesh (nothing to change):');
  line('read the live state (baseline)', base, base);
  line('plan (no-op)', planNoop, base, 1000);
  line('no-op apply (saved plan id → end)', median(applyAlone.slice(2)), base, 2000);
  line('plan + no-op apply', planAndApply, base, 3000);
} finally {
  await orchestrator.stop();
  await bus.close();
  await nats.stop({ removeStore: true });
  stub.close();
}
