// Child process of bench/message/run.ts: a nats-server, droplets "alpha" (the sender) and
// "beta" (the handler), and a raw NATS responder for the baseline. Prints one JSON line.
import { writeSync } from 'node:fs';
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

writeSync(
  3,
  `${JSON.stringify({ natsUrl: nats.url, sendUrl: `${url}/send`, token: authority.mint({ scopes: ['write'] }), pid: process.pid })}\n`,
);

stopWhenParentLeaves(async () => {
  await raw.close();
  await alpha.stop();
  await beta.stop();
  await authority.close();
  await nats.stop({ removeStore: true });
});
