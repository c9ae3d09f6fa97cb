import { Writable } from 'node:stream';
import { createServer, type Server } from 'node:net';
import { freePort } from '@droplet-mesh/udc-kit/testing';

export const quiet = () => new Writable({ write: (_c, _e, cb) => cb() });

/** A TCP port that accepts connections and never answers: checks against it time out. */
export async function startBlackhole(): Promise<{ url: string; close: () => Promise<void> }> {
  const port = await freePort();
  const sockets = new Set<import('node:net').Socket>();
  const server: Server = createServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
  return {
    url: `http://127.0.0.1:${port}/health`,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}
