// The mesh's state on a three-node NATS cluster (real nats-servers, the mesh's authorization):
// replicated buckets keep every acknowledged write through losing a node, droplets fail over,
// and a frozen node rejoins and catches up.
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { Kvm } from '@nats-io/kv';
import { connect } from '@nats-io/transport-node';
import { Bus } from '../src/bus.js';
import { meshNatsUsers, renderNatsAuthorization } from '../src/nats-auth.js';
import { startNatsCluster, waitFor } from '../src/testing/index.js';

const password = (name: string) => `pw-${name}-cluster`;
let cluster: Awaited<ReturnType<typeof startNatsCluster>>;
let bus: Bus;

/** Retries `fn` until it succeeds: a cluster answers "temporarily unavailable" while it elects. */
async function eventually<T>(what: string, fn: () => Promise<T>, timeoutMs = 30_000): Promise<T> {
  let result: T | undefined;
  await waitFor(
    what,
    async () => {
      try {
        result = await fn();
        return true;
      } catch {
        return false;
      }
    },
    timeoutMs,
    250,
  );
  return result as T;
}

beforeAll(async () => {
  cluster = await startNatsCluster({ size: 3, authorization: renderNatsAuthorization(meshNatsUsers(password)) });
  bus = await Bus.connect({ url: cluster.url, name: 'deployer', user: 'deployer', pass: password('deployer'), replicas: 3 });
}, 60_000);

afterAll(async () => {
  await bus?.close();
  await cluster?.stop();
});

it('grows an existing one-replica bucket to NATS_REPLICAS', async () => {
  const single = await Bus.connect({ url: cluster.url, name: 'proxy-manager', user: 'proxy-manager', pass: password('proxy-manager') });
  try {
    await eventually('a one-replica bucket', () => single.kv('routes'));
  } finally {
    await single.close();
  }
  const three = await Bus.connect({
    url: cluster.url,
    name: 'proxy-manager',
    user: 'proxy-manager',
    pass: password('proxy-manager'),
    replicas: 3,
  });
  try {
    await three.kv('routes');
    const info = await (await three.jetstreamManager()).streams.info('KV_routes');
    expect(info.config.num_replicas).toBe(3);
  } finally {
    await three.close();
  }
}, 60_000);

it('keeps every acknowledged write when the node a droplet is connected to is killed, and fails over', async () => {
  const kv = await eventually('the replicated bucket', () => bus.kv('deployer'));
  for (let i = 0; i < 50; i++) await kv.put(`k${i}`, `v${i}`);
  const connectedTo = bus.nc.info?.server_name;
  const victim = cluster.nodes[cluster.names.indexOf(connectedTo ?? '')];
  expect(victim).toBeDefined();
  victim.process.kill('SIGKILL');

  // Writes go on through another node; nothing acknowledged before the kill is lost.
  await eventually('a write after the kill', () => kv.put('after-kill', 'yes'), 20_000);
  expect(bus.nc.info?.server_name).not.toBe(connectedTo);
  for (let i = 0; i < 50; i++) expect((await kv.get(`k${i}`))?.string()).toBe(`v${i}`);

  // The killed node comes back and catches up.
  await victim.restart();
  const direct = await connect({ servers: victim.url, user: 'deployer', pass: password('deployer'), inboxPrefix: '_INBOX_deployer' });
  try {
    const there = await new Kvm(direct).open('deployer');
    await eventually('the restarted node to have the write made while it was dead', async () => {
      if ((await there.get('after-kill'))?.string() !== 'yes') throw new Error('not yet');
    });
  } finally {
    await direct.close();
  }
}, 90_000);

it('a frozen node (SIGSTOP) does not stop the majority, and catches up when it continues', async () => {
  const kv = await bus.kv('deployer');
  const frozen = cluster.nodes[cluster.names.findIndex((name) => name !== bus.nc.info?.server_name)];
  frozen.process.kill('SIGSTOP');
  try {
    // Writes keep being acknowledged by the other two for as long as it stays frozen. When the
    // frozen node led the bucket's stream, the first write waits for the other two to elect a
    // new leader: seconds, more on a loaded machine (20 s was once not enough in CI).
    const until = Date.now() + 8000;
    for (let i = 0; Date.now() < until; i++) {
      await eventually('a write while one node is frozen', () => kv.put('during-freeze', `majority-${i}`), 45_000);
      await new Promise((r) => setTimeout(r, 200));
    }
    await kv.put('during-freeze', 'majority');
  } finally {
    frozen.process.kill('SIGCONT');
  }
  const direct = await eventually('a connection to the thawed node', () =>
    connect({ servers: frozen.url, user: 'deployer', pass: password('deployer'), inboxPrefix: '_INBOX_deployer', timeout: 2000 }),
  );
  try {
    const there = await new Kvm(direct).open('deployer');
    await eventually('the thawed node to catch up', async () => {
      if ((await there.get('during-freeze'))?.string() !== 'majority') throw new Error('not yet');
    });
  } finally {
    await direct.close();
  }
}, 150_000);
