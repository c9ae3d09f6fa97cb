import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { inFreshNode } from '@droplet-mesh/udc-kit/testing';

// Issue 16 (idle RSS): what dockerode loads that the deployer uses only when asked for it is
// loaded on first use. Checked in a fresh node process, as the droplet starts: jest's module
// registry is not node's.
const PACKAGE_DIR = fileURLToPath(new URL('..', import.meta.url));
const src = (path: string) => new URL(`../src/${path}`, import.meta.url).href;

describe('modules loaded on first use', () => {
  it('main.ts imports docker-extras-on-first-use before anything that can load dockerode', () => {
    const imports = [...readFileSync(new URL('../src/main.ts', import.meta.url), 'utf8').matchAll(/^import .*$/gm)].map((m) => m[0]);
    expect(imports[0]).toBe("import './docker-extras-on-first-use.js';");
  });

  it('tar and busboy: not loaded with the droplet, only by a build or an upload', async () => {
    const out = await inFreshNode(
      PACKAGE_DIR,
      `
      await import(${JSON.stringify(src('app.ts'))}); // everything the droplet loads at start
      console.log(JSON.stringify({ tar: loaded('tar'), busboy: loaded('busboy') }));
    `,
    );
    expect(out).toEqual({ tar: false, busboy: false });
  }, 90_000);

  it("dockerode's SSH transport (ssh2) and BuildKit session (gRPC, protobufjs) load on first use, and work", async () => {
    const out = await inFreshNode(
      PACKAGE_DIR,
      `
      import { Readable } from 'node:stream';
      import net from 'node:net';
      await import(${JSON.stringify(src('docker-extras-on-first-use.ts'))});
      await import(${JSON.stringify(src('engine/engine-pool.ts'))}); // loads dockerode, as the droplet does
      const { default: Docker } = await import('dockerode');
      const atStart = { ssh2: loaded('ssh2'), grpc: loaded('@grpc/grpc-js'), protobufjs: loaded('protobufjs') };
      const port = await new Promise((r) => {
        const s = net.createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => r(p)); });
      });
      // DOCKER_HOST=ssh://…: ssh2 is loaded and dials (nothing listens there).
      const ssh = await new Docker({ protocol: 'ssh', host: '127.0.0.1', port, username: 'nobody' }).ping().then(() => 'answered', (e) => e.code);
      const afterSsh = loaded('ssh2');
      // A BuildKit build opens its session first (the engine's socket does not exist).
      const build = await new Docker({ socketPath: '/nonexistent/docker.sock' })
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
});
