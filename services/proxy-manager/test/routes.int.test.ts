import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readFile, writeFile, unlink, readdir } from 'node:fs/promises';
import request from 'supertest';
import { expectEnvelope, waitFor } from '@droplet-mesh/udc-kit/testing';
import { startHarness, type Harness } from './support/harness.js';
import { startUpstream, viaNginx, type Upstream } from './support/http.js';

// Real nats-server, real nginx (Debian) on 127.0.0.1 high ports, real upstream servers.
let h: Harness;
let blue: Upstream;
let green: Upstream;
let sick: Upstream;
let breakRender = new Set<string>();

beforeAll(async () => {
  [blue, green, sick] = await Promise.all([startUpstream('blue'), startUpstream('green'), startUpstream('sick', { healthy: false })]);
  h = await startHarness({
    deps: { transformRender: (name, text) => (breakRender.has(name) ? `${text}\nthis_is_not_a_directive on;\n` : text) },
  });
});
afterAll(async () => {
  await h?.close();
  await Promise.all([blue, green, sick].map((u) => u?.close()));
});

const put = (name: string, body: object) => request(h.pm.droplet.app).put(`/proxies/${name}`).set(h.auth()).send(body);

describe('routes through the real nginx', () => {
  it('creates a route (201) that serves real traffic, updates it (200) and deletes it', async () => {
    const created = await put('app', { domain: 'app.test', upstreams: [{ host: '127.0.0.1', port: blue.port }] });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ name: 'app', domain: 'app.test', lb: 'round_robin', status: { state: 'serving' } });
    expect(typeof created.body.applied_revision).toBe('number');
    expect((await viaNginx(h.httpPort, 'app.test')).body).toContain('upstream blue');

    const updated = await put('app', { domain: 'app.test', upstream_host: 'localhost', upstream_port: green.port, lb: 'least_conn' });
    expect(updated.status).toBe(200);
    expect(updated.body.applied_revision).toBeGreaterThan(created.body.applied_revision);
    expect(updated.body.upstreams).toEqual([{ host: 'localhost', port: green.port, weight: 1 }]);
    expect((await viaNginx(h.httpPort, 'app.test')).body).toContain('upstream green');

    const one = await request(h.pm.droplet.app)
      .get('/proxies/app')
      .set(h.auth(['read']));
    expect(one.status).toBe(200);
    expect(one.body.status.health).toMatchObject({
      ok: true,
      upstreams: [{ host: 'localhost', port: green.port, ok: true, status_code: 200 }],
    });
    expect(one.body.applied_revision).toBe(updated.body.applied_revision);

    const del = await request(h.pm.droplet.app).delete('/proxies/app').set(h.auth());
    expect(del.status).toBe(200);
    expect((await viaNginx(h.httpPort, 'app.test')).status).toBe(404);
    expectEnvelope(
      await request(h.pm.droplet.app)
        .get('/proxies/app')
        .set(h.auth(['read'])),
      404,
      'NOT_FOUND',
    );
    expectEnvelope(await request(h.pm.droplet.app).delete('/proxies/app').set(h.auth()), 404, 'NOT_FOUND');
  });

  it('refuses an unhealthy upstream with 422 DEPENDENCY_UNAVAILABLE and changes nothing on disk', async () => {
    const before = await readdir(h.pm.paths.sitesAvailable);
    const res = await put('sick', { domain: 'sick.test', upstreams: [{ host: '127.0.0.1', port: sick.port }] });
    expectEnvelope(res, 422, 'DEPENDENCY_UNAVAILABLE');
    expect(res.body.error.details.health.upstreams[0]).toMatchObject({ ok: false, status_code: 503 });
    expect(await readdir(h.pm.paths.sitesAvailable)).toEqual(before);
    const down = await put('down', { domain: 'down.test', upstreams: [{ host: '127.0.0.1', port: 1 }] });
    expectEnvelope(down, 422, 'DEPENDENCY_UNAVAILABLE');
  });

  it('a change that fails nginx -t rolls back byte for byte (422 with nginx output) while other routes keep serving', async () => {
    expect((await put('keep', { domain: 'keep.test', upstreams: [{ host: '127.0.0.1', port: blue.port }] })).status).toBe(201);
    expect((await put('victim', { domain: 'victim.test', upstreams: [{ host: '127.0.0.1', port: blue.port }] })).status).toBe(201);
    const file = `${h.pm.paths.sitesAvailable}/mesh-victim.conf`;
    const bytesBefore = await readFile(file);
    const reloadsBefore = h.pm.nginx.reloads;
    breakRender.add('victim');
    breakRender.add('fresh');
    try {
      const res = await put('victim', { domain: 'victim.test', upstreams: [{ host: '127.0.0.1', port: green.port }] });
      expectEnvelope(res, 422, 'INVALID_REQUEST');
      expect(res.body.error.details.nginx_output).toContain('unknown directive "this_is_not_a_directive"');
      expect((await readFile(file)).equals(bytesBefore)).toBe(true);
      const fresh = await put('fresh', { domain: 'fresh.test', upstreams: [{ host: '127.0.0.1', port: green.port }] });
      expectEnvelope(fresh, 422);
      await expect(readFile(`${h.pm.paths.sitesAvailable}/mesh-fresh.conf`)).rejects.toThrow();
    } finally {
      breakRender = new Set();
    }
    expect(h.pm.nginx.reloads).toBe(reloadsBefore);
    expect((await viaNginx(h.httpPort, 'victim.test')).body).toContain('upstream blue');
    expect((await viaNginx(h.httpPort, 'keep.test')).body).toContain('upstream blue');
    const status = await request(h.pm.droplet.app)
      .get('/proxies/victim')
      .set(h.auth(['read']));
    expect(status.body.status.last_error.nginx_output).toContain('this_is_not_a_directive');
  });

  it('an unresolvable upstream does not break nginx: that route answers 502 and says why, others serve', async () => {
    const res = await put('ghost', {
      domain: 'ghost.test',
      require_healthy: false,
      upstreams: [{ host: 'no-such-host.invalid', port: 80 }],
    });
    expect(res.status).toBe(201);
    expect(res.body.status.state).toBe('no_upstream');
    expect(res.body.status.unresolved[0]).toMatchObject({ host: 'no-such-host.invalid', port: 80 });
    expect((await viaNginx(h.httpPort, 'ghost.test')).status).toBe(502);
    expect((await viaNginx(h.httpPort, 'keep.test')).status).toBe(200);
    // A host that is down is the same: 502 for that route only, nginx -t and reload pass.
    const dead = await put('dead', { domain: 'dead.test', require_healthy: false, upstreams: [{ host: '127.0.0.1', port: 9 }] });
    expect(dead.status).toBe(201);
    expect((await viaNginx(h.httpPort, 'dead.test')).status).toBe(502);
    expect((await viaNginx(h.httpPort, 'keep.test')).status).toBe(200);
  });

  it('two routes cannot claim one domain (409)', async () => {
    expectEnvelope(await put('keep-two', { domain: 'keep.test', upstreams: [{ host: '127.0.0.1', port: blue.port }] }), 409, 'CONFLICT');
  });

  it('fifty concurrent PUTs share one nginx -t and one reload, and each caller gets its own answer', async () => {
    await h.pm.reconciler.idle();
    const tests = h.pm.nginx.tests;
    const reloads = h.pm.nginx.reloads;
    breakRender.add('burst-13');
    try {
      const names = Array.from({ length: 50 }, (_, i) => `burst-${i}`);
      const results = await Promise.all(
        names.map((n) => put(n, { domain: `${n}.test`, require_healthy: false, upstreams: [{ host: '127.0.0.1', port: green.port }] })),
      );
      for (const [i, r] of results.entries()) {
        if (i === 13) expectEnvelope(r, 422);
        else {
          expect(r.status).toBe(201);
          expect(r.body.name).toBe(names[i]);
          expect(r.body.domain).toBe(`${names[i]}.test`);
        }
      }
      // One round with a bad change: 1 combined test + 50 isolating tests, still a single reload.
      expect(h.pm.nginx.reloads - reloads).toBe(1);
      expect(h.pm.nginx.tests - tests).toBe(51);
    } finally {
      breakRender = new Set();
    }
    const tests2 = h.pm.nginx.tests;
    const reloads2 = h.pm.nginx.reloads;
    const again = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        put(`burst-${i}`, { domain: `burst-${i}.test`, require_healthy: false, upstreams: [{ host: '127.0.0.1', port: blue.port }] }),
      ),
    );
    expect(again.map((r) => r.status)).toEqual(Array.from({ length: 50 }, (_, i) => (i === 13 ? 201 : 200)));
    expect(h.pm.nginx.tests - tests2).toBe(1);
    expect(h.pm.nginx.reloads - reloads2).toBe(1);
    expect((await viaNginx(h.httpPort, 'burst-49.test')).body).toContain('upstream blue');
  });

  it('lists routes with pagination', async () => {
    const page = await request(h.pm.droplet.app)
      .get('/proxies?per_page=10&page=2')
      .set(h.auth(['read']));
    expect(page.status).toBe(200);
    expect(page.body.items).toHaveLength(10);
    expect(page.body.pagination).toMatchObject({ page: 2, per_page: 10 });
    expect(page.body.pagination.total).toBeGreaterThan(50);
  });

  it('GET /proxy-manager/health reports healthy with its checks', async () => {
    const res = await request(h.pm.droplet.app)
      .get('/proxy-manager/health')
      .set(h.auth(['read']));
    expect(res.status).toBe(200);
    expect(['healthy', 'degraded']).toContain(res.body.status);
    expect(res.body.checks).toMatchObject({
      nginx_binary: { ok: true },
      config_dir_writable: { ok: true },
      nginx_running: { ok: true },
      last_reload: { ok: true },
    });
  });

  it('on restart re-renders from KV: a lost file and a hand-edited file are put back, a stray file removed', async () => {
    const keepFile = `${h.pm.paths.sitesAvailable}/mesh-keep.conf`;
    const original = await readFile(keepFile);
    await h.stopDroplet();
    await writeFile(keepFile, 'server { listen 1; }  # hand edit\n');
    await unlink(`${h.pm.paths.sitesAvailable}/mesh-burst-1.conf`);
    await writeFile(`${h.pm.paths.sitesAvailable}/mesh-stray.conf`, '# nobody wants me\n');
    await h.restartDroplet();
    expect((await readFile(keepFile)).equals(original)).toBe(true);
    expect((await readdir(h.pm.paths.sitesAvailable)).includes('mesh-stray.conf')).toBe(false);
    await waitFor('keep.test through the restarted nginx', async () => (await viaNginx(h.httpPort, 'keep.test')).status === 200, 5000);
    expect((await viaNginx(h.httpPort, 'burst-1.test')).body).toContain('upstream blue');
    const list = await request(h.pm.droplet.app)
      .get('/proxies?per_page=200')
      .set(h.auth(['read']));
    expect(list.body.items.map((r: { name: string }) => r.name)).toEqual(expect.arrayContaining(['keep', 'victim', 'ghost', 'burst-49']));
  });
});
