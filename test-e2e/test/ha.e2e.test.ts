// The control plane across machines, on one: `npm start` with three nats-servers (NATS_CLUSTER=3,
// real processes with their own ports and store directories, three replicas per bucket) and two
// replicas of every droplet (MESH_REPLICAS=2), a route serving an app through both nginx under
// load, and an app deployed by the deployer (an uploaded .tar.gz). Then: kill -9 a NATS node, kill -9 one replica of each droplet in turn, freeze a NATS
// node (SIGSTOP) for HA_PARTITION_S (default 30 s) and let it go.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, request as httpRequest, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureDockerEngine, ensureNodeBaseImage } from '@droplet-mesh/docker-testing';
import { Bus } from '@droplet-mesh/udc-kit';
import { freePort, waitFor } from '@droplet-mesh/udc-kit/testing';
import { removeDeployedApps } from '../support/compose-app.js';
import { appTarball } from '../support/mesh-app.js';
import { MESH_DROPLETS, NpmStart } from '../support/npm-start.js';

const PARTITION_S = Number(process.env.HA_PARTITION_S ?? 30);

let mesh: NpmStart;
let docker: Awaited<ReturnType<typeof ensureDockerEngine>>;
let token: string;
let app: Server;
let appPort: number;
let bus: Bus;
let routesKv: Awaited<ReturnType<Bus['kv']>>;
/** route.applied events by route name: a change applied twice would show twice. */
const applied = new Map<string, number>();
/** deployment.released events by deployment id: a deploy run twice would show twice. */
const released = new Map<string, number>();
const PROJECT = `ha${Date.now().toString(36)}`;
const APP_DOMAIN = 'app.ha.test';
const tmp = mkdtempSync(join(tmpdir(), 'mesh-ha-'));

