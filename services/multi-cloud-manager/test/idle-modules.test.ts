import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { inFreshNode } from '@droplet-mesh/udc-kit/testing';

// Issue 16 (idle RSS): modules only some configurations use are loaded when first used, not at
// start. Checked in a fresh node process, as a droplet starts: jest's module registry is not
// node's, so what jest loaded says nothing about what the droplet loads.
const PACKAGE_DIR = fileURLToPath(new URL('..', import.meta.url));
const src = (path: string) => new URL(`../src/${path}`, import.meta.url).href;

describe('modules loaded on first use', () => {
  it('main.ts imports docker-extras-on-first-use before anything that can load dockerode', () => {
    const imports = [...readFileSync(new URL('../src/main.ts', import.meta.url), 'utf8').matchAll(/^import .*$/gm)].map((m) => m[0]);
    expect(imports[0]).toBe("import './docker-extras-on-first-use.js';");
  });

  it("dockerode's SSH transport (ssh2) and BuildKit session (gRPC, protobufjs) load on first use, and work", async () => {
    const out = await inFreshNode(
      PACKAGE_DIR,
      `
      import { Readable } from 'node:stream';
      import net from 'node:net';
      await import(${JSON.stringify(src('docker-extras-on-first-use.ts'))});
      const { dockerFromHost } = await import(${JSON.stringify(src('providers/docker-client.ts'))}); // loads dockerode, as the droplet does
      const atStart = { ssh2: loaded('ssh2'), grpc: loaded('@grpc/grpc-js'), protobufjs: loaded('protobufjs') };
      const port = await new Promise((r) => {
        const s = net.createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => r(p)); });
      });
      const Docker = dockerFromHost(undefined).constructor;
      // DOCKER_HOST=ssh://…: ssh2 is loaded and dials (nothing listens there).
      const ssh = await new Docker({ protocol: 'ssh', host: '127.0.0.1', port, username: 'nobody' }).ping().then(() => 'answered', (e) => e.code);
      const afterSsh = loaded('ssh2');
      // A BuildKit build opens its session first (the engine's socket does not exist).
      const build = await dockerFromHost('unix:///nonexistent/docker.sock')
        .buildImage(Readable.from([Buffer.alloc(1024)]), { version: '2' })
        .then(() => 'built', (e) => e.code);
      console.log(JSON.stringify({ atStart, ssh, afterSsh, build, afterBuild: loaded('@grpc/grpc-js') && loaded('protobufjs') }));
    `,
    );
    expect(out).toEqual({
      atStart: { ssh2: false, grpc: false, protobufjs: false },
      ssh: 'ECONNREFUSED',
      afterSsh: true,
      build: 'ENOENT',
      afterBuild: true,
    });
  }, 90_000);

  it('undici: not by a provider HTTP client until its first call, which then works', async () => {
    const out = await inFreshNode(
      PACKAGE_DIR,
      `
      import { createServer } from 'node:http';
      const { ProviderHttpClient } = await import(${JSON.stringify(src('providers/http/provider-http-client.ts'))});
      const { doErrorBody } = await import(${JSON.stringify(src('providers/digitalocean/digitalocean-mapping.ts'))});
      const { testLogger } = await import(${JSON.stringify(new URL('./helpers.ts', import.meta.url).href)});
      const server = createServer((req, res) => res.end(JSON.stringify({ path: req.url, auth: req.headers.authorization })));
      await new Promise((r) => server.listen(0, '127.0.0.1', r));
      const opts = { provider: 'digitalocean', baseUrl: 'http://127.0.0.1:' + server.address().port, token: 'tok-1',
        timeoutMs: 2000, logger: testLogger(), parseError: doErrorBody, random: () => 0, maxRetries: 0 };
      const c = new ProviderHttpClient(opts);
      const atConstruction = loaded('undici');
      const body = await c.get('/v2/account');
      const afterCall = loaded('undici');
      await c.close();
      // A client closed before its first call fails its calls as a closed client always did.
      const closedFirst = new ProviderHttpClient(opts);
      await closedFirst.close();
      const closedErr = await closedFirst.get('/v2/account').then(() => null, (e) => ({ code: e.code, status: e.httpStatus }));
      server.close();
      console.log(JSON.stringify({ atConstruction, afterCall, body, closedErr }));
    `,
    );
    expect(out).toEqual({
      atConstruction: false,
      afterCall: true,
      body: { path: '/v2/account', auth: 'Bearer tok-1' },
      closedErr: { code: 'DEPENDENCY_UNAVAILABLE', status: 503 },
    });
  }, 90_000);
});
