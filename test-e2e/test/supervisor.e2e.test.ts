// `npm start` survives its own parts dying: real processes, real NATS and nginx, kill -9.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createServer, request as httpRequest, type Server } from 'node:http';
import { freePort, waitFor } from '@droplet-mesh/udc-kit/testing';
import { isAlive, MESH_DROPLETS, NpmStart } from '../support/npm-start.js';

async function allActive(mesh: NpmStart): Promise<boolean> {
  for (const d of MESH_DROPLETS) {
    const res = await fetch(`${mesh.url(d)}/health`, { signal: AbortSignal.timeout(1000) }).catch(() => undefined);
    if (res?.status !== 200) return false;
  }
  return true;
}

/** GET through the mesh's nginx with a Host header. */
function viaNginx(port: number, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const req = httpRequest({ host: '127.0.0.1', port, path: '/', headers: { host }, timeout: 2000 }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', (e) => resolve({ status: 0, body: e.message }));
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

describe('npm start under chaos', () => {
  let mesh: NpmStart;
  let token: string;
  let app: Server;
  const auth = () => ({ Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' });

  beforeAll(async () => {
    const appPort = await freePort();
    app = createServer((_req, res) => res.end('app answers')).listen(appPort, '127.0.0.1');
    mesh = await NpmStart.create();
    token = await mesh.ready();
    const put = await fetch(`${mesh.url('proxy-manager')}/proxies/chaos-app`, {
      method: 'PUT',
      headers: auth(),
      body: JSON.stringify({ domain: 'chaos.test', upstreams: [{ host: '127.0.0.1', port: appPort }] }),
    });
    expect([200, 201]).toContain(put.status);
    await waitFor('the route to serve', async () => (await viaNginx(mesh.ports.PROXY_HTTP_PORT, 'chaos.test')).status === 200, 15_000);
  }, 150_000);

  afterAll(async () => {
    await mesh?.stop({ removeData: true });
    app?.close();
  });

  it('kill -9 of nats-server: restarted, every droplet active again, the route serves throughout, KV intact', async () => {
    const failures: string[] = [];
    let served = 0;
    let loading = true;
    const load = (async () => {
      while (loading) {
        const r = await viaNginx(mesh.ports.PROXY_HTTP_PORT, 'chaos.test');
        if (r.status === 200) served++;
        else failures.push(`${r.status} ${r.body.slice(0, 80)}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const before = mesh.pidOf('nats');
    process.kill(before, 'SIGKILL');
    await waitFor('a new nats-server', () => mesh.children().children.some((c) => c.name === 'nats' && c.pid !== before), 15_000, 100);
    await waitFor('every droplet active again', () => allActive(mesh), 30_000, 200);
    loading = false;
    await load;
    expect(failures).toEqual([]);
    expect(served).toBeGreaterThan(10);
    expect(mesh.output()).toContain('nats exited (SIGKILL); restarting');
    // The route, held in JetStream under DATA_DIR, is still there.
    const route = await fetch(`${mesh.url('proxy-manager')}/proxies/chaos-app`, { headers: auth() });
    expect(route.status).toBe(200);
  }, 90_000);

  it('kill -9 of each droplet in turn: restarted, active, listed once in the registry', async () => {
    for (const name of MESH_DROPLETS) {
      const before = mesh.pidOf(name);
      process.kill(before, 'SIGKILL');
      await waitFor(`${name} restarted`, () => mesh.children().children.some((c) => c.name === name && c.pid !== before), 20_000, 100);
      await waitFor(
        `${name} active`,
        async () => (await fetch(`${mesh.url(name)}/health`).catch(() => undefined))?.status === 200,
        30_000,
        100,
      );
    }
    await waitFor('every droplet active', () => allActive(mesh), 30_000, 200);
    const res = await fetch(`${mesh.url('registry')}/droplets?kind=service`, { headers: auth() });
    const ids = ((await res.json()) as { items: { id: string; status: string }[] }).items.map((r) => r.id);
    for (const name of MESH_DROPLETS) expect(ids.filter((id) => id === name)).toHaveLength(1);
  }, 240_000);

  it('a second npm start on the same DATA_DIR refuses with one line', async () => {
    const second = await NpmStart.create({}, mesh.dataDir);
    expect(await second.waitExit(30_000)).toBe(1);
    expect(second.output()).toMatch(/another npm start \(pid \d+\) is running on/);
    expect(second.output()).not.toMatch(/\n\s+at /); // no stack trace
  }, 60_000);

  it('kill -9 of the supervisor leaves nothing running, and the next npm start comes up cleanly', async () => {
    const { supervisor, children } = mesh.children();
    process.kill(supervisor, 'SIGKILL');
    await waitFor('every child gone', () => children.every((c) => !isAlive(c.pid)), 10_000, 100);
    await waitFor('nginx gone', async () => (await viaNginx(mesh.ports.PROXY_HTTP_PORT, 'chaos.test')).status === 0, 10_000, 100);
    const next = await NpmStart.create({}, mesh.dataDir);
    try {
      await next.ready();
      expect(await allActive(next)).toBe(true);
    } finally {
      await next.stop();
    }
  }, 150_000);
});

it('a droplet that crashes at every start: the supervisor gives up, names it, and stops the rest', async () => {
  // An invalid setting makes the deployer exit at start, every time.
  const mesh = await NpmStart.create({ DEPLOY_PORT_RANGE: 'not-a-range', MESH_MAX_RESTARTS: '2' });
  try {
    expect(await mesh.waitExit(120_000)).toBe(1);
    const out = mesh.output();
    expect(out).toMatch(/deployer exited \(code 1\) 3 times within 60 s; giving up/);
    expect(out).toContain('DEPLOY_PORT_RANGE'); // the last log lines say why
    const { children } = mesh.children();
    expect(children).toEqual([]);
  } finally {
    await mesh.stop({ removeData: true });
  }
}, 180_000);