const replicaUrl = (droplet: string, replica: 1 | 2) => {
  const u = new URL(mesh.url(droplet));
  u.port = String(Number(u.port) + replica - 1);
  return u.toString().replace(/\/$/, '');
};
const nginxPorts = () => [mesh.ports.PROXY_HTTP_PORT, mesh.ports.PROXY_HTTP_PORT + 1];
const natsPort = (node: number) => mesh.ports.NATS_PORT + node - 1;
const auth = () => ({ Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' });

/** GET through one of the mesh's nginx with a Host header. */
function viaNginx(port: number, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    // A new connection each time (agent: false): Node's keep-alive reuse races nginx closing idle
    // connections at a reload (every route write here reloads both nginx); that is the client's
    // race, which browsers retry, not a request nginx failed.
    const req = httpRequest({ host: '127.0.0.1', port, path: '/', headers: { host }, timeout: 3000, agent: false }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', (e) => resolve({ status: 0, body: e.message }));
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

async function health(url: string): Promise<number> {
  return (await fetch(`${url}/health`, { signal: AbortSignal.timeout(1500) }).catch(() => undefined))?.status ?? 0;
}

async function everyReplicaActive(): Promise<boolean> {
  const all = await Promise.all(MESH_DROPLETS.flatMap((d) => [health(replicaUrl(d, 1)), health(replicaUrl(d, 2))]));
  return all.every((s) => s === 200);
}

/** Requests through both nginx until stopped; every answer that is not the app's is a failure. */
function loadThroughNginx() {
  const failures: string[] = [];
  let served = 0;
  let running = true;
  // The route to this test's own app server, and the app the deployer runs (any version).
  const targets = [
    { host: 'ha-app.ha.test', ok: (b: string) => b === 'app answers' },
    { host: APP_DOMAIN, ok: (b: string) => /^v\d$/.test(b) },
  ];
  const done = (async () => {
    for (let i = 0; running; i++) {
      const port = nginxPorts()[i % 2];
      const t = targets[Math.floor(i / 2) % 2];
      const r = await viaNginx(port, t.host);
      if (r.status === 200 && t.ok(r.body)) served++;
      else failures.push(`:${port} ${t.host} ${r.status} ${r.body.slice(0, 80)}`);
      await new Promise((res) => setTimeout(res, 20));
    }
  })();
  return {
    async stop() {
      running = false;
      await done;
      return { failures, served };
    },
  };
}

async function putRoute(replica: 1 | 2, name: string): Promise<number> {
  const res = await fetch(`${replicaUrl('proxy-manager', replica)}/proxies/${name}`, {
    method: 'PUT',
    headers: auth(),
    body: JSON.stringify({ domain: `${name}.ha.test`, upstreams: [{ host: '127.0.0.1', port: appPort }] }),
    signal: AbortSignal.timeout(8000),
  }).catch(() => undefined);
  return res?.status ?? 0;
}
const ok = (status: number) => status >= 200 && status < 300;

interface DeployerAnswer {
  status: number;
  body: { id: string; status: string; items: { id: string }[] };
}

async function deployer(replica: 1 | 2, method: string, path: string, body?: unknown): Promise<DeployerAnswer> {
  const res = await fetch(`${replicaUrl('deployer', replica)}${path}`, {
    method,
    headers: auth(),
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(10_000),
  });
  return { status: res.status, body: (await res.json()) as DeployerAnswer['body'] };
}

/** Upload the app's .tar.gz to one deployer replica; follow it on the other until it finishes. */
async function deploy(version: string, via: 1 | 2, follow: 1 | 2): Promise<{ id: string; status: string }> {
  const { bytes } = appTarball(tmp, version);
  const form = new FormData();
  form.set('project', PROJECT);
  form.set('service', 'web');
  form.set('environment', 'prod');
  form.set('source', new Blob([bytes], { type: 'application/gzip' }), `app-${version}.tar.gz`);
  const post = () =>
    fetch(`${replicaUrl('deployer', via)}/deployments`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
      body: form,
      signal: AbortSignal.timeout(30_000),
    });
  let res = await post();
  if (res.status === 503) {
    // The contract's "try again shortly" (NATS can still be settling after the node killed
    // before): one retry, as a client would. What follows checks that the deploy ran once.
    console.log(`ha e2e: POST /deployments answered 503, retried once: ${await res.text()}`);
    res = await post();
  }
  const answer = { status: res.status, body: (await res.json()) as { id: string } };
  expect(answer).toMatchObject({ status: 202 });
  const { id } = answer.body;
  let d: { id: string; status: string } = { id, status: 'unknown' };
  await waitFor(
    `deployment ${version} to finish`,
    async () => {
      d = (await deployer(follow, 'GET', `/deployments/${id}`)).body;
      return ['succeeded', 'failed', 'interrupted', 'rolled_back'].includes(d.status);
    },
    120_000,
    250,
  );
  return d;
}

/** Each route changed exactly once: one route.applied event (events arrive a moment after the answer). */
async function expectAppliedOnce(names: string[]): Promise<void> {
  await waitFor('route.applied events', () => names.every((n) => applied.has(n)), 5_000, 50).catch(() => undefined);
  expect(Object.fromEntries(names.map((n) => [n, applied.get(n)]))).toEqual(Object.fromEntries(names.map((n) => [n, 1])));
}

/** What the mesh says about the deployed app, for a failure message. */
async function diagnose(failures: string[]): Promise<string> {
  const target = `app-${PROJECT}-web-prod`;
  const get = async (url: string) =>
    fetch(url, { headers: auth(), signal: AbortSignal.timeout(5000) }).then(
      async (r) => `${r.status} ${(await r.text()).slice(0, 1500)}`,
      (e) => String(e),
    );
  const containers = (await docker.listContainers({ all: true, filters: { label: [`mesh.project=${PROJECT}`] } })).map(
    (c) => `${c.Names.join(',')} ${c.State} ${c.Status} ${JSON.stringify(c.Ports)}`,
  );
  return [
    `first failures: ${failures.slice(0, 3).join(' | ')} (${failures.length} in all) at ${new Date().toISOString()}`,
    `proxy-manager: ${await get(`${replicaUrl('proxy-manager', 1)}/proxies/${target}`)}`,
    `proxy-manager-2: ${await get(`${replicaUrl('proxy-manager', 2)}/proxies/${target}`)}`,
    `deployer: ${await get(`${replicaUrl('deployer', 2)}/services/${target}`)}`,
    `containers: ${containers.join('\n')}`,
    `data: ${mesh.dataDir}`,
  ].join('\n');
}

beforeAll(async () => {
  appPort = await freePort();
  app = createServer((_req, res) => res.end('app answers')).listen(appPort, '127.0.0.1');
  docker = await ensureDockerEngine();
  const nodeImage = await ensureNodeBaseImage(docker);
  // App ports in the deployer's default range (20000-29999), away from the mesh's (npm-start.ts: 10000-19999).
  const lo = 20_000 + Math.floor(Math.random() * 9_800);
  mesh = await NpmStart.create({
    NATS_CLUSTER: '3',
    MESH_REPLICAS: '2',
    NODE_BASE_IMAGE: nodeImage,
    DEPLOY_PORT_RANGE: `${lo}-${lo + 199}`,
    HEALTH_TIMEOUT_S: '30',
  });
  token = await mesh.ready(170_000);
  const passwords = JSON.parse(readFileSync(join(mesh.dataDir, 'nats', 'credentials.json'), 'utf8'));
  // On the third node: the first is killed and the second frozen below, and no event may be missed.
  bus = await Bus.connect({
    url: `nats://127.0.0.1:${natsPort(3)}`,
    name: 'proxy-manager',
    user: 'proxy-manager',
    pass: passwords['proxy-manager'],
    replicas: 3,
  });
  routesKv = await bus.kv('routes');
  bus.nc.subscribe('udc.proxy-manager.events.route.applied', {
    callback: (_e, m) => {
      const name = m.json<{ name: string }>().name;
      applied.set(name, (applied.get(name) ?? 0) + 1);
    },
  });
  bus.nc.subscribe('udc.deployer.events.deployment.released', {
    callback: (_e, m) => {
      const id = m.json<{ deployment_id: string }>().deployment_id;
      released.set(id, (released.get(id) ?? 0) + 1);
    },
  });
  expect(ok(await putRoute(1, 'ha-app'))).toBe(true);
  expect((await deployer(2, 'POST', '/projects', { name: PROJECT })).status).toBe(201);
  expect((await deployer(1, 'POST', `/projects/${PROJECT}/environments`, { name: 'prod' })).status).toBe(201);
  expect(
    (await deployer(2, 'POST', `/projects/${PROJECT}/services`, { name: 'web', type: 'web', domain: APP_DOMAIN, health_path: '/health' }))
      .status,
  ).toBe(201);
  expect((await deploy('v1', 1, 2)).status).toBe('succeeded');
  for (const port of nginxPorts())
    await waitFor(`nginx :${port} to serve the route`, async () => (await viaNginx(port, 'ha-app.ha.test')).status === 200, 20_000, 100);
  for (const port of nginxPorts())
    await waitFor(`nginx :${port} to serve the deployed app`, async () => (await viaNginx(port, APP_DOMAIN)).body === 'v1', 20_000, 100);
}, 240_000);

afterAll(async () => {
  await bus?.close();
  // HA_KEEP_DATA=1 keeps DATA_DIR (logs of every part) for a look after a failure.
  await mesh?.stop({ removeData: process.env.HA_KEEP_DATA !== '1' });
  if (docker) await removeDeployedApps(docker, PROJECT);
  rmSync(tmp, { recursive: true, force: true });
  app?.close();
});

describe('the mesh on a three-node NATS cluster with two replicas of every droplet', () => {
  it('the registry lists both replicas of every droplet', async () => {
    const res = await fetch(`${replicaUrl('registry', 2)}/droplets?kind=service&per_page=200`, { headers: auth() });
    const items = ((await res.json()) as { items: { id: string; name: string; status: string }[] }).items;
    for (const d of MESH_DROPLETS)
      expect(
        items
          .filter((r) => r.name === d)
          .map((r) => r.id)
          .sort(),
      ).toEqual([d, `${d}-2`]);
  });

  it('kill -9 of a NATS node: no acknowledged write lost, every droplet active within 10 s, no failed request through nginx', async () => {
    const load = loadThroughNginx();
    const acked: string[] = [];
    let killedAt = 0;
    let ackedAfterKill = 0;
    let writing = true;
    const writer = (async () => {
      for (let i = 0; writing; i++) {
        const name = `ha-kill-${i}`;
        if (ok(await putRoute(((i % 2) + 1) as 1 | 2, name))) {
          acked.push(name);
          if (killedAt) ackedAfterKill++;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    await waitFor('a write acknowledged before the kill', () => acked.length > 0, 15_000, 50);
    killedAt = Date.now();
    process.kill(mesh.pidOf('nats-n1'), 'SIGKILL');
    await waitFor('every replica of every droplet active', everyReplicaActive, 10_000, 100);
    const activeAfterMs = Date.now() - killedAt;
    await waitFor('writes acknowledged after the kill', () => ackedAfterKill >= 3, 20_000, 100);
    writing = false;
    await writer;
    const { failures, served } = await load.stop();
    expect(failures).toEqual([]);
    expect(served).toBeGreaterThan(20);
    expect(activeAfterMs).toBeLessThanOrEqual(10_000);
    for (const name of acked) expect([name, (await routesKv.get(name))?.operation]).toEqual([name, 'PUT']);
    await expectAppliedOnce(acked);
  }, 60_000);

  it('kill -9 of one replica of each droplet in turn: the other answers (one retry at most), routes change once', async () => {
    // In the mesh's order: the deployer's turn redeploys the app, and the health-monitor and the
    // others are killed after it, with the monitors watching the new address (a false incident on
    // the old one would restart the app under the load of the next test).
    for (const d of MESH_DROPLETS) {
      // In turn: the previous one is back before the next is killed.
      await waitFor('every replica active', everyReplicaActive, 60_000, 200);
      const before = mesh.pidOf(d);
      process.kill(before, 'SIGKILL');
      const other = replicaUrl(d, 2);
      let res = await fetch(`${other}/state`, { headers: auth(), signal: AbortSignal.timeout(5000) }).catch(() => undefined);
      if (res?.status !== 200)
        res = await fetch(`${other}/state`, { headers: auth(), signal: AbortSignal.timeout(5000) }).catch(() => undefined);
      expect([d, res?.status]).toEqual([d, 200]);
      if (d === 'deployer') {
        // A deploy through the survivor runs once: one release, one deployment.released.
        const v2 = await deploy('v2', 2, 2);
        expect(v2.status).toBe('succeeded');
        await waitFor('deployment.released of v2', () => released.has(v2.id), 5_000, 50).catch(() => undefined);
        expect([...released.values()]).toEqual([1, 1]);
        const listed = (await deployer(2, 'GET', `/deployments?project=${PROJECT}&per_page=100`)).body.items as { id: string }[];
        expect(listed).toHaveLength(2);
        await waitFor(
          "the survivor's nginx serving v2",
          async () => (await viaNginx(nginxPorts()[1], APP_DOMAIN)).body === 'v2',
          15_000,
          100,
        );
      }
      if (d === 'proxy-manager') {
        // A route change through the survivor is applied once and served by both nginx once the first is back.
        expect(ok(await putRoute(2, 'ha-survivor'))).toBe(true);
        await waitFor(
          'the survivor serving the new route',
          async () => (await viaNginx(nginxPorts()[1], 'ha-survivor.ha.test')).status === 200,
          10_000,
          100,
        );
      }
      await waitFor(
        `${d} restarted by the supervisor`,
        () => mesh.children().children.some((c) => c.name === d && c.pid !== before),
        15_000,
        100,
      );
    }
    await waitFor('every replica active again', everyReplicaActive, 60_000, 200);
    await waitFor(
      "the restarted proxy serving the survivor's route",
      async () => (await viaNginx(nginxPorts()[0], 'ha-survivor.ha.test')).status === 200,
      15_000,
      100,
    );
    await expectAppliedOnce(['ha-survivor']);
  }, 150_000);

  it(
    `a NATS node frozen for ${PARTITION_S} s takes no write, rejoins and catches up`,
    async () => {
      const frozen = mesh.pidOf('nats-n2');
      const load = loadThroughNginx();
      process.kill(frozen, 'SIGSTOP');
      const acked: string[] = [];
      const ackedAt: number[] = [];
      const frozenAt = Date.now();
      let minorityWrite: string | undefined;
      try {
        // The minority (the frozen node alone) acknowledges nothing.
        const alone = await Bus.connect({
          url: `nats://127.0.0.1:${natsPort(2)}`,
          name: 'proxy-manager',
          user: 'proxy-manager',
          pass: JSON.parse(readFileSync(join(mesh.dataDir, 'nats', 'credentials.json'), 'utf8'))['proxy-manager'],
          connectTimeoutMs: 3000,
          replicas: 3,
        }).catch(() => undefined);
        if (alone) {
          minorityWrite = await (await alone.kv('routes')).put('ha-minority', '{}').then(
            (r) => `revision ${r}`,
            () => undefined,
          );
          await alone.close();
        }
        // The majority keeps taking writes (an election may cost a retry).
        const until = Date.now() + PARTITION_S * 1000;
        for (let i = 0; Date.now() < until; i++) {
          const name = `ha-part-${i}`;
          for (let attempt = 0; attempt < 3; attempt++)
            if (ok(await putRoute(((i % 2) + 1) as 1 | 2, name))) {
              acked.push(name);
              ackedAt.push(Date.now() - frozenAt);
              break;
            }
          await new Promise((r) => setTimeout(r, 1000));
        }
      } finally {
        process.kill(frozen, 'SIGCONT');
      }
      expect(minorityWrite).toBeUndefined();
      // The majority kept taking writes to the end of the partition (a client on the frozen node
      // moves after two missed pings, ~10 s: its requests in the meantime time out).
      expect(acked.length).toBeGreaterThanOrEqual(3);
      expect(Math.max(...ackedAt)).toBeGreaterThan(PARTITION_S * 500);
      // Reading through the node that was frozen, and only it: it has every write it missed.
      const passwords = JSON.parse(readFileSync(join(mesh.dataDir, 'nats', 'credentials.json'), 'utf8'));
      const rejoined = await Bus.connect({
        url: `nats://127.0.0.1:${natsPort(2)}`,
        name: 'proxy-manager',
        user: 'proxy-manager',
        pass: passwords['proxy-manager'],
        replicas: 3,
      });
      try {
        // JetStream's own word: the node's replica of the routes stream is current, with no lag.
        // Right after it continues, the node answers "temporarily unavailable" until it has caught up.
        let kv: Awaited<ReturnType<Bus['kv']>> | undefined;
        await waitFor(
          'nats-n2 current on the routes stream',
          async () => {
            kv ??= await rejoined.kv('routes');
            const info = await (await rejoined.jetstreamManager()).streams.info('KV_routes');
            const r = info.cluster?.replicas?.find((x) => x.name === 'nats-n2');
            return info.cluster?.leader === 'nats-n2' || (!!r?.current && !r.lag);
          },
          30_000,
          250,
        );
        if (!kv) throw new Error('unreachable');
        for (const n of acked) expect([n, (await kv.get(n))?.operation]).toEqual([n, 'PUT']);
        expect(await kv.get('ha-minority')).toBeNull();
      } finally {
        await rejoined.close();
      }
      const { failures } = await load.stop();
      if (failures.length) console.log(await diagnose(failures));
      expect(failures).toEqual([]);
      await expectAppliedOnce(acked);
    },
    PARTITION_S * 1000 + 90_000,
  );
});
