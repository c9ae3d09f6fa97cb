import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createServer, request as httpRequest, type Server } from 'node:http';
import { readdir, readFile } from 'node:fs/promises';
import request from 'supertest';
import { expectEnvelope, waitFor } from '@droplet-mesh/udc-kit/testing';
import { startHarness, type Harness } from './support/harness.js';
import { freePort, viaNginx } from './support/http.js';

// Per-route nginx settings through the real nginx: body limit, JSON access log with the
// request id, path prefixes to their own upstreams, redirects; hostile values refused.

interface Echo {
  port: number;
  close(): Promise<void>;
}

/** An upstream that answers with what it received: its name, path, request id and body size. */
async function startEcho(name: string): Promise<Echo> {
  const port = await freePort();
  const server: Server = createServer((req, res) => {
    let size = 0;
    req.on('data', (d: Buffer) => (size += d.length));
    req.on('end', () => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ name, path: req.url, request_id: req.headers['x-request-id'] ?? null, body_bytes: size }));
    });
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
  return {
    port,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

interface Reply {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

function send(
  port: number,
  host: string,
  opts: { path?: string; method?: string; body?: Buffer; headers?: Record<string, string> },
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: '127.0.0.1',
        port,
        path: opts.path ?? '/',
        method: opts.method ?? 'GET',
        headers: { host, ...(opts.body ? { 'content-length': String(opts.body.length) } : {}), ...opts.headers },
        agent: false,
        timeout: 10_000,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('no answer within 10 s')));
    // nginx may answer 413 and close before the whole body is sent.
    req.on('error', (err) => ((err as NodeJS.ErrnoException).code === 'EPIPE' ? undefined : reject(err)));
    req.end(opts.body);
  });
}

let h: Harness;
let blue: Echo;
let green: Echo;

beforeAll(async () => {
  [blue, green] = await Promise.all([startEcho('blue'), startEcho('green')]);
  h = await startHarness();
}, 60_000);
afterAll(async () => {
  await h?.close();
  await Promise.all([blue, green].map((u) => u?.close()));
});

const put = (name: string, body: object) => request(h.pm.droplet.app).put(`/proxies/${name}`).set(h.auth()).send(body);

describe('request body limit', () => {
  it('defaults to 64m, so a 2 MB upload nginx would refuse by default reaches the upstream', async () => {
    const res = await put('upload', { domain: 'upload.test', require_healthy: false, upstreams: [{ host: '127.0.0.1', port: blue.port }] });
    expect(res.status).toBe(201);
    expect(res.body.max_body_size).toBe('64m');
    const body = Buffer.alloc(2 * 1024 * 1024, 'x');
    const r = await send(h.httpPort, 'upload.test', { method: 'POST', path: '/files', body });
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toMatchObject({ name: 'blue', body_bytes: body.length });
  });

  it('a route with max_body_size 1k answers 413 to a 2 KB body and passes a 512 B one', async () => {
    const res = await put('small', {
      domain: 'small.test',
      require_healthy: false,
      max_body_size: '1K',
      upstreams: [{ host: '127.0.0.1', port: blue.port }],
    });
    expect(res.status).toBe(201);
    expect(res.body.max_body_size).toBe('1k');
    expect((await send(h.httpPort, 'small.test', { method: 'POST', body: Buffer.alloc(2048, 'y') })).status).toBe(413);
    expect((await send(h.httpPort, 'small.test', { method: 'POST', body: Buffer.alloc(512, 'y') })).status).toBe(200);
  });
});

describe('JSON access log with the request id', () => {
  it('passes a generated id upstream and back, keeps a client id that is a plain token, and logs one JSON line per request', async () => {
    expect(
      (await put('logged', { domain: 'logged.test', require_healthy: false, upstreams: [{ host: '127.0.0.1', port: blue.port }] })).status,
    ).toBe(201);
    const generated = await send(h.httpPort, 'logged.test', { path: '/a?b=1', headers: { 'user-agent': 'quote" back\\slash' } });
    const id = JSON.parse(generated.body).request_id as string;
    expect(id).toMatch(/^[0-9a-f]{32}$/);
    expect(generated.headers['x-request-id']).toBe(id);

    const kept = await send(h.httpPort, 'logged.test', { headers: { 'x-request-id': 'client-id.42' } });
    expect(JSON.parse(kept.body).request_id).toBe('client-id.42');
    // A client value that is not a plain token is replaced, never trusted into the log or upstream.
    const replaced = await send(h.httpPort, 'logged.test', { headers: { 'x-request-id': 'bad id"}' } });
    expect(JSON.parse(replaced.body).request_id).toMatch(/^[0-9a-f]{32}$/);

    let lines: Array<Record<string, unknown>> = [];
    await waitFor(
      'three access log lines of logged.test',
      async () => {
        const text = await readFile(h.pm.paths.accessLog, 'utf8').catch(() => '');
        // Every line must parse: a quote or backslash a client sent cannot break the JSON.
        lines = text
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as Record<string, unknown>);
        return lines.filter((l) => l.domain === 'logged.test').length >= 3;
      },
      5000,
    );
    const mine = lines.find((l) => l.request_id === id);
    expect(mine).toMatchObject({ domain: 'logged.test', method: 'GET', uri: '/a?b=1', status: 200, user_agent: 'quote" back\\slash' });
    expect(mine?.upstream_addr).toBe(`127.0.0.1:${blue.port}`);
    expect(lines.some((l) => l.request_id === 'client-id.42')).toBe(true);
  });

  it('access_log: false keeps a route out of the log', async () => {
    expect(
      (
        await put('unlogged', {
          domain: 'unlogged.test',
          require_healthy: false,
          access_log: false,
          upstreams: [{ host: '127.0.0.1', port: blue.port }],
        })
      ).status,
    ).toBe(201);
    const r = await send(h.httpPort, 'unlogged.test', { headers: { 'x-request-id': 'not-logged-1' } });
    expect(r.status).toBe(200);
    // A logged request after it: once that line is there, the unlogged one would be too.
    await send(h.httpPort, 'logged.test', { headers: { 'x-request-id': 'marker-after-1' } });
    let text = '';
    await waitFor('the marker line', async () => (text = await readFile(h.pm.paths.accessLog, 'utf8')).includes('marker-after-1'), 5000);
    expect(text).not.toContain('not-logged-1');
  });
});

