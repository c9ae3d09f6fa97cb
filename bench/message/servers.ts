// Child process of bench/message/run.ts: a nats-server, droplets "alpha" (the sender) and
// "beta" (the handler), a raw NATS responder, and the fair baseline: a bare Express route that
// makes a raw NATS request to that responder. Prints one JSON line.
import { writeSync } from 'node:fs';
import type { Server } from 'node:http';
import express from 'express';
import { stopWhenParentLeaves } from '../support/server-child.js';
import { connect } from '@nats-io/transport-node';
import { z } from 'zod';
import { baseConfigShape, createDroplet } from '@droplet-mesh/udc-kit';
import { startNatsServer, startTestAuthority } from '@droplet-mesh/udc-kit/testing';

const nats = await startNatsServer();
const authority = await startTestAuthority();
const configSchema = z.object({ ...baseConfigShape, PORT: baseConfigShape.PORT.default(0) });
const env = { NATS_URL: nats.url, LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'info', ...authority.env() };

const make = (name: string) =>
  createDroplet({
    name,
    version: '0.0.0',
    capabilities: [],
    configSchema,
    env,
    exit: () => undefined,
    messageHandlers: { echo: (payload) => ({ echo: payload.text }) },
  });
const alpha = make('alpha');
const beta = make('beta');
const { url } = await alpha.start({ port: 0 });
await beta.start({ port: 0 });

// The baseline's responder lives here too, so both paths cross the same process boundary.
const raw = await connect({ servers: nats.url, name: 'raw-responder' });
raw.subscribe('bench.raw', {
  callback: (_err, msg) => {
    msg.respond(msg.data);
  },
});
await raw.flush();

// The fair baseline: the same physical path as /send (HTTP in, JSON body parsed, a NATS request
// on the process's own connection, the reply back as JSON) without udc-kit.
// With the client option udc-kit's Bus sets (no stack traces captured per request), so the
// ratio measures udc-kit's own work, not a client setting.
const relayNc = await connect({ servers: nats.url, name: 'express-relay', noAsyncTraces: true });
const relay = express();
relay.use(express.json());
relay.post('/relay', async (req, res) => {
  try {
    const reply = await relayNc.request('bench.raw', JSON.stringify(req.body), { timeout: 5000 });
    res.json({ result: 'success', data: reply.json() });
  } catch (err) {
    res.status(503).json({ error: (err as Error).message });
  }
});
const relayServer: Server = await new Promise((resolve) => {
  const s = relay.listen(0, '127.0.0.1', () => resolve(s));
});
const relayUrl = `http://127.0.0.1:${(relayServer.address() as { port: number }).port}/relay`;

writeSync(
  3,
  `${JSON.stringify({ natsUrl: nats.url, sendUrl: `${url}/send`, relayUrl, token: authority.mint({ scopes: ['write'] }), pid: process.pid })}\n`,
);

stopWhenParentLeaves(async () => {
  relayServer.closeAllConnections();
  relayServer.close();
  await relayNc.close();
  await raw.close();
  await alpha.stop();
  await beta.stop();
  await authority.close();
  await nats.stop({ removeStore: true });
});
