// A droplet whose port is taken (a second replica on a clashing port, say) fails start with
// the listen error itself, not a TypeError about a null address later (Express 5 hands the
// error to app.listen's callback instead of throwing it).
import { createServer, type AddressInfo, type Server } from 'node:net';
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { startNatsServer, startTestAuthority, type NatsServerHandle, type TestAuthority } from '../src/testing/index.js';
import { createTestDroplet } from './helpers.js';

let nats: NatsServerHandle;
let authority: TestAuthority;
let blocker: Server;

beforeAll(async () => {
  nats = await startNatsServer();
  authority = await startTestAuthority();
  blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
});

afterAll(async () => {
  blocker?.close();
  await authority?.close();
  await nats?.stop({ removeStore: true });
});

it('a taken port fails start with EADDRINUSE', async () => {
  const droplet = createTestDroplet({ env: { NATS_URL: nats.url, ...authority.env() } });
  const { port } = blocker.address() as AddressInfo;
  await expect(droplet.start({ port })).rejects.toMatchObject({ code: 'EADDRINUSE' });
  await droplet.stop().catch(() => undefined);
});
