// A droplet rides out NATS going away: /health says so, routes that need NATS answer 503,
// and when the server is back it reconnects, its KV reads and watches work again, with no restart.
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { z } from 'zod';
import { baseConfigShape, createDroplet, type Droplet } from '../src/index.js';
import { startNatsServer, startTestAuthority, waitFor, type NatsServerHandle, type TestAuthority } from '../src/testing/index.js';
import { captureStream } from './helpers.js';

let nats: NatsServerHandle;
let authority: TestAuthority;
let droplet: Droplet;
let url: string;
const watched: string[] = [];

beforeAll(async () => {
  nats = await startNatsServer();
  authority = await startTestAuthority();
  droplet = createDroplet({
    name: 'outage',
    version: '1.0.0',
    capabilities: [],
    configSchema: z.object(baseConfigShape),
    env: { PORT: '0', NATS_URL: nats.url, ...authority.env() },
    registry: false,
    logDestination: captureStream().stream,
    routes(api, ctx) {
      api.get('/value', { scope: 'read' }, async () => {
        const kv = await ctx.bus.kv('outage-test');
        return { value: (await kv.get('k'))?.string() ?? null };
      });
    },
    async onStart(ctx) {
      const kv = await ctx.bus.kv('outage-test');
      await kv.put('k', 'before');
      const watch = await kv.watch({ key: 'k' });
      void (async () => {
        for await (const e of watch) watched.push(e.string());
      })();
    },
  });
  url = (await droplet.start({ port: 0 })).url;
}, 60_000);

afterAll(async () => {
  await droplet?.stop();
  await nats?.stop({ removeStore: true });
  await authority?.close();
});

const auth = () => ({ Authorization: `Bearer ${authority.mint({ scopes: ['read'] })}` });

it('answers 503 DEPENDENCY_UNAVAILABLE while NATS is down, then serves again once it is back', async () => {
  expect(await (await fetch(`${url}/value`, { headers: auth() })).json()).toEqual({ value: 'before' });
  await nats.stop();
  await waitFor(
    '/health to report NATS down',
    async () => ((await (await fetch(`${url}/health`)).json()) as { status: string }).status === 'error',
    10_000,
  );
  const during = await fetch(`${url}/value`, { headers: auth() });
  expect(during.status).toBe(503);
  expect(((await during.json()) as { error: { code: string } }).error.code).toBe('DEPENDENCY_UNAVAILABLE');

  await nats.restart();
  await waitFor('/health active again', async () => (await fetch(`${url}/health`)).status === 200, 15_000, 100);
  await waitFor('KV reads again', async () => (await fetch(`${url}/value`, { headers: auth() })).status === 200, 15_000, 200);
  // The watch resumed: a write after the outage reaches it.
  const kv = await droplet.ctx.bus.kv('outage-test');
  await kv.put('k', 'after');
  await waitFor('the watch to see the write made after the outage', () => watched.includes('after'), 15_000);
}, 90_000);
