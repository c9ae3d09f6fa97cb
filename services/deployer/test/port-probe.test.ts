import { afterAll, describe, expect, it } from '@jest/globals';
import { createServer, type Server } from 'node:net';
import { freePort } from '@droplet-mesh/udc-kit/testing';
import { hostPortFree, nothingListens } from '../src/engine/engine-pool.js';
import { deployerConfigSchema } from '../src/config.js';

// The `local` server's port probe: a bind test on loopback, and for another address (the
// deployer in a container, apps on the host's network) also nobody answering there.

const servers: Server[] = [];
const listen = (port: number, host: string) =>
  new Promise<void>((resolve, reject) => {
    const s = createServer();
    servers.push(s);
    s.once('error', reject);
    s.listen(port, host, () => resolve());
  });

afterAll(async () => {
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
});

describe('port probe of the local server', () => {
  it('nothingListens: true when refused, false when something accepts', async () => {
    const port = await freePort();
    expect(await nothingListens(port, '127.0.0.1')).toBe(true);
    await listen(port, '127.0.0.1');
    expect(await nothingListens(port, '127.0.0.1')).toBe(false);
  });

  it('hostPortFree: a bind test for loopback, bind here plus a connect test for another address', async () => {
    // ::ffff:127.0.0.1 is not spelled as loopback, so it takes the connect path.
    const port = await freePort();
    expect(await hostPortFree(port, '127.0.0.1')).toBe(true);
    expect(await hostPortFree(port, '::ffff:127.0.0.1')).toBe(true);
    await listen(port, '127.0.0.1');
    expect(await hostPortFree(port, '127.0.0.1')).toBe(false);
    expect(await hostPortFree(port, '::ffff:127.0.0.1')).toBe(false);
    // Something answering elsewhere while the port is free here (as in a container).
    const other = await freePort();
    await listen(other, '127.0.0.2');
    expect(await nothingListens(other, '127.0.0.2')).toBe(false);
  });

  it('LOCAL_SERVER_ADDRESS defaults to 127.0.0.1 and refuses anything but a host name or address', () => {
    const base = { DEPLOYER_MASTER_KEY: '00'.repeat(32) };
    expect(deployerConfigSchema.parse(base).LOCAL_SERVER_ADDRESS).toBe('127.0.0.1');
    expect(deployerConfigSchema.parse({ ...base, LOCAL_SERVER_ADDRESS: 'host.docker.internal' }).LOCAL_SERVER_ADDRESS).toBe(
      'host.docker.internal',
    );
    expect(deployerConfigSchema.safeParse({ ...base, LOCAL_SERVER_ADDRESS: 'http://x/' }).success).toBe(false);
  });
});
