import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Agent, request as httpRequest } from 'node:http';
import { readFile } from 'node:fs/promises';
import { Writable } from 'node:stream';
import request from 'supertest';
import { startHarness, type Harness } from './support/harness.js';
import { startUpstream, viaNginx, type Upstream } from './support/http.js';

// Upstream members switch through the Lua balancer (Debian's libnginx-mod-http-lua and
// lua-resty-core) without a reload, so keep-alive clients never see a connection closed.
let h: Harness;
let blue: Upstream;
let green: Upstream;

beforeAll(async () => {
  [blue, green] = await Promise.all([startUpstream('blue'), startUpstream('green')]);
  h = await startHarness({ env: { RECONCILE_COALESCE_MS: '0' } });
}, 60_000);
afterAll(async () => {
  await h?.close();
  await Promise.all([blue, green].map((u) => u?.close()));
});

const put = (name: string, body: object) => request(h.pm.droplet.app).put(`/proxies/${name}`).set(h.auth()).send(body);

/** One GET on a keep-alive agent; resolves with the status and body, or the error's code. */
function get(agent: Agent, host: string): Promise<{ status: number; body: string } | { error: string }> {
  return new Promise((resolve) => {
    const req = httpRequest({ host: '127.0.0.1', port: h.httpPort, path: '/', headers: { host }, agent, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', (err) => resolve({ error: (err as NodeJS.ErrnoException).code ?? err.message }));
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
    req.on('error', (err) => resolve({ error: (err as NodeJS.ErrnoException).code ?? err.message }));
    req.end();
  });
}

describe('reload-free upstream changes (Lua balancer)', () => {
  it('is in use here, and the route file holds no addresses', async () => {
    expect(h.pm.dynamic).toBeDefined();
    expect((await put('ka', { domain: 'ka.test', upstreams: [{ host: '127.0.0.1', port: blue.port }] })).status).toBe(201);
    const file = await readFile(`${h.pm.paths.sitesAvailable}/mesh-ka.conf`, 'utf8');
    expect(file).toContain('proxy_pass http://mesh_balancer;');
    expect(file).not.toContain('lua');
    expect(file).not.toContain(`127.0.0.1:${blue.port}`);
    expect((await viaNginx(h.httpPort, 'ka.test')).body).toContain('upstream blue');
    // Structural changes are tested on a Lua-free copy that includes the same route files.
    const testConf = await readFile(h.pm.nginx.testConfFile as string, 'utf8');
    expect(testConf).not.toContain('lua');
    expect(testConf).toContain(`include ${h.pm.paths.sitesEnabled}/*.conf;`);
  });

  it('20 keep-alive clients see no reset and no error during 100 upstream changes, and nginx never reloads', async () => {
    const reloadsBefore = h.pm.nginx.reloads;
    const results: Array<{ status: number; body: string } | { error: string }> = [];
    let running = true;
    const agents = Array.from({ length: 20 }, () => new Agent({ keepAlive: true, maxSockets: 1 }));
    const clients = agents.map(async (agent) => {
      while (running) results.push(await get(agent, 'ka.test'));
    });
    try {
      for (let i = 0; i < 100; i++) {
        const to = i % 2 === 0 ? green : blue;
        const res = await put('ka', { domain: 'ka.test', require_healthy: false, upstreams: [{ host: '127.0.0.1', port: to.port }] });
        expect(res.status).toBe(200);
      }
    } finally {
      running = false;
      await Promise.all(clients);
      for (const a of agents) a.destroy();
    }
    const failed = results.filter((r) => 'error' in r || r.status !== 200);
    expect(failed).toEqual([]);
    expect(results.length).toBeGreaterThan(200);
    const bodies = results.map((r) => ('body' in r ? r.body : ''));
    expect(bodies.some((b) => b.includes('upstream blue'))).toBe(true);
    expect(bodies.some((b) => b.includes('upstream green'))).toBe(true);
    expect(h.pm.nginx.reloads).toBe(reloadsBefore);
    // The 100th change (i = 99) pointed at blue: that is what serves now.
    expect((await viaNginx(h.httpPort, 'ka.test')).body).toContain('upstream blue');
  }, 120_000);

  it('a structural change still goes through nginx -t and one reload; the members survive it and a restart', async () => {
    const [tests, reloads] = [h.pm.nginx.tests, h.pm.nginx.reloads];
    const res = await put('ka', {
      domain: 'ka.test',
      max_body_size: '2m',
      upstreams: [
        { host: '127.0.0.1', port: blue.port },
        { host: '127.0.0.1', port: green.port, weight: 3 },
      ],
    });
    expect(res.status).toBe(200);
    expect(h.pm.nginx.tests).toBe(tests + 1);
    expect(h.pm.nginx.reloads).toBe(reloads + 1);
    const seen = new Set<string>();
    for (let i = 0; i < 16; i++) seen.add((await viaNginx(h.httpPort, 'ka.test')).body.split(' ')[1]);
    expect([...seen].sort()).toEqual(['blue', 'green']);
    await h.restartDroplet();
    expect(h.pm.dynamic).toBeDefined();
    expect((await viaNginx(h.httpPort, 'ka.test')).status).toBe(200);
  }, 60_000);

  it('the control socket refuses a request without the secret', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpRequest({ socketPath: h.pm.paths.controlSocket, path: '/upstreams', method: 'POST', agent: false }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end(`mesh_ka\t127.0.0.1|1|1\n`);
    });
    expect(status).toBe(403);
    expect((await viaNginx(h.httpPort, 'ka.test')).status).toBe(200);
  });
});

describe('without the Lua module', () => {
  it('falls back to reloads and says so in the log', async () => {
    let logs = '';
    const sink = new Writable({
      write: (c, _e, cb) => {
        logs += String(c);
        cb();
      },
    });
    const up = await startUpstream('plain');
    const plain = await startHarness({ env: { NGINX_MODULES_DIR: '/nonexistent/modules' }, deps: { logDestination: sink } });
    try {
      expect(plain.pm.dynamic).toBeUndefined();
      expect(logs).toMatch(/"action":"nginx.lua","result":"unavailable","reason":"\/nonexistent\/modules\/ndk_http_module.so not found/);
      const reloads = plain.pm.nginx.reloads;
      const res = await request(plain.pm.droplet.app)
        .put('/proxies/plain')
        .set(plain.auth())
        .send({ domain: 'plain.test', upstreams: [{ host: '127.0.0.1', port: up.port }] });
      expect(res.status).toBe(201);
      expect(plain.pm.nginx.reloads).toBe(reloads + 1);
      expect(await readFile(`${plain.pm.paths.sitesAvailable}/mesh-plain.conf`, 'utf8')).toContain(`server 127.0.0.1:${up.port}`);
      expect((await viaNginx(plain.httpPort, 'plain.test')).body).toContain('upstream plain');
    } finally {
      await plain.close();
      await up.close();
    }
  }, 60_000);
});
