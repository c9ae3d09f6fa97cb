// A real image registry for tests (Debian's docker-registry with TLS and htpasswd), and the
// two things a namespaced engine needs to pull from it: a route to the address it listens on
// and the registry's CA in the engine's certs.d.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ImageRegistry, startImageRegistry, trustRegistryCa } from '@droplet-mesh/image-registry';
import type { NamespacedEngine } from './netns-engine.js';

export { probeRegistry } from '@droplet-mesh/image-registry';

export interface TestImageRegistry extends ImageRegistry {
  /** Docker's authconfig for this registry (dockerode `authconfig`). */
  auth: { username: string; password: string; serveraddress: string };
}

function freePortOn(address: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, address, () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/**
 * A registry on `address` (default 127.0.0.1; a namespaced engine's `hostAddress` to serve
 * such engines) at a free port, its files in a temporary directory removed by `stop()`.
 */
export async function startTestImageRegistry(opts: { address?: string; username?: string; password?: string } = {}) {
  const address = opts.address ?? '127.0.0.1';
  const dir = mkdtempSync(join(tmpdir(), 'mesh-registry-'));
  try {
    const reg = await startImageRegistry({
      dir,
      address,
      port: await freePortOn(address),
      username: opts.username,
      password: opts.password,
    });
    const stop = reg.stop;
    return Object.assign(reg, {
      auth: { username: reg.username, password: reg.password, serveraddress: reg.host },
      async stop() {
        await stop();
        rmSync(dir, { recursive: true, force: true });
      },
    }) as TestImageRegistry;
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

/**
 * Let a namespaced engine pull from `registry`: a route to its address through the engine's
 * own veth (the host delivers to its local address), and its CA in certs.d for host:port
 * (the host's /etc/docker/certs.d, which the namespaced dockerd reads). Returns the undo.
 */
export function trustTestRegistry(engine: NamespacedEngine, registry: { host: string; ca: string }): () => void {
  const address = registry.host.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  if (address !== engine.hostAddress && !/^127\./.test(address))
    execFileSync('ip', ['-n', engine.netns, 'route', 'replace', `${address}/32`, 'via', engine.hostAddress], { stdio: 'pipe' });
  const remove = trustRegistryCa(registry.host, registry.ca);
  // A test process that ends without its afterAll leaves no CA behind in the host's certs.d.
  const atExit = () => remove();
  process.once('exit', atExit);
  return () => {
    process.removeListener('exit', atExit);
    remove();
  };
}