describe('path prefixes and redirects', () => {
  it('sends each prefix to its own upstream, the rest to the route upstream, and a prefix may redirect', async () => {
    const res = await put('multi', {
      domain: 'multi.test',
      upstreams: [{ host: '127.0.0.1', port: blue.port }],
      paths: [
        { prefix: '/api/', upstreams: [{ host: '127.0.0.1', port: green.port }] },
        { prefix: '/old', redirect: { to: 'https://new.example.test/docs', status: 302 } },
      ],
      health_path: '/',
    });
    expect(res.status).toBe(201);
    expect(res.body.status.servers).toHaveLength(2);
    expect(JSON.parse((await viaNginx(h.httpPort, 'multi.test', '/api/users')).body)).toMatchObject({ name: 'green', path: '/api/users' });
    expect(JSON.parse((await viaNginx(h.httpPort, 'multi.test', '/apix')).body)).toMatchObject({ name: 'blue' });
    expect(JSON.parse((await viaNginx(h.httpPort, 'multi.test', '/')).body)).toMatchObject({ name: 'blue' });
    const moved = await viaNginx(h.httpPort, 'multi.test', '/old/page?x=1');
    expect(moved.status).toBe(302);
    expect(moved.headers.location).toBe('https://new.example.test/docs/old/page?x=1');
  });

  it('a redirect route answers 308 to its URL without any upstream', async () => {
    const res = await put('moved', { domain: 'moved.test', redirect: { to: 'https://target.test:8443/', status: 308, keep_path: false } });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({
      upstreams: [],
      redirect: { to: 'https://target.test:8443', status: 308 },
      status: { state: 'serving' },
    });
    const r = await viaNginx(h.httpPort, 'moved.test', '/anything');
    expect(r.status).toBe(308);
    expect(r.headers.location).toBe('https://target.test:8443');
  });
});

describe('hostile settings', () => {
  const base = { domain: 'hostile.test', require_healthy: false, upstreams: [{ host: '127.0.0.1', port: 9 }] };
  const cases: Array<[string, object, string]> = [
    ['max_body_size', { max_body_size: '1m; return 200 x' }, 'max_body_size'],
    ['max_body_size', { max_body_size: '1m}' }, 'max_body_size'],
    ['max_body_size', { max_body_size: '1m\nlocation / {' }, 'max_body_size'],
    ['max_body_size', { max_body_size: '$request_body' }, 'max_body_size'],
    ['max_body_size', { max_body_size: '"1m"' }, 'max_body_size'],
    ['path prefix', { paths: [{ prefix: '/a;}', upstreams: [{ host: '127.0.0.1', port: 9 }] }] }, 'paths.0.prefix'],
    ['path prefix', { paths: [{ prefix: '/a\n}', upstreams: [{ host: '127.0.0.1', port: 9 }] }] }, 'paths.0.prefix'],
    ['path prefix', { paths: [{ prefix: '/$uri', upstreams: [{ host: '127.0.0.1', port: 9 }] }] }, 'paths.0.prefix'],
    ['path prefix', { paths: [{ prefix: "/a'b", upstreams: [{ host: '127.0.0.1', port: 9 }] }] }, 'paths.0.prefix'],
    ['path prefix', { paths: [{ prefix: '~ .*', upstreams: [{ host: '127.0.0.1', port: 9 }] }] }, 'paths.0.prefix'],
    ['path prefix', { paths: [{ prefix: '/../etc', upstreams: [{ host: '127.0.0.1', port: 9 }] }] }, 'paths.0.prefix'],
    ['redirect url', { upstreams: undefined, redirect: { to: 'https://x.test/;return 200' } }, 'redirect.to'],
    ['redirect url', { upstreams: undefined, redirect: { to: 'https://x.test/}' } }, 'redirect.to'],
    ['redirect url', { upstreams: undefined, redirect: { to: 'https://x.test/\nlocation' } }, 'redirect.to'],
    ['redirect url', { upstreams: undefined, redirect: { to: 'https://x.test/$host' } }, 'redirect.to'],
    ['redirect url', { upstreams: undefined, redirect: { to: 'https://x.test/"a"' } }, 'redirect.to'],
    ['redirect url', { upstreams: undefined, redirect: { to: 'javascript:alert(1)' } }, 'redirect.to'],
    ['redirect url', { upstreams: undefined, redirect: { to: 'https://u:p@x.test' } }, 'redirect.to'],
    ['redirect status', { upstreams: undefined, redirect: { to: 'https://x.test', status: 200 } }, 'redirect.status'],
    ['path redirect', { paths: [{ prefix: '/p', redirect: { to: "https://x.test/'" } }] }, 'paths.0.redirect.to'],
  ];
  it.each(cases)('%s %j is refused with a 400 naming the field, nothing written', async (_what, extra, field) => {
    const before = await readdir(h.pm.paths.sitesAvailable);
    const res = await put('hostile', { ...base, ...extra });
    expectEnvelope(res, 400, 'INVALID_REQUEST');
    expect(res.body.error.details.fields.map((f: { path: string }) => f.path)).toContain(field);
    expect(await readdir(h.pm.paths.sitesAvailable)).toEqual(before);
  });
});
