import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startNatsServer, waitFor, type NatsServerHandle } from '@droplet-mesh/udc-kit/testing';
import { expectNoStack, runCli, scratchHome } from './support/cli.js';
import { ADMIN_KEY, startProxyManager, startRegistry } from './support/mesh.js';

let nats: NatsServerHandle;
let reg: Awaited<ReturnType<typeof startRegistry>>;
let proxy: Awaited<ReturnType<typeof startProxyManager>>;
let upstream: Server;
let upstreamPort: number;
const home = scratchHome();
const env = () => ({ HOME: home.home, MESHCTL_CONFIG: home.config });

/** GET / through the proxy's nginx with a Host header. */
function viaNginx(host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: proxy.httpPort, path: '/', headers: { host }, timeout: 5000 }, (res) => {
      let body = '';
      res.on('data', (d) => (body += String(d)));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

beforeAll(async () => {
  nats = await startNatsServer();
  reg = await startRegistry(nats.url);
  upstream = createServer((req, res) => res.end(req.url === '/health' ? 'ok' : 'hello from shop'));
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', () => r()));
  upstreamPort = (upstream.address() as AddressInfo).port;
  proxy = await startProxyManager(nats.url, reg.url);
  const login = await runCli(['login', '--registry', reg.url, '--admin-key', ADMIN_KEY], env());
  if (login.code !== 0) throw new Error(`login failed: ${login.stderr}`);
  // The proxy-manager registers itself in the background; meshctl finds it there.
  await waitFor(
    'proxy-manager in the registry',
    async () =>
      (
        await fetch(`${reg.url}/droplets/proxy-manager`, {
          headers: {
            authorization: `Bearer ${reg.keyring().sign({ sub: 't', droplet_id: 't', scopes: ['read'] }, 'droplet-mesh-registry', 'droplet-mesh').token}`,
          },
        })
      ).ok,
    15_000,
  );
}, 90_000);

afterAll(async () => {
  await proxy?.close();
  await new Promise((r) => upstream?.close(r));
  await reg?.droplet.stop();
  await nats?.stop({ removeStore: true });
  home.remove();
});

describe('meshctl routes against a real proxy-manager found through the registry', () => {
  it('status lists the proxy-manager with its live health', async () => {
    const body = JSON.parse((await runCli(['status', '--json'], env())).stdout);
    const pm = body.droplets.find((d: { id: string }) => d.id === 'proxy-manager');
    expect(pm).toMatchObject({ url: proxy.url, status: 'active', health: { status: 'active' } });
  });

  it('set creates a route that nginx serves; set again updates it; ls shows it', async () => {
    const empty = await runCli(['routes', 'ls'], env());
    expect(empty.code).toBe(0);
    expect(empty.stdout).toBe('NAME  DOMAIN  UPSTREAMS  STATE  HTTPS  CERT EXPIRES\n');

    const created = await runCli(['routes', 'set', 'shop', '--domain', 'shop.test', '--upstream', `127.0.0.1:${upstreamPort}`], env());
    expect(created.stderr).toBe('');
    expect(created.code).toBe(0);
    expect(created.stdout).toBe(`created route shop: shop.test -> 127.0.0.1:${upstreamPort} (serving)\n`);
    await waitFor('nginx to serve shop.test', async () => (await viaNginx('shop.test')).body === 'hello from shop', 5000);

    const updated = await runCli(
      ['routes', 'set', 'shop', '--domain', 'shop.test', '--upstream', `127.0.0.1:${upstreamPort}:3`, '--websocket'],
      env(),
    );
    expect(updated.stdout).toBe(`updated route shop: shop.test -> 127.0.0.1:${upstreamPort}*3 (serving)\n`);

    const ls = await runCli(['routes', 'ls'], env());
    const [, row] = ls.stdout.trimEnd().split('\n');
    expect(row.split(/\s{2,}/)).toEqual(['shop', 'shop.test', `127.0.0.1:${upstreamPort}*3`, 'serving', 'no', '-']);
    const json = JSON.parse((await runCli(['routes', 'ls', '--json'], env())).stdout);
    expect(json.items).toEqual([
      expect.objectContaining({
        name: 'shop',
        domain: 'shop.test',
        websocket: true,
        upstreams: [{ host: '127.0.0.1', port: upstreamPort, weight: 3 }],
      }),
    ]);
  });

  it("the proxy-manager's refusals print as UDC errors, with the failing field", async () => {
    const bad = await runCli(['routes', 'set', 'bad', '--domain', 'not a domain!', '--upstream', `127.0.0.1:${upstreamPort}`], env());
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^error: INVALID_REQUEST: invalid body\n {2}domain: must be a valid hostname/);
    expectNoStack(bad.stderr);

    const taken = await runCli(['routes', 'set', 'other', '--domain', 'shop.test', '--upstream', `127.0.0.1:${upstreamPort}`], env());
    expect(taken.code).toBe(1);
    expect(taken.stderr).toBe("error: CONFLICT: domain shop.test is already served by route 'shop'\n");

    const json = await runCli(['routes', 'ssl', 'nosuch', '--json'], env());
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toMatchObject({
      status: 'error',
      error: { code: 'NOT_FOUND', message: "no route 'nosuch'" },
      http_status: 404,
    });
  });

  it('rm deletes the route; a second rm is NOT_FOUND', async () => {
    const rm = await runCli(['routes', 'rm', 'shop'], env());
    expect(rm.code).toBe(0);
    expect(rm.stdout).toBe('deleted route shop\n');
    await waitFor('nginx to stop serving shop.test', async () => (await viaNginx('shop.test')).body !== 'hello from shop', 5000);
    const again = await runCli(['routes', 'rm', 'shop'], env());
    expect(again.code).toBe(1);
    expect(again.stderr).toBe("error: NOT_FOUND: no route 'shop'\n");
  });
});
